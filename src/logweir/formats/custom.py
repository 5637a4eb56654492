"""Formats the user writes: a regex with named groups, or a grok pattern.

>>> from logweir.formats import compile_format
>>> parser = compile_format(r"regex:^(?P<ts>\\S+) (?P<level>\\w+) (?P<message>.*)$")
>>> parser = compile_format("grok:%{HTTPD_COMBINEDLOG}")

**Regex.** Groups named after a canonical column (``ts``, ``client_ip``,
``status``, ``bytes``, ``duration_ms`` …) fill it, converted to its type;
``request`` (a whole request line), ``url`` and ``http_version`` are split
as for JSON; ``duration_s`` and ``duration_us`` are durations in those
units. Other groups go to ``extra``. ``ts`` is read by
:func:`~logweir.formats.flextime.parse_flexible` unless ``ts_format``
gives a strftime format. The regex is searched for in each line, as
``re.search`` does: anchor it with ``^`` and ``$`` to match whole lines.
Group names must be valid Python identifiers; ``(?<name>…)`` is accepted as
well as ``(?P<name>…)``. A value that does not fit its column rejects the
line, naming the group.

**Grok.** ``%{NAME}``, ``%{NAME:field}`` and ``%{NAME:field:type}`` refer to
the pattern vocabulary in ``patterns/logweir.grok`` (the usual names:
``HTTPD_COMBINEDLOG``, ``SYSLOGLINE``, ``SYSLOG5424LINE``, ``IPORHOST``,
``TIMESTAMP_ISO8601`` …, regexes written for logweir), extended or
overridden by pattern files given at run time (the logstash format: one
``NAME regex`` per line), such as logstash-patterns-core's. Field names map
onto the schema through the JSON key table plus the grok names
(``clientip``, ``verb``, ``response``, ``agent``, ``referrer``,
``logsource``, ``program``, ``syslog5424_*``; ECS names such as
``[http][request][method]`` too). ``:int``/``:float`` types are accepted
and ignored: each column has its own type.

No grok library is used: the ones on PyPI (pygrok, python-grok) are
unmaintained and match line by line in Python, where logweir needs one
regex it can hand to Polars.

**How.** The pattern runs over the whole batch in Polars (Rust's regex
crate). A regex Rust cannot compile (look-arounds, back-references, atomic
groups, as in many logstash patterns) runs with Python's ``re`` line by
line instead, which is correct but several times slower; logweir says so
in its log. Lines that do not match are rejected with the last group the
line still fits, found by matching prefixes of the regex (slow path).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from logweir.errors import FormatError
from logweir.formats.base import ParseOptions, Parser
from logweir.formats.flextime import TimeContext
from logweir.formats.keymap import DEFAULT_KEYS, TARGETS, KeyTable, convert, resolve
from logweir.formats.lineprep import Prepared, assemble, diagnosed, prepare
from logweir.formats.timeutil import check_timezone
from logweir.schema import LineBatch, ParseResult

logger = logging.getLogger(__name__)

#: The group every compiled regex starts with: empty, so it is "" on a match
#: and null otherwise, even when all the user's groups are optional.
_MATCHED = "__logweir_matched"

#: Regex group name -> column: the canonical names themselves.
REGEX_KEYS: dict[str, tuple[str, ...]] = {
    target: ((target,) if target != "duration_ms" else ("duration_ms:1",))
    for target in TARGETS
}
REGEX_KEYS["duration_ms"] = ("duration_ms:1", "duration_s:1000", "duration_us:0.001")

#: Grok field names, on top of the JSON key table.
GROK_KEYS: dict[str, tuple[str, ...]] = {
    target: keys
    + {
        "ts": ("syslog5424_ts", "timestamp8601"),
        "host": ("syslog5424_host",),
        "service": ("syslog5424_app", "process.name"),
        "message": ("syslog5424_msg",),
        "request": ("rawrequest",),
        "level": ("syslog_severity",),
    }.get(target, ())
    for target, keys in DEFAULT_KEYS.items()
}

#: Characters of a rejected line looked at to say where it stops fitting.
_DIAGNOSED_CHARS = 4096

_NAMED_GROUP = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>")


class RegexParser(Parser):
    """Lines matched by a regex with named groups; see the module docstring."""

    name = "regex"

    def __init__(
        self,
        pattern: str,
        options: ParseOptions | None = None,
        *,
        ts_format: str | None = None,
    ) -> None:
        python = _python_syntax(pattern)
        compiled = _compile_python(python, pattern)
        if not compiled.groupindex:
            raise FormatError(
                f"regex {pattern!r} has no named group: name what to keep, "
                "e.g. (?P<message>.*)",
                format=pattern,
            )
        fields = {name: name for name in compiled.groupindex}
        self.ts_format: str | None = ts_format
        self._setup(
            pattern, python, fields, KeyTable.build(defaults=REGEX_KEYS), options
        )
        self.ts_format = ts_format

    def _setup(
        self,
        spec: str,
        python: str,
        fields: Mapping[str, str],
        table: KeyTable,
        options: ParseOptions | None,
    ) -> None:
        self.options = options or ParseOptions()
        check_timezone(self.options.timezone)
        self.spec = spec
        self.fields = dict(fields)
        self.table = table
        self.ts_format = None
        self.python = re.compile(f"(?P<{_MATCHED}>)(?:{python})")
        rust = f"(?P<{_MATCHED}>)(?:{python})"
        self.rust: str | None = rust if _rust_accepts(rust) else None
        if self.rust is None:
            logger.info(
                "%s %r needs features Rust's regex lacks; matching line by line",
                self.name,
                spec,
            )
        self.prefixes = _prefixes(python)

    def parse(self, batch: LineBatch) -> ParseResult:
        prepared = prepare(batch)
        ctx = TimeContext.current(self.options.timezone, self.options.reference_year)
        groups = self._match(prepared)
        matched = groups.get_column(_MATCHED).is_not_null()
        rows = prepared.rows
        rejects = diagnosed(
            rows.filter(~matched), prepared.lines.filter(~matched), self._diagnose
        )
        fields = self._fields(groups.filter(matched))
        picked = resolve(rows.filter(matched), fields, self.table)
        parsed = convert(picked, ctx, ts_format=self.ts_format)
        return assemble(batch, prepared, pl.concat([parsed, rejects], how="diagonal"))

    def _match(self, prepared: Prepared) -> pl.DataFrame:
        """One column per group (and the match marker), one row per line."""
        names = [_MATCHED, *self.fields]
        if self.rust is not None:
            found = prepared.lines.str.extract_groups(self.rust).struct.unnest()
            return found.select(names)
        records: list[dict[str, Any]] = []
        for line in prepared.lines.to_list():
            match = self.python.search(line)
            records.append(match.groupdict() if match else dict.fromkeys(names))
        return pl.DataFrame(records, schema=dict.fromkeys(names, pl.String))

    def _fields(self, groups: pl.DataFrame) -> pl.DataFrame:
        """Group columns renamed to their field names; repeats coalesced."""
        by_field: dict[str, list[str]] = {}
        for group, field in self.fields.items():
            by_field.setdefault(field, []).append(group)
        return groups.select(
            [pl.coalesce(groups_).alias(field) for field, groups_ in by_field.items()]
        )

    def _diagnose(self, line: str) -> str:
        """How far the line fits the pattern (slow path, rejects only)."""
        kind = self.name
        last: tuple[str, int] | None = None
        # Searching for each prefix costs up to the line length times the
        # pattern's backtracking; the head of a long line says as much.
        head = line[:_DIAGNOSED_CHARS]
        for group, prefix in self.prefixes:
            field = self.fields.get(group, group)
            match = prefix.search(head)
            if match is None:
                if last is None:
                    return f"no match for the {kind}: it fails before group {field!r}"
                return (
                    f"no match for the {kind}: it fits up to group {last[0]!r} "
                    f"(column {last[1] + 1}), then fails at group {field!r}"
                )
            last = (field, match.end())
        if last is None:
            return f"no match for the {kind}"
        return (
            f"no match for the {kind}: it fits through group {last[0]!r} "
            f"(column {last[1] + 1}), then fails"
        )


class GrokParser(RegexParser):
    """Lines matched by a grok pattern; see the module docstring."""

    name = "grok"

    def __init__(
        self,
        pattern: str,
        options: ParseOptions | None = None,
        *,
        pattern_files: Iterable[str | Path] = (),
        ts_format: str | None = None,
    ) -> None:
        library = builtin_patterns()
        for path in pattern_files:
            library.update(load_patterns(path))
        python, fields = expand_grok(pattern, library)
        if not fields:
            raise FormatError(
                f"grok pattern {pattern!r} names no field: write %{{NAME:field}}",
                format=pattern,
            )
        _compile_python(python, pattern)
        self._setup(
            pattern, python, fields, KeyTable.build(defaults=GROK_KEYS), options
        )
        self.ts_format = ts_format


def compile_grok(
    pattern: str,
    options: ParseOptions | None = None,
    *,
    pattern_files: Iterable[str | Path] = (),
) -> Parser:
    """Compile a grok ``pattern`` (see the module docstring) into a parser.

    Raises :class:`FormatError` naming an unknown pattern name and its
    position, a recursive definition, or a regex that does not compile.
    """
    return GrokParser(pattern, options, pattern_files=pattern_files)


# --- regex helpers ---------------------------------------------------------------


def _python_syntax(pattern: str) -> str:
    """``(?<name>…)`` (Rust, Oniguruma) to ``(?P<name>…)`` (Python)."""
    return re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern)


def _compile_python(python: str, original: str) -> re.Pattern[str]:
    try:
        return re.compile(python)
    except re.error as error:
        position = error.pos
        if position is not None:
            # Each (?< that became (?P< moved what follows one character.
            position -= python[:position].count("(?P<") - original[:position].count(
                "(?P<"
            )
        raise FormatError(
            f"invalid regex at position {position}: {error.msg} in {original!r}",
            format=original,
            position=position,
        ) from error
    except RecursionError as error:
        raise FormatError(
            f"regex too deeply nested: {original!r}", format=original
        ) from error


def _rust_accepts(pattern: str) -> bool:
    try:
        pl.Series([""], dtype=pl.String).str.extract_groups(pattern)
    except pl.exceptions.ComputeError:
        return False
    return True


def _prefixes(python: str) -> list[tuple[str, re.Pattern[str]]]:
    """For each named group, the regex up to its end (when that is a regex).

    Groups still open at that point are closed, so a group inside an
    alternative gives the prefix of that alternative.
    """
    found = []
    for name, end, still_open in _group_ends(python):
        try:
            found.append((name, re.compile(python[:end] + ")" * still_open)))
        except (re.error, RecursionError):
            continue
    return found


def _group_ends(python: str) -> list[tuple[str, int, int]]:
    """Where each named group ends, and how many groups are open around it."""
    ends: list[tuple[str, int, int]] = []
    stack: list[str | None] = []
    index = 0
    in_class = False
    while index < len(python):
        char = python[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if python[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            named = _NAMED_GROUP.match(python, index)
            stack.append(named.group(1) if named else None)
        elif char == ")" and stack:
            name = stack.pop()
            if name is not None:
                ends.append((name, index + 1, len(stack)))
        index += 1
    return ends


# --- grok --------------------------------------------------------------------------

_REFERENCE = re.compile(
    r"%\{(?P<name>[A-Za-z0-9_]+)(?::(?P<field>[^:}]+))?(?::(?P<type>[A-Za-z]+))?\}"
)
_MAX_DEPTH = 64


def builtin_patterns() -> dict[str, str]:
    """logweir's own grok vocabulary, ``patterns/logweir.grok``."""
    text = (
        resources.files("logweir.formats")
        .joinpath("patterns/logweir.grok")
        .read_text(encoding="utf-8")
    )
    return _parse_patterns(text, "logweir.grok")


def load_patterns(path: str | Path) -> dict[str, str]:
    """Grok definitions from a file, or from every file in a directory.

    Raises :class:`FormatError` naming a file that cannot be read.
    """
    path = Path(path)
    files = (
        sorted(item for item in path.iterdir() if item.is_file())
        if path.is_dir()
        else [path]
    )
    library: dict[str, str] = {}
    for item in files:
        try:
            text = item.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise FormatError(
                f"cannot read grok patterns from {item}: {error}"
            ) from error
        library.update(_parse_patterns(text, str(item)))
    return library


def _parse_patterns(text: str, origin: str) -> dict[str, str]:
    library: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, regex = stripped.partition(" ")
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not regex.strip():
            logger.warning(
                "grok patterns %s:%d: not 'NAME regex'; skipped", origin, number
            )
            continue
        library[name] = regex.strip()
    return library


def expand_grok(pattern: str, library: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """A Python regex for ``pattern``, and its group name -> field name.

    Groups are named ``_g0``, ``_g1`` … because grok field names
    (``[http][request][method]``) are not regex group names; ECS bracket
    names become dotted (``http.request.method``).
    """
    fields: dict[str, str] = {}

    def expand(text: str, depth: int, origin: str) -> str:
        if depth > _MAX_DEPTH:
            raise FormatError(
                f"grok pattern {origin} refers to itself "
                f"(more than {_MAX_DEPTH} levels)",
                format=pattern,
            )
        text = _rename_inline_groups(text, fields)
        out: list[str] = []
        position = 0
        for reference in _REFERENCE.finditer(text):
            out.append(text[position : reference.start()])
            out.append(_expand_one(reference, depth, origin))
            position = reference.end()
        out.append(text[position:])
        return "".join(out)

    def _expand_one(reference: re.Match[str], depth: int, origin: str) -> str:
        name = reference.group("name")
        if name not in library:
            where = (
                f" at position {reference.start()}" if depth == 0 else f" (in {origin})"
            )
            raise FormatError(
                f"unknown grok pattern %{{{name}}}{where}",
                format=pattern,
                position=reference.start() if depth == 0 else None,
            )
        body = expand(library[name], depth + 1, f"%{{{name}}}")
        field = reference.group("field")
        if field is None:
            return f"(?:{body})"
        group = f"_g{len(fields)}"
        fields[group] = _field_name(field)
        return f"(?P<{group}>{body})"

    return expand(pattern, 0, "the pattern"), fields


def _rename_inline_groups(text: str, fields: dict[str, str]) -> str:
    """Inline ``(?<name>…)`` captures in grok text get ``_gN`` names too."""

    def rename(match: re.Match[str]) -> str:
        group = f"_g{len(fields)}"
        fields[group] = _field_name(match.group(1))
        return f"(?P<{group}>"

    return re.sub(r"\(\?P?<([A-Za-z_@\[\]][^>]*)>", rename, text)


def _field_name(field: str) -> str:
    """``[http][request][method]`` to ``http.request.method``; others as given."""
    if field.startswith("["):
        return ".".join(re.findall(r"\[([^\]]*)\]", field))
    return field


__all__ = [
    "GROK_KEYS",
    "REGEX_KEYS",
    "GrokParser",
    "RegexParser",
    "builtin_patterns",
    "compile_grok",
    "expand_grok",
    "load_patterns",
]
