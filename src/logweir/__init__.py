"""logweir: fast columnar log processing.

Lines become events in one canonical schema (:mod:`logweir.schema`), events
become windowed metrics (:mod:`logweir.windows`), metrics become alerts
(:mod:`logweir.detectors`), and all of it lands in a Parquet lake and an
embedded DuckDB store (:mod:`logweir.sinks`). :mod:`logweir.pipeline` wires
the stages; :mod:`logweir.cli` is the command line on top.
"""

import os

__version__ = "0.1.0"

# Process-wide settings that must be in place before NumPy and Polars load
# (their libraries read them once, when they start); a value the user set
# wins. NumPy's OpenBLAS keeps worker threads spinning for linear algebra
# logweir never does: they burned about 2 % of a run's CPU (perf). Polars'
# jemalloc hands freed pages back to the kernel after 10 s of disuse by
# default; a batch run frees and reallocates hundreds of megabytes a second,
# and keeping pages 30 s instead saved a sixth of the page faults and of
# system time (measured on 1M lines).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:30000,muzzy_decay_ms:30000")
