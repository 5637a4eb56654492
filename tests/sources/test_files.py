"""Sources: finding inputs, planning chunks, and reading them as line batches."""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from logweir.errors import SourceError
from logweir.schema import LineBatch
from logweir.sources import (
    Chunk,
    InputFile,
    LineSplitter,
    expand_inputs,
    plan_chunks,
    read_chunk,
    read_stream,
    sniff_compression,
)

SAMPLE = (
    b'10.0.0.1 - - [03/Jun/2024:08:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "curl"\n'
    b'10.0.0.2 - - [03/Jun/2024:08:00:01 +0000] "GET /a HTTP/1.1" 404 0 "-" "curl"\n'
    b"\n"
    b'2001:db8::1 - - [03/Jun/2024:08:00:02 +0000] "POST /api HTTP/2" 201 17 "-" "x"\n'
)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_all(inp: InputFile, chunk_bytes: int = 64 << 20, batch_bytes: int = 1 << 20):
    """(offset, line_number, line) of every line, chunk after chunk."""
    rows = []
    for chunk in plan_chunks(inp, chunk_bytes):
        for batch in read_chunk(chunk, batch_bytes):
            rows.extend(rows_of(batch))
    return rows


def rows_of(batch: LineBatch) -> list[tuple[int, int, str]]:
    return list(
        zip(
            batch.offsets.to_list(),
            batch.line_numbers.to_list(),
            batch.lines.to_list(),
            strict=True,
        )
    )


def reference_rows(raw: bytes) -> list[tuple[int, int, str]]:
    """The slow, obvious answer: split the bytes in Python."""
    rows = []
    offset = 0
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    for number, piece in enumerate(pieces, start=1):
        rows.append((offset, number, piece.decode("utf-8", "replace")))
        offset += len(piece) + 1
    return rows


# -- expand_inputs ---------------------------------------------------------


def test_a_file_becomes_its_absolute_path_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write(tmp_path / "logs" / "access.log", SAMPLE)
    monkeypatch.chdir(tmp_path)
    [from_root] = expand_inputs(["logs/access.log"])
    monkeypatch.chdir(tmp_path / "logs")
    [from_logs] = expand_inputs(["access.log"])
    assert from_root == from_logs
    assert from_root.path == str(log)
    assert from_root.size_bytes == len(SAMPLE)
    assert from_root.compression is None
    assert from_root.head_bytes == len(SAMPLE)
    assert len(from_root.fingerprint) == 16
    assert from_root.inode == log.stat().st_ino


def test_globs_match_in_name_order_and_span_directories_with_double_star(
    tmp_path: Path,
) -> None:
    for name in ("b.log", "a.log", "sub/c.log", "sub/deep/d.log", ".hidden.log"):
        write(tmp_path / name, SAMPLE)
    write(tmp_path / "notes.txt", b"x\n")
    flat = expand_inputs([str(tmp_path / "*.log")])
    assert [Path(i.path).name for i in flat] == ["a.log", "b.log"]
    deep = expand_inputs([str(tmp_path / "**" / "*.log")])
    assert [os.path.relpath(i.path, tmp_path) for i in deep] == [
        "a.log",
        "b.log",
        "sub/c.log",
        "sub/deep/d.log",
    ]


def test_a_directory_is_walked_skipping_hidden_entries_and_binary_files(
    tmp_path: Path,
) -> None:
    write(tmp_path / "web" / "access.log", SAMPLE)
    write(tmp_path / "web" / "access.log.1.gz", gzip.compress(SAMPLE))
    write(tmp_path / "app.log", SAMPLE)
    write(tmp_path / ".git" / "HEAD", b"ref: refs/heads/main\n")
    write(tmp_path / ".state", b"x\n")
    write(tmp_path / "out" / "part-0.parquet", b"PAR1\x15\x04")
    write(tmp_path / "out" / "store.sqlite", b"SQLite format 3\x00rest")
    write(tmp_path / "out" / "logweir.duckdb", b"\x00" * 8 + b"DUCK" + b"\x00" * 8)
    found = expand_inputs([str(tmp_path)])
    assert [os.path.relpath(i.path, tmp_path) for i in found] == [
        "app.log",
        "web/access.log",
        "web/access.log.1.gz",
    ]
    assert [i.compression for i in found] == [None, None, "gzip"]


def test_a_binary_file_named_explicitly_is_read_anyway(tmp_path: Path) -> None:
    parquet = write(tmp_path / "x.parquet", b"PAR1\x15\x04")
    assert [i.path for i in expand_inputs([str(parquet)])] == [str(parquet)]


def test_the_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", SAMPLE)
    found = expand_inputs([str(log), str(tmp_path / "*.log"), str(tmp_path)])
    assert [i.path for i in found] == [str(log)]


def test_a_dash_is_standard_input() -> None:
    [inp] = expand_inputs(["-", "-"])
    assert inp.path == "-"
    assert inp.is_stream
    assert inp.fingerprint == "stdin"


def test_compression_is_found_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    zipped = write(tmp_path / "plain-name.log", gzip.compress(SAMPLE))
    plain = write(tmp_path / "fake.gz", SAMPLE)
    found = {Path(i.path).name: i.compression for i in expand_inputs([str(tmp_path)])}
    assert found == {zipped.name: "gzip", plain.name: None}


SNIFF_CASES = [
    ("gzip", gzip.compress(b"x\n", mtime=0), "gzip"),
    ("bz2", bz2.compress(b"x\n"), "bz2"),
    ("bz2 empty", bz2.compress(b""), "bz2"),
    ("xz", lzma.compress(b"x\n"), "xz"),
    ("zstd", zstandard.ZstdCompressor().compress(b"x\n"), "zstd"),
    ("text starting BZh9", b"BZh9 is how this log line starts\n", None),
    ("empty", b"", None),
    ("one gzip byte", b"\x1f", None),
]


@pytest.mark.parametrize(
    ("case", "data", "expected"), SNIFF_CASES, ids=[c[0] for c in SNIFF_CASES]
)
def test_sniff_compression(case: str, data: bytes, expected: str | None) -> None:
    assert sniff_compression(data[:16]) == expected


@pytest.mark.parametrize(
    ("make", "argument", "reason"),
    [
        (lambda d: None, "missing.log", "no such file or directory"),
        (lambda d: None, "nothing-*.log", "no file matches this pattern"),
        (lambda d: (d / "empty").mkdir(), "empty", "the directory holds no log files"),
        (
            lambda d: write(d / "only" / ".hidden", b"x\n"),
            "only",
            "the directory holds no log files",
        ),
        (
            lambda d: write(d / "file", b"x\n"),
            "file/child.log",
            "a parent of it is not a directory",
        ),
        (
            lambda d: os.mkfifo(d / "fifo") and None,
            "fifo/x",
            "a parent of it is not a directory",
        ),
    ],
)
def test_inputs_that_cannot_be_read_give_one_line_naming_them(
    tmp_path: Path, make: Callable[[Path], object], argument: str, reason: str
) -> None:
    make(tmp_path)
    given = str(tmp_path / argument)
    with pytest.raises(SourceError) as caught:
        expand_inputs([given])
    assert str(caught.value) == f"cannot read {given!r}: {reason}"


def test_a_socket_is_not_a_regular_file(tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        with pytest.raises(SourceError) as caught:
            expand_inputs([path])
    assert str(caught.value) == f"cannot read {path!r}: not a regular file"


def test_no_inputs_at_all_is_an_error() -> None:
    with pytest.raises(SourceError, match=r"^no input given: name files, globs"):
        expand_inputs([])


def _expand_without_privileges(path: str) -> str:
    """expand_inputs([path]) as an unprivileged user; the error it raised."""
    if os.geteuid() != 0:
        try:
            expand_inputs([path])
        except SourceError as error:
            return str(error)
        return "no error"
    # Root reads every file, so drop to 'nobody' in a child process.
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        try:
            os.setgid(65534)
            os.setuid(65534)
            expand_inputs([path])
            result = "no error"
        except SourceError as error:
            result = str(error)
        except BaseException as error:
            result = f"unexpected {error!r}"
        os.write(write_end, result.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(child, 0)
    return result


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_unreadable_file_is_a_permission_error_naming_it() -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        locked = write(Path(folder) / "locked.log", SAMPLE)
        os.chmod(locked, 0)
        assert _expand_without_privileges(str(locked)) == (
            f"cannot read {str(locked)!r}: permission denied"
        )
        os.chmod(locked, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        assert _expand_without_privileges(str(locked)) == "no error"


# -- plan_chunks -------------------------------------------------------------


def make_log(path: Path, count: int) -> bytes:
    raw = b"".join(
        b"line %d %s\n" % (number, b"x" * (number * 7 % 90)) for number in range(count)
    )
    write(path, raw)
    return raw


def test_chunks_cover_the_file_once_at_line_starts(tmp_path: Path) -> None:
    raw = make_log(tmp_path / "a.log", 2000)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    chunks = plan_chunks(inp, chunk_bytes=4096)
    assert len(chunks) > 10
    assert chunks[0].start == 0
    assert chunks[-1].end == len(raw)
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start
        assert raw[after.start - 1 : after.start] == b"\n"
        assert after.first_line == raw.count(b"\n", 0, after.start) + 1
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert read_all(inp, 4096, batch_bytes=1000) == reference_rows(raw)


def test_chunk_k_starts_after_the_first_newline_at_or_after_k_times_size(
    tmp_path: Path,
) -> None:
    # Lines of 10 bytes: with 25-byte chunks the targets are bytes 24, 49, 74.
    raw = b"".join(b"%09d\n" % n for n in range(10))
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    assert [(c.start, c.end, c.first_line) for c in plan_chunks(inp, 25)] == [
        (0, 30, 1),
        (30, 50, 4),
        (50, 80, 6),
        (80, 100, 9),
    ]
    # A line starting exactly at a multiple of the chunk size starts a chunk.
    assert [c.start for c in plan_chunks(inp, 20)] == [0, 20, 40, 60, 80]


def test_a_line_longer_than_several_chunks_makes_one_long_chunk(
    tmp_path: Path,
) -> None:
    raw = b"short\n" + b"y" * 100 + b"\nshort\nshort\n"
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    chunks = plan_chunks(inp, 10)
    assert [(c.start, c.end, c.first_line) for c in chunks] == [
        (0, 107, 1),
        (107, 113, 3),
        (113, 119, 4),
    ]
    assert read_all(inp, 10, batch_bytes=7) == reference_rows(raw)


def test_chunk_names_are_stable_and_do_not_depend_on_anything_but_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = make_log(tmp_path / "a.log", 500)
    monkeypatch.chdir(tmp_path)
    first = [c.name for c in plan_chunks(expand_inputs(["a.log"])[0], 2048)]
    monkeypatch.chdir("/")
    second = [
        c.name for c in plan_chunks(expand_inputs([str(tmp_path / "a.log")])[0], 2048)
    ]
    assert first == second
    assert len(set(first)) == len(first)
    inp = expand_inputs([str(tmp_path / "a.log")])[0]
    end = plan_chunks(inp, 2048)[0].end
    assert first[0] == f"{inp.fingerprint}-000000000000-{end:012d}"
    assert len(raw) > 4 * 2048
    # Appending keeps the names of every chunk but the last.
    with open(tmp_path / "a.log", "ab") as handle:
        handle.write(b"appended line\n" * 300)
    grown = [
        c.name for c in plan_chunks(expand_inputs([str(tmp_path / "a.log")])[0], 2048)
    ]
    assert grown[: len(first) - 1] == first[:-1]
    assert grown[len(first) - 1] != first[-1]


def test_two_files_with_the_same_content_get_different_names(tmp_path: Path) -> None:
    write(tmp_path / "a.log", SAMPLE)
    write(tmp_path / "b.log", SAMPLE)
    a, b = expand_inputs([str(tmp_path / "a.log"), str(tmp_path / "b.log")])
    assert a.head_hash == b.head_hash
    assert plan_chunks(a)[0].name != plan_chunks(b)[0].name


def test_an_empty_file_has_no_chunks_and_no_lines(tmp_path: Path) -> None:
    write(tmp_path / "empty.log", b"")
    [inp] = expand_inputs([str(tmp_path / "empty.log")])
    assert plan_chunks(inp) == []
    assert list(read_stream(io.BytesIO(b""), "x")) == []


def test_compressed_files_and_streams_are_one_chunk(tmp_path: Path) -> None:
    write(tmp_path / "a.log.gz", gzip.compress(SAMPLE * 100))
    [inp] = expand_inputs([str(tmp_path / "a.log.gz")])
    [chunk] = plan_chunks(inp, chunk_bytes=10)
    assert (chunk.start, chunk.end, chunk.first_line) == (0, None, 1)
    assert chunk.name == f"{inp.fingerprint}-000000000000-stream"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    lines=st.lists(
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
        max_size=40,
    ),
    trailing_newline=st.booleans(),
    chunk_bytes=st.integers(1, 120),
    batch_bytes=st.integers(1, 90),
)
def test_any_file_in_any_chunks_reads_like_one_python_split(
    lines: list[bytes], trailing_newline: bool, chunk_bytes: int, batch_bytes: int
) -> None:
    raw = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    assume(sniff_compression(raw[:16]) is None)
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "a.log", raw)
        [inp] = expand_inputs([str(path)])
        assert read_all(inp, chunk_bytes, batch_bytes) == reference_rows(raw)


# -- read_chunk and read_stream ----------------------------------------------


EDGE_CASES = [
    ("crlf", b"GET / 200\r\nGET /a 404\r\n", ["GET / 200\r", "GET /a 404\r"]),
    ("no trailing newline", b"one\ntwo", ["one", "two"]),
    ("empty lines", b"\n\none\n\n", ["", "", "one", ""]),
    ("latin-1 byte", b"caf\xe9 ok\nnext\n", ["caf\ufffd ok", "next"]),
    ("cut utf-8", b"\xe2\x82\nafter\n", ["\ufffd", "after"]),
    ("nul bytes", b"a\x00b\n\x00\n", ["a\x00b", "\x00"]),
    ("utf-8", "ünïcödé ✓\n€\n".encode(), ["ünïcödé ✓", "€"]),
    ("only a newline", b"\n", [""]),
]


@pytest.mark.parametrize(
    ("case", "raw", "expected"), EDGE_CASES, ids=[c[0] for c in EDGE_CASES]
)
@pytest.mark.parametrize("batch_bytes", [1, 3, 1 << 20])
def test_edge_lines_read_with_exact_offsets(
    tmp_path: Path, case: str, raw: bytes, expected: list[str], batch_bytes: int
) -> None:
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    rows = read_all(inp, batch_bytes=batch_bytes)
    assert [line for _, _, line in rows] == expected
    assert rows == reference_rows(raw)
    for offset, _, line in rows:
        encoded = line.encode()
        if "\ufffd" not in line:
            assert raw[offset : offset + len(encoded)] == encoded


def test_a_bad_byte_spoils_only_its_own_line(tmp_path: Path) -> None:
    good = [b"line %d" % n for n in range(1000)]
    good[500] = b"bad \xff here"
    raw = b"\n".join(good) + b"\n"
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    lines = [line for _, _, line in read_all(inp)]
    assert lines[499] == "line 499"
    assert lines[500] == "bad \ufffd here"
    assert lines[501] == "line 501"


def test_good_utf8_beside_a_bad_line_is_kept_intact(tmp_path: Path) -> None:
    lines = [f"ünïcödé €{n} ✓" for n in range(300)]
    raw = "\n".join(lines).encode() + b"\n"
    bad_at = raw.index("€150".encode())
    raw = raw[:bad_at] + b"\xff\xfe" + raw[bad_at:]
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    rows = read_all(inp)
    assert rows == reference_rows(raw)
    assert [line for _, _, line in rows if "\ufffd" in line] == [
        "ünïcödé \ufffd\ufffd€150 ✓"
    ]


def test_a_one_megabyte_line_survives_small_batches(tmp_path: Path) -> None:
    big = b"z" * (1 << 20)
    raw = b"before\n" + big + b"\nafter\n"
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    rows = read_all(inp, batch_bytes=64 << 10)
    assert [(o, n, len(line)) for o, n, line in rows] == [
        (0, 1, 6),
        (7, 2, 1 << 20),
        (7 + (1 << 20) + 1, 3, 5),
    ]


def test_a_line_past_the_maximum_is_cut_into_pieces(tmp_path: Path) -> None:
    raw = b"ok\n" + b"q" * 250 + b"\nend\n"
    write(tmp_path / "a.log", raw)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    [chunk] = plan_chunks(inp)
    rows = [r for b in read_chunk(chunk, 100, max_line_bytes=100) for r in rows_of(b)]
    assert [(o, len(line)) for o, _, line in rows] == [
        (0, 2),
        (3, 100),  # 197 bytes held without a newline: the first 100 go out
        (103, 150),  # the rest arrived with its newline in one read
        (254, 3),
    ]


def compressors() -> dict[str, Callable[[bytes], bytes]]:
    def zstd_frames(data: bytes) -> bytes:
        # Two frames, as parallel compressors write them.
        half = len(data) // 2
        compressor = zstandard.ZstdCompressor()
        return compressor.compress(data[:half]) + compressor.compress(data[half:])

    def gzip_members(data: bytes) -> bytes:
        half = len(data) // 2
        return gzip.compress(data[:half]) + gzip.compress(data[half:])

    return {
        "gzip": gzip_members,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zstd": zstd_frames,
    }


@pytest.mark.parametrize("kind", sorted(compressors()))
def test_compressed_files_read_like_plain_ones(tmp_path: Path, kind: str) -> None:
    raw = make_log(tmp_path / "plain.log", 3000) + b"tail without newline"
    write(tmp_path / "packed", compressors()[kind](raw))
    [inp] = expand_inputs([str(tmp_path / "packed")])
    assert inp.compression == kind
    assert read_all(inp, batch_bytes=5000) == reference_rows(raw)


@pytest.mark.parametrize("kind", sorted(compressors()))
def test_streams_are_decompressed_by_their_first_bytes(kind: str) -> None:
    packed = compressors()[kind](SAMPLE)
    rows = [r for b in read_stream(io.BytesIO(packed), "-", 7) for r in rows_of(b)]
    assert rows == reference_rows(SAMPLE)
    assert {b.source for b in read_stream(io.BytesIO(packed))} == {"-"}


def test_a_plain_stream_reads_from_a_pipe() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, SAMPLE)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        rows = [r for b in read_stream(pipe, "-") for r in rows_of(b)]
    assert rows == reference_rows(SAMPLE)


def test_a_truncated_gzip_file_raises_after_its_good_lines(tmp_path: Path) -> None:
    raw = make_log(tmp_path / "plain.log", 20000)
    packed = gzip.compress(raw)
    write(tmp_path / "cut.log.gz", packed[: len(packed) // 2])
    [inp] = expand_inputs([str(tmp_path / "cut.log.gz")])
    [chunk] = plan_chunks(inp)
    seen: list[tuple[int, int, str]] = []
    with pytest.raises(SourceError) as caught:
        for batch in read_chunk(chunk, 4096):
            seen.extend(rows_of(batch))
    message = str(caught.value)
    assert message.startswith(
        f"cannot read {inp.path!r}: corrupt or truncated gzip data after "
    )
    assert message.endswith(
        "bytes of text (Compressed file ended before the end-of-stream marker "
        "was reached)"
    )
    assert seen and seen == reference_rows(raw)[: len(seen)]


@pytest.mark.parametrize("kind", sorted(compressors()))
def test_a_cut_compressed_file_is_an_error_naming_it(tmp_path: Path, kind: str) -> None:
    packed = compressors()[kind](SAMPLE * 50)
    write(tmp_path / "cut", packed[: len(packed) - 7])
    [inp] = expand_inputs([str(tmp_path / "cut")])
    with pytest.raises(SourceError) as caught:
        for chunk in plan_chunks(inp):
            list(read_chunk(chunk))
    assert str(caught.value).startswith(
        f"cannot read {inp.path!r}: corrupt or truncated {kind} data after "
    )


def test_a_plain_file_that_looks_compressed_is_an_error_not_silence(
    tmp_path: Path,
) -> None:
    write(tmp_path / "odd.log", b"(\xb5/\xfd then text\n")
    [inp] = expand_inputs([str(tmp_path / "odd.log")])
    assert inp.compression == "zstd"
    with pytest.raises(SourceError, match="corrupt or truncated zstd data after 0 "):
        list(read_chunk(plan_chunks(inp)[0]))


def test_a_file_that_shrank_after_planning_is_an_error(tmp_path: Path) -> None:
    make_log(tmp_path / "a.log", 400)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    chunks = plan_chunks(inp, 1000)
    os.truncate(tmp_path / "a.log", chunks[-1].end - 10)  # type: ignore[operator]
    with pytest.raises(SourceError) as caught:
        list(read_chunk(chunks[-1]))
    assert str(caught.value) == (
        f"cannot read {inp.path!r}: the file shrank while being read "
        f"(ended at byte {chunks[-1].end - 10}, expected {chunks[-1].end})"  # type: ignore[operator]
    )


def test_a_file_rewritten_after_planning_is_an_error(tmp_path: Path) -> None:
    make_log(tmp_path / "a.log", 400)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    chunk = plan_chunks(inp, 1000)[1]
    (tmp_path / "a.log").write_bytes(b"x" * 20000)
    with pytest.raises(SourceError) as caught:
        list(read_chunk(chunk))
    assert str(caught.value) == (
        f"cannot read {inp.path!r}: the file changed since it was planned "
        f"(byte {chunk.start} no longer starts a line)"
    )


def test_chunks_pickle_for_worker_processes(tmp_path: Path) -> None:
    import pickle

    make_log(tmp_path / "a.log", 100)
    [inp] = expand_inputs([str(tmp_path / "a.log")])
    chunk = plan_chunks(inp, 500)[1]
    copy = pickle.loads(pickle.dumps(chunk))
    assert copy == chunk
    assert isinstance(copy, Chunk)


# -- LineSplitter (what the follow mode feeds) --------------------------------


def feed_all(
    splitter: LineSplitter, pieces: list[bytes]
) -> Iterator[tuple[int, int, str]]:
    for piece in pieces:
        batch = splitter.feed(piece)
        if batch is not None:
            yield from rows_of(batch)


def test_a_partial_line_waits_for_its_newline() -> None:
    splitter = LineSplitter("app.log")
    assert list(feed_all(splitter, [b"GET / 2", b"00\nGET", b" /b"])) == [
        (0, 1, "GET / 200")
    ]
    assert (splitter.position, splitter.pending_bytes) == (10, 6)
    assert list(feed_all(splitter, [b" 404\n"])) == [(10, 2, "GET /b 404")]
    assert splitter.finish() is None
    assert splitter.position == 21


def test_a_splitter_resumes_from_a_checkpoint() -> None:
    splitter = LineSplitter("app.log", position=1000, line_number=42)
    assert list(feed_all(splitter, [b"a\nbb\n"])) == [(1000, 42, "a"), (1002, 43, "bb")]
    assert splitter.position == 1005
