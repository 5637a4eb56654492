"""The pipeline: wires sources, formats, windows, detectors and sinks.

``logweir run`` over files is :func:`logweir.pipeline.batch.run_batch`;
its settings are :class:`logweir.pipeline.config.RunConfig`; the report is
:mod:`logweir.pipeline.report`; ``logweir query`` is
:mod:`logweir.pipeline.query`. ``docs/pipeline.md`` tells how a run works.

This module stays light (no Polars, no pydantic), so that the command line
can name defaults without importing the stages.
"""

from pathlib import Path

#: Where ``logweir run`` writes, and ``logweir query`` reads, when not told.
DEFAULT_OUT = Path("logweir-out")

__all__ = ["DEFAULT_OUT"]
