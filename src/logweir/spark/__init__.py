"""``logweir spark``: logweir's parsers inside a PySpark job.

>>> from logweir.spark import SparkJobConfig, run_spark_job
>>> summary = run_spark_job(SparkJobConfig(inputs=("access.log",)))  # doctest: +SKIP

The tasks read line-aligned byte ranges of the inputs with logweir's own
reader, parse them with logweir's parsers inside ``mapInArrow``, and write
the same Parquet lake as ``logweir run``; Spark's ``window()`` and
``withWatermark`` compute the windows, which go to the same DuckDB store.
``docs/scale.md`` says how to run it, on a cluster too, and how big a
cluster a given log rate needs.

PySpark is an extra (``pip install 'logweir[spark]'``); this package
imports it only when a job starts, so the rest of logweir never needs it.
"""

from logweir.spark.job import (
    DEFAULT_BATCH_BYTES,
    SparkJobConfig,
    SparkSummary,
    build_session,
    require_pyspark,
    run_spark_job,
)

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "SparkJobConfig",
    "SparkSummary",
    "build_session",
    "require_pyspark",
    "run_spark_job",
]
