"""logweir: fast columnar log processing.

Lines become events in one canonical schema (:mod:`logweir.schema`), events
become windowed metrics (:mod:`logweir.windows`), metrics become alerts
(:mod:`logweir.detectors`), and all of it lands in a Parquet lake and an
embedded DuckDB store (:mod:`logweir.sinks`). :mod:`logweir.pipeline` wires
the stages; :mod:`logweir.cli` is the command line on top.
"""

__version__ = "0.1.0"
