"""A log writer that rotates its file, run as its own process by the follow tests.

Usage: ``python rotating_writer.py PATH LINES ROTATE_EVERY [LINES_PER_WRITE]``

Writes lines ``"<n> <file>\\n"`` (n from 0) to PATH, a few lines per
``write`` like a busy server, and every ROTATE_EVERY lines renames PATH to
``PATH.<k>`` (k = 1, 2, ...), as logrotate's default (rename and create)
does; like a server that reopens its log on a signal, it writes once more
into the renamed file before it opens a new PATH. ``<file>`` is the number
of the file written to. Prints nothing; exits 0 when done.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    path, lines, rotate_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per_write = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    rotations = 0
    handle = open(path, "ab", buffering=0)  # noqa: SIM115 (reopened at rotation)
    written = 0
    late = False
    while written < lines:
        count = min(per_write, lines - written, rotate_every - written % rotate_every)
        handle.write(
            b"".join(
                b"%d %d\n" % (n, rotations) for n in range(written, written + count)
            )
        )
        written += count
        if late:  # one write into the renamed file, then reopen, like a server
            late = False
            handle.close()
            handle = open(path, "ab", buffering=0)  # noqa: SIM115
            rotations += 1
        elif written % rotate_every == 0 and written < lines:
            os.rename(path, f"{path}.{rotations + 1}")
            late = True
    handle.close()


if __name__ == "__main__":
    main()
