"""Following files: rotation, truncation, deletion, inode reuse, resume.

Real files, real writers (threads and a separate process), no mocks. Each
test that matters runs twice: with inotify and on the polling path. Waits
use generous deadlines and never assert on elapsed time.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from logweir.errors import SourceError
from logweir.sources import Follower, SourceBatch

WRITER = Path(__file__).with_name("rotating_writer.py")
DEADLINE_S = 60.0

#: Both ways of noticing changes: inotify, and stat polling alone.
MODES = [pytest.param(True, id="inotify"), pytest.param(False, id="polling")]


@dataclass
class Seen:
    """Every line a follower handed out, with where it came from."""

    rows: list[tuple[str, str, int, int, str]] = field(default_factory=list)

    def add(self, batches: list[SourceBatch]) -> None:
        for batch in batches:
            offsets = batch.lines.offsets.to_list()
            assert offsets[0] == batch.start
            assert batch.end > offsets[-1]
            assert batch.lines.source.endswith("#" + batch.stream)
            self.rows.extend(
                zip(
                    [batch.stream] * len(offsets),
                    [batch.lines.source] * len(offsets),
                    offsets,
                    batch.lines.line_numbers.to_list(),
                    batch.lines.lines.to_list(),
                    strict=True,
                )
            )

    @property
    def lines(self) -> list[str]:
        return [row[4] for row in self.rows]

    def by_stream(self) -> dict[str, list[str]]:
        streams: dict[str, list[str]] = {}
        for stream, _, _, _, line in self.rows:
            streams.setdefault(stream, []).append(line)
        return streams


def follow_until(
    follower: Follower,
    done: Callable[[Seen], bool],
    seen: Seen | None = None,
    deadline_s: float = DEADLINE_S,
) -> Seen:
    """Poll until ``done(seen)``; fail with what was seen at the deadline."""
    seen = Seen() if seen is None else seen
    deadline = time.monotonic() + deadline_s
    while not done(seen):
        if time.monotonic() > deadline:
            pytest.fail(
                f"gave up waiting; saw {len(seen.rows)} lines: {seen.lines[-5:]}"
            )
        seen.add(follower.poll(0.05))
    return seen


def has_lines(count: int) -> Callable[[Seen], bool]:
    return lambda seen: len(seen.rows) >= count


def settle(follower: Follower, seen: Seen, seconds: float = 0.3) -> Seen:
    """Keep polling a little longer: whatever comes now is a duplicate."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(follower.poll(0.05))
    return seen


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def numbered(start: int, stop: int, tag: str = "line") -> str:
    return "".join(f"{tag} {n}\n" for n in range(start, stop))


@pytest.fixture
def make_follower() -> Iterator[Callable[..., Follower]]:
    made: list[Follower] = []

    def make(*args: object, **kwargs: object) -> Follower:
        kwargs.setdefault("poll_interval_s", 0.05)
        kwargs.setdefault("grace_s", 0.2)
        follower = Follower(*args, **kwargs)  # type: ignore[arg-type]
        made.append(follower)
        return follower

    yield make
    for follower in made:
        follower.close()


# -- lines -------------------------------------------------------------------


@pytest.mark.parametrize("inotify", MODES)
def test_lines_carry_identity_offsets_and_numbers(tmp_path, make_follower, inotify):
    log = tmp_path / "app.log"
    log.write_text("alpha\nbeta\n")
    follower = make_follower([str(log)], use_inotify=inotify)
    assert follower.watching is inotify
    seen = follow_until(follower, has_lines(2))
    append(log, "gamma\n")
    follow_until(follower, has_lines(3), seen)
    [(stream, source)] = {row[:2] for row in seen.rows}
    assert source == f"{log}#{stream}"
    assert len(stream) == 16 and int(stream, 16) >= 0
    assert [row[2:] for row in seen.rows] == [
        (0, 1, "alpha"),
        (6, 2, "beta"),
        (11, 3, "gamma"),
    ]
    position = follower.positions()[stream]
    assert position["offset"] == 17 and position["line_number"] == 4
    assert position["path"] == str(log) and position["active"] is True


@pytest.mark.parametrize("inotify", MODES)
def test_partial_line_waits_for_its_newline(tmp_path, make_follower, inotify):
    log = tmp_path / "app.log"
    log.write_text("first\nsec")
    follower = make_follower([str(log)], use_inotify=inotify)
    seen = follow_until(follower, has_lines(1))
    settle(follower, seen)
    assert seen.lines == ["first"]
    [position] = follower.positions().values()
    assert position["offset"] == 6
    append(log, "ond\n")
    follow_until(follower, has_lines(2), seen)
    assert seen.lines == ["first", "second"]


def test_a_long_line_written_in_many_pieces_is_joined_once(
    tmp_path, make_follower, monkeypatch
):
    """A line without its newline yet is not copied again on every read:
    a log written in small pieces without newlines would cost time
    growing with the square of its length."""
    from logweir.sources.reader import LineSplitter

    fed: list[int] = []
    feed = LineSplitter.feed

    def counting(self: LineSplitter, data: bytes) -> object:
        fed.append(self.pending_bytes + len(data))  # bytes this call copies
        return feed(self, data)

    monkeypatch.setattr(LineSplitter, "feed", counting)
    log = tmp_path / "app.log"
    log.write_text("first\n")
    follower = make_follower([str(log)], coalesce_s=0)
    seen = follow_until(follower, has_lines(1))
    piece = "x" * 1000
    for _ in range(40):
        append(log, piece)
        settle(follower, seen, 0.01)
    append(log, "\n")
    follow_until(follower, has_lines(2), seen)
    assert seen.lines == ["first", piece * 40]
    assert sum(fed) < 3 * len(piece) * 40


def test_young_file_gets_identity_once_its_first_line_is_complete(
    tmp_path, make_follower
):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = make_follower([str(log)])
    assert follower.poll(0.1) == []
    assert follower.positions() == {}
    append(log, "hello ")
    assert follower.poll(0.1) == []
    append(log, "world\nmore\n")
    seen = follow_until(follower, has_lines(2))
    assert seen.lines == ["hello world", "more"]
    [position] = follower.positions().values()
    assert position["head_bytes"] == len("hello world\n")


def test_batch_bytes_bounds_each_poll(tmp_path, make_follower):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 20_000))
    follower = make_follower([str(log)], batch_bytes=4096)
    seen = Seen()
    while len(seen.rows) < 20_000:
        batches = follower.poll(1.0)
        assert batches, "the follower stopped before the end of the file"
        # At most 4096 new bytes, plus the start of a line held from before.
        assert sum(b.end - b.start for b in batches) <= 4096 + len("line 19999\n")
        seen.add(batches)
    assert seen.lines == numbered(0, 20_000).splitlines()


# -- rotation ----------------------------------------------------------------


@pytest.mark.parametrize("inotify", MODES)
def test_rename_and_create_reads_old_file_to_its_end_then_new(
    tmp_path, make_follower, inotify
):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 3))
    follower = make_follower([str(log)], use_inotify=inotify)
    seen = follow_until(follower, has_lines(3))
    log.rename(tmp_path / "app.log.1")
    append(tmp_path / "app.log.1", numbered(3, 5))  # the writer has not reopened yet
    log.write_text(numbered(5, 8))
    follow_until(follower, has_lines(8), seen)
    settle(follower, seen)
    old, new = sorted(seen.by_stream().values(), key=len, reverse=True)
    assert old == numbered(0, 5).splitlines()
    assert new == numbered(5, 8).splitlines()
    sources = {row[1].split("#")[0] for row in seen.rows}
    assert sources == {str(log)}  # the name each file had when first seen
    # The renamed file is closed once read and quiet.
    positions = follow_until_positions(follower, lambda p: len(active(p)) == 1)
    [(stream, position)] = active(positions).items()
    assert position["path"] == str(log) and seen.by_stream()[stream] == new


def active(positions: dict) -> dict:
    return {k: v for k, v in positions.items() if v["active"]}


def follow_until_positions(follower: Follower, done: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while not done(follower.positions()):
        assert time.monotonic() < deadline, follower.positions()
        assert follower.poll(0.05) == []
    return follower.positions()


@pytest.mark.parametrize("inotify", MODES)
def test_copytruncate_starts_a_new_generation_from_byte_zero(
    tmp_path, make_follower, inotify
):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 50))
    follower = make_follower([str(log)], use_inotify=inotify)
    seen = follow_until(follower, has_lines(50))
    (tmp_path / "app.log.1").write_bytes(log.read_bytes())  # copy, then truncate
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, numbered(50, 53, "after"))
    follow_until(follower, has_lines(53), seen)
    settle(follower, seen)
    streams = seen.by_stream()
    assert list(streams.values()) == [
        numbered(0, 50).splitlines(),
        numbered(50, 53, "after").splitlines(),
    ]
    first, second = streams
    positions = follower.positions()
    assert positions[first]["inode"] == positions[second]["inode"]
    assert positions[first]["generation"] == 0
    assert positions[second]["generation"] == 1
    assert not positions[first]["active"] and positions[second]["offset"] == len(
        numbered(50, 53, "after")
    )


@pytest.mark.parametrize("inotify", MODES)
def test_copytruncate_copy_matched_by_the_glob_gives_each_line_once(
    tmp_path, make_follower, inotify
):
    """logrotate's copytruncate with ``app.log*`` followed: the copy is not
    read again, and the lines written just before the truncation, which
    only the copy holds, are read from it."""
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 1000))  # more than the 4 KiB a copy is known by
    follower = make_follower([str(tmp_path / "app.log*")], use_inotify=inotify)
    seen = follow_until(follower, has_lines(1000))
    append(log, numbered(1000, 1010))  # not read before the truncation
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, numbered(0, 5, "after"))
    follow_until(follower, has_lines(1015), seen)
    settle(follower, seen)
    assert list(seen.by_stream().values()) == [
        numbered(0, 1010).splitlines(),
        numbered(0, 5, "after").splitlines(),
    ]
    old = follower.positions()[seen.rows[0][0]]
    assert old["path"] == str(tmp_path / "app.log.1")
    assert old["offset"] == len(numbered(0, 1010)) and old["active"]


@pytest.mark.parametrize("inotify", MODES)
def test_copytruncate_of_a_young_file_gives_each_line_once(
    tmp_path, make_follower, inotify
):
    """Less than the 4 KiB a copy is known by was read when the copy came:
    the copy still continues its original, it is not a new file."""
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 3))
    follower = make_follower([str(tmp_path / "app.log*")], use_inotify=inotify)
    seen = follow_until(follower, has_lines(3))
    append(log, numbered(3, 6))  # not read before the truncation
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, numbered(0, 2, "after"))
    follow_until(follower, has_lines(8), seen)
    settle(follower, seen)
    assert list(seen.by_stream().values()) == [
        numbered(0, 6).splitlines(),
        numbered(0, 2, "after").splitlines(),
    ]


def test_copy_older_than_what_was_read_is_not_read_after_truncation(
    tmp_path, make_follower
):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 1000))
    follower = make_follower([str(tmp_path / "app.log*")])
    seen = follow_until(follower, has_lines(1000))
    shutil.copyfile(log, tmp_path / "app.log.1")
    append(log, numbered(1000, 1010))
    follow_until(follower, has_lines(1010), seen)  # read past the copy's end
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, numbered(0, 5, "after"))
    follow_until(follower, has_lines(1015), seen)
    settle(follower, seen)
    assert list(seen.by_stream().values()) == [
        numbered(0, 1010).splitlines(),
        numbered(0, 5, "after").splitlines(),
    ]


def test_a_copy_of_a_followed_file_is_not_read_twice(tmp_path, make_follower):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 1000))
    follower = make_follower([str(tmp_path / "*.log")])
    seen = follow_until(follower, has_lines(1000))
    shutil.copyfile(log, tmp_path / "backup.log")
    (tmp_path / "other.log").write_text(numbered(0, 2, "other"))
    follow_until(follower, has_lines(1002), seen)
    settle(follower, seen)
    assert len(seen.rows) == 1002


def test_a_file_starting_like_another_is_read_once_it_differs(tmp_path, make_follower):
    (tmp_path / "a.log").write_text("started\n")
    follower = make_follower([str(tmp_path / "*.log")])
    seen = follow_until(follower, has_lines(1))
    (tmp_path / "b.log").write_text("started\n")  # a copy, as far as is known
    settle(follower, seen)
    assert seen.lines == ["started"]
    append(tmp_path / "b.log", "b only\n")
    follow_until(follower, has_lines(3), seen)
    assert sorted(seen.by_stream().values()) == [["started"], ["started", "b only"]]


def test_truncated_and_written_past_the_old_end_is_still_caught(
    tmp_path, make_follower
):
    """A truncation noticed only after the file grew back past our offset."""
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\n")
    follower = make_follower([str(log)], use_inotify=False, poll_interval_s=30)
    seen = follow_until(follower, has_lines(2))
    # Polling only, every 30 s: nothing looks at the file until the next poll.
    log.write_text("a different and much longer first line\nnext\n")
    follower._next_tick_s = 0.0  # the next poll checks every file now
    follow_until(follower, has_lines(4), seen)
    assert seen.lines[2:] == ["a different and much longer first line", "next"]
    assert len(seen.by_stream()) == 2


def test_deleted_file_is_drained_then_dropped(tmp_path, make_follower):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 10))
    follower = make_follower([str(log)])
    seen = follow_until(follower, has_lines(10))
    with open(log, "a") as handle:  # a writer that still holds the file
        log.unlink()
        handle.write(numbered(10, 20))
        handle.flush()
        follow_until(follower, has_lines(20), seen)
        handle.write("after a pause\n")
    follow_until(follower, has_lines(21), seen)
    positions = follow_until_positions(follower, lambda p: not active(p))
    assert seen.lines == [*numbered(0, 20).splitlines(), "after a pause"]
    [position] = positions.values()
    assert position["offset"] == len(numbered(0, 20) + "after a pause\n")


def test_deleted_file_ending_without_newline_hands_out_its_last_line(
    tmp_path, make_follower
):
    log = tmp_path / "app.log"
    log.write_text("whole\ncut off")
    follower = make_follower([str(log)])
    seen = follow_until(follower, has_lines(1))
    log.unlink()
    follow_until(follower, has_lines(2), seen)
    assert seen.lines == ["whole", "cut off"]


def reuse_inode(path: Path, inode: int, text: str) -> bool:
    """Write ``text`` to a new file that gets ``inode`` (ext4 hands a freed one
    back at once) and rename it to ``path``; return whether that happened."""
    for attempt in range(200):
        candidate = path.with_name(f"candidate{attempt}")  # matches no pattern
        candidate.write_text(text)
        if candidate.stat().st_ino == inode:
            candidate.rename(path)
            return True
    return False


@pytest.mark.parametrize("inotify", MODES)
def test_inode_reused_by_a_new_file_is_read_from_its_start(
    tmp_path, make_follower, inotify
):
    # Other processes creating files may take the freed inode first: try a
    # few times before giving up.
    for attempt in range(5):
        log = tmp_path / str(attempt) / "app.log"
        log.parent.mkdir()
        log.write_text(numbered(0, 5, "old"))
        inode = log.stat().st_ino
        follower = make_follower([str(log)], use_inotify=inotify)
        seen = follow_until(follower, has_lines(5))
        log.unlink()
        follow_until_positions(follower, lambda p: not active(p))  # inode free
        new_text = numbered(0, 8, "new")  # longer: past the old offset
        if reuse_inode(log, inode, new_text):
            break
        follower.close()
    else:
        pytest.skip("the file system did not hand the freed inode back")
    follow_until(follower, has_lines(13), seen)
    settle(follower, seen)
    streams = seen.by_stream()
    assert list(streams.values())[1] == new_text.splitlines()
    assert len(streams) == 2
    old, new = (follower.positions()[stream] for stream in streams)
    assert old["inode"] == new["inode"] and new["generation"] == 1


def test_same_inode_rewritten_while_stopped_is_a_new_file(tmp_path, make_follower):
    """What resume sees when an inode was reused (or overwritten) while down."""
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 5, "old"))
    first = make_follower([str(log)])
    follow_until(first, has_lines(5))
    positions = first.positions()
    first.close()
    with open(log, "r+") as handle:  # same inode, other content, bigger
        handle.write(numbered(0, 9, "new"))
    second = make_follower([str(log)], resume=positions)
    seen = follow_until(second, has_lines(9))
    assert seen.lines == numbered(0, 9, "new").splitlines()
    [new_stream] = seen.by_stream()
    assert new_stream not in positions
    assert second.positions()[new_stream]["generation"] == 1


@pytest.mark.parametrize("inotify", MODES)
def test_glob_picks_up_files_as_they_appear(tmp_path, make_follower, inotify):
    (tmp_path / "a.log").write_text("a 1\n")
    follower = make_follower([str(tmp_path / "*.log")], use_inotify=inotify)
    seen = follow_until(follower, has_lines(1))
    (tmp_path / "b.log").write_text("b 1\n")
    (tmp_path / "ignored.txt").write_text("not matched\n")
    follow_until(follower, has_lines(2), seen)
    append(tmp_path / "a.log", "a 2\n")
    append(tmp_path / "b.log", "b 2\n")
    follow_until(follower, has_lines(4), seen)
    settle(follower, seen)
    assert sorted(seen.by_stream().values()) == [["a 1", "a 2"], ["b 1", "b 2"]]


def test_glob_in_directory_part_picks_up_new_directories(tmp_path, make_follower):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "app.log").write_text("one\n")
    follower = make_follower([str(tmp_path / "*" / "app.log")])
    seen = follow_until(follower, has_lines(1))
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "app.log").write_text("two\n")
    follow_until(follower, has_lines(2), seen)
    append(tmp_path / "two" / "app.log", "two again\n")
    follow_until(follower, has_lines(3), seen)
    assert sorted(seen.lines) == ["one", "two", "two again"]


def test_compressed_rotated_files_are_skipped(tmp_path, make_follower, caplog):
    caplog.set_level(logging.INFO, logger="logweir.sources.follow")
    (tmp_path / "access.log").write_text("live\n")
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(b"old\n"))
    follower = make_follower([str(tmp_path / "access.log*")])
    seen = follow_until(follower, has_lines(1))
    (tmp_path / "access.log.2.gz").write_bytes(gzip.compress(b"older\n"))
    append(tmp_path / "access.log", "live 2\n")
    follow_until(follower, has_lines(2), seen)
    settle(follower, seen)
    assert seen.lines == ["live", "live 2"]
    assert "access.log.1.gz: gzip-compressed" in caplog.text


def test_many_files_written_at_once(tmp_path, make_follower):
    files, per_file = 24, 2_000

    def write(index: int) -> None:
        with open(tmp_path / f"f{index:02d}.log", "a") as handle:
            for n in range(per_file):
                handle.write(f"{index} {n}\n")
                if n % 50 == 0:
                    handle.flush()

    follower = make_follower([str(tmp_path / "*.log")], batch_bytes=64 << 10)
    writers = [threading.Thread(target=write, args=(i,)) for i in range(files)]
    for writer in writers:
        writer.start()
    seen = follow_until(follower, has_lines(files * per_file))
    for writer in writers:
        writer.join()
    settle(follower, seen)
    streams = seen.by_stream()
    assert len(streams) == files
    for lines in streams.values():
        index = lines[0].split()[0]
        assert lines == [f"{index} {n}" for n in range(per_file)]


# -- the burst ---------------------------------------------------------------


@pytest.mark.slow
def test_rotation_every_100k_lines_during_a_1m_line_burst(tmp_path, make_follower):
    """Another process writes 1M lines, renaming the file every 100K lines."""
    total, every = 1_000_000, 100_000
    log = tmp_path / "app.log"
    log.touch()
    follower = make_follower([str(log)], batch_bytes=1 << 20)
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(log), str(total), str(every), "200"]
    )
    try:
        seen = follow_until(follower, has_lines(total), deadline_s=300)
        assert writer.wait(60) == 0
        settle(follower, seen, 0.5)
    finally:
        writer.kill()
        writer.wait()
    numbers = [int(line.split()[0]) for line in seen.lines]
    assert len(numbers) == total and sorted(numbers) == list(range(total))
    streams = seen.by_stream()
    assert len(streams) == total // every
    for lines in streams.values():
        numbers = [int(line.split()[0]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert len({line.split()[1] for line in lines}) == 1  # one file each


# -- resume ------------------------------------------------------------------


@pytest.mark.parametrize("rename_while_stopped", [False, True])
def test_resume_continues_exactly_where_positions_were_taken(
    tmp_path, make_follower, rename_while_stopped
):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 1000) + "half a li")
    first = make_follower([str(log)], batch_bytes=2048)
    seen = Seen()
    seen.add(first.poll(1.0))  # a first part of the file only
    assert 0 < len(seen.rows) < 1000
    positions = first.positions()
    first.close()
    append(log, "ne\n" + numbered(1000, 1100))
    if rename_while_stopped:
        log.rename(tmp_path / "app.log.1")
        log.write_text(numbered(0, 3, "new file"))
    second = make_follower([str(log)], resume=positions)
    expected = [*numbered(0, 1000).splitlines(), "half a line"]
    expected += numbered(1000, 1100).splitlines()
    if rename_while_stopped:
        expected += numbered(0, 3, "new file").splitlines()
    follow_until(second, has_lines(len(expected)), seen)
    settle(second, seen)
    assert sorted(seen.lines) == sorted(expected)
    [old_stream] = positions
    assert seen.by_stream()[old_stream] == expected[:1101]
    offsets = [row[2] for row in seen.rows if row[0] == old_stream]
    numbers = [row[3] for row in seen.rows if row[0] == old_stream]
    assert offsets == sorted(set(offsets)) and numbers == list(range(1, 1102))


def test_resume_reads_an_unknown_file_as_new(tmp_path, make_follower):
    (tmp_path / "a.log").write_text("a\n")
    first = make_follower([str(tmp_path / "*.log")])
    follow_until(first, has_lines(1))
    positions = first.positions()
    first.close()
    (tmp_path / "b.log").write_text("b\n")
    second = make_follower([str(tmp_path / "*.log")], resume=positions)
    seen = settle(second, follow_until(second, has_lines(1)))
    assert seen.lines == ["b"]


def test_start_at_end_skips_what_is_there(tmp_path, make_follower):
    log = tmp_path / "app.log"
    log.write_text(numbered(0, 100) + "partial")
    follower = make_follower([str(log)], start_at="end")
    assert settle(follower, Seen()).rows == []
    append(log, " line\nnext\n")
    seen = follow_until(follower, has_lines(2))
    assert [row[2:] for row in seen.rows] == [
        (len(numbered(0, 100)), 101, "partial line"),
        (len(numbered(0, 100) + "partial line\n"), 102, "next"),
    ]


# -- bad input ---------------------------------------------------------------


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match=r"cannot follow .*nope/\*\.log'"):
        Follower([str(tmp_path / "nope" / "*.log")])


def test_bad_positions_are_a_clear_error(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("a\n")
    with Follower([str(log)]) as follower:
        follow_until(follower, has_lines(1))
        positions = follower.positions()
    [entry] = positions.values()
    entry["offset"] = "2"
    with pytest.raises(
        SourceError, match=r"bad follow positions: '\w+' has no valid 'offset'"
    ):
        Follower([str(log)], resume=positions)
    with pytest.raises(SourceError, match="bad follow positions: 'x' is not an object"):
        Follower([str(log)], resume={"x": 1})


def test_poll_after_close_is_an_error(tmp_path):
    follower = Follower([str(tmp_path / "*.log")])
    follower.close()
    follower.close()
    with pytest.raises(SourceError, match="closed"):
        follower.poll(0)


def test_files_rotated_away_before_they_were_opened_are_still_read(
    tmp_path, make_follower
):
    """A slow consumer: the writer renames files the follower has not seen yet.

    inotify names where each one went; the polling path cannot know (see
    docs/follow.md), so this runs with inotify only.
    """
    total, every = 200_000, 10_000
    log = tmp_path / "app.log"
    log.touch()
    follower = make_follower([str(log)], batch_bytes=64 << 10, poll_interval_s=30)
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(log), str(total), str(every), "500"]
    )
    seen = Seen()
    try:
        while writer.poll() is None:
            seen.add(follower.poll(0.05))
            time.sleep(0.05)  # the consumer is slow
        assert writer.returncode == 0
        follow_until(follower, has_lines(total), seen)
        settle(follower, seen)
    finally:
        writer.kill()
        writer.wait()
    numbers = sorted(int(line.split()[0]) for line in seen.lines)
    assert numbers == list(range(total))
    assert len(seen.by_stream()) == total // every
