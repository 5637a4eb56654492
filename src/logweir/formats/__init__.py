"""Formats: compile a format once, then parse line batches with it.

>>> from logweir.formats import compile_format
>>> parser = compile_format("combined")

A format is given as a preset name (``combined``, ``nginx``, ``json``,
``syslog``…), an Apache ``LogFormat`` string, an Nginx ``log_format``
string, ``regex:<pattern with named groups>`` or ``grok:<pattern>``.
"""

from logweir.formats.base import ParseOptions, Parser
from logweir.formats.registry import PRESETS, compile_format

__all__ = ["PRESETS", "ParseOptions", "Parser", "compile_format"]
