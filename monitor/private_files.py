"""Files the monitor writes are private: created with mode 0600 (state, detections,
history hold the wallets watched and what they traded).

:func:`hold_lock` is the one-writer rule of a state file: a second monitor on the same
state database would share its outbox and dedup table (trades written twice, or taken
into the other process's sink), so the second one is refused instead.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import IO

__all__ = ["PRIVATE_MODE", "FileInUse", "NotRegularFile", "check_regular",
           "end_of_last_line", "hold_lock", "open_private"]

PRIVATE_MODE = 0o600


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket: not a file the monitor may read or
    write. ``strerror`` is "not a regular file"."""


def check_regular(path: str | Path) -> None:
    """Raise :class:`NotRegularFile` when ``path`` exists and is not a regular file (a
    symlink is followed). Opening a FIFO blocks until a partner opens it: a ``--history``
    or a ``*_FILE`` naming one hung the monitor, signals and all."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    _refuse_irregular(st, path)


def _refuse_irregular(st: os.stat_result, path: str | Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))


def open_private(path: str | Path, *, buffering: int = -1) -> IO[str]:
    """Open ``path`` (a JSON-lines file) for appending text (UTF-8), creating it (and its
    folder) with mode 0600. An existing file keeps its mode; a torn last line (a process
    killed with part of a row written) is cut, so the first row written now is not glued
    to it (one line that is JSON neither way, in the middle of the file). Anything but a
    regular file is refused (:class:`NotRegularFile`), without waiting: the open is
    non-blocking, so a FIFO swapped in after the check cannot hang it either."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    check_regular(p)
    fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, PRIVATE_MODE)
    try:
        st = os.fstat(fd)
        _refuse_irregular(st, p)
        os.set_blocking(fd, True)
        end = end_of_last_line(fd, st.st_size)
        if end < st.st_size:
            os.ftruncate(fd, end)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8", buffering=buffering)


_CHUNK = 1 << 20  # bytes read at a time when looking for the last newline from the back


def end_of_last_line(fd: int, size: int) -> int:
    """The offset just after the last newline of the first ``size`` bytes of the file
    open as ``fd`` (0: none): what is past it is a torn line. Read from the back, a chunk
    at a time, never the whole file."""
    pos = size
    while pos > 0:
        base = max(0, pos - _CHUNK)
        i = os.pread(fd, pos - base, base).rfind(b"\n")
        if i >= 0:
            return base + i + 1
        pos = base
    return 0


class FileInUse(Exception):
    """Another process holds the lock. ``pid`` is the holder as it wrote itself into the
    lock file (None when it could not be read)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by {'pid ' + str(pid) if pid else 'a process'}")
        self.path = path
        self.pid = pid


def hold_lock(path: str | Path) -> int:
    """Lock ``path`` (created 0600) exclusively for this process, without waiting, and
    write this process's id into it. Returns the open descriptor: the lock lasts until it
    is closed or the process ends, however it ends (``kill -9`` included), so a stale
    lock never blocks a restart.

    A POSIX record lock (``lockf``) belongs to the process, not to one descriptor: the
    same process opening the file again is not refused (tests reopen a store left open to
    play a crash); another process is. Raises :class:`FileInUse` when another process
    holds it, ``OSError`` when the file cannot be created."""
    p = Path(path)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_MODE)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = _read_pid(fd)
        os.close(fd)
        raise FileInUse(p, pid) from None
    with contextlib.suppress(OSError):  # the pid is for the message only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
