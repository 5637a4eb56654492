"""Where results go: the Parquet lake, rejects, and the DuckDB store.

Every sink has the same verbs: ``write(...)`` (durable when it returns),
``flush()`` and ``close()``. Files are written whole or not at all
(:mod:`logweir.sinks.atomic`); a failure raises
:class:`~logweir.errors.SinkError` naming the path and the cause.
``docs/storage.md`` describes the layout.
"""

from logweir.sinks.atomic import write_atomically
from logweir.sinks.lake import LakeWriter
from logweir.sinks.rejects import RejectWriter
from logweir.sinks.store import STORE_NAME, WINDOW_KEY, AggregateStore, create_views

__all__ = [
    "STORE_NAME",
    "WINDOW_KEY",
    "AggregateStore",
    "LakeWriter",
    "RejectWriter",
    "create_views",
    "write_atomically",
]
