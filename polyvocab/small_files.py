"""Small text files a user names (a config, a scenario, a wallet list, a file holding a
URL or a token, a run's JSON): read whole, but bounded and checked, so that a path to
``/dev/zero``, a log or a disk image is one clear error instead of all the memory (an
unbounded read of ``/dev/zero`` took 3 GB in 4 s), and a binary file is "not UTF-8 text"
instead of a ``UnicodeDecodeError`` traceback.

Both come as :class:`SmallFileError`, an ``OSError`` whose ``strerror`` says what is
wrong, so the callers' ``except OSError`` (which already word "cannot read X: why")
covers them. ``FileNotFoundError`` and the other ``OSError`` s pass through unchanged.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["CONFIG_BYTES", "JSON_BYTES", "LIST_BYTES", "SmallFileError", "file_error_text",
           "is_special", "os_error_reason", "read_small_text", "write_text_file"]

#: a TOML config, a scenario, the report's criteria, a file holding a URL or a token
CONFIG_BYTES = 1 << 20
#: a wallet list: ~45 bytes a wallet, so past a million wallets (the whole market is ~100k)
LIST_BYTES = 64 << 20
#: a run's or a benchmark's JSON (run.json lists the wallets: ~45 bytes each)
JSON_BYTES = 64 << 20


class SmallFileError(OSError):
    """A file larger than what it should be could hold, or not UTF-8 text."""


def is_special(path: str | Path) -> bool:
    """There, and neither a regular file nor a folder (a FIFO, a device, a socket): opening
    a FIFO waits for a writer, so a command handed one hung, signals and all. A path that
    cannot be looked at (a symlink loop) is not judged here: opening it says why."""
    try:
        p = Path(path)
        return p.exists() and not (p.is_file() or p.is_dir())
    except OSError:
        return False


def read_small_text(path: str | Path, limit: int = CONFIG_BYTES) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped), read with at most
    ``limit + 1`` bytes in memory. Raises :class:`SmallFileError` when the file holds more
    than ``limit`` bytes or is not UTF-8; any other ``OSError`` (no such file, a
    directory, no permission) as is.

    Never waits to open: a FIFO is opened without blocking (a plain ``open`` waits for a
    writer, for ever if none comes), then read as a pipe: one with no writer reads as
    empty, a shell's ``<(command)`` reads to its end (a secret piped from a password
    manager)."""
    with _open_no_wait(path) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise SmallFileError(errno.EFBIG, f"larger than {limit:,} bytes: not a file of this "
                                          f"kind", str(path))
    # a byte-order mark (Windows Notepad's UTF-8) is no part of the text: it made the
    # first wallet "not a 20-byte hex address", a TOML file "Invalid statement", and
    # went in front of a key read from a file, sent to the explorer as it was
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SmallFileError(errno.EILSEQ, f"not UTF-8 text (byte {exc.start:,} is "
                                           f"0x{data[exc.start]:02x})", str(path)) from None


def _open_no_wait(path: str | Path) -> BinaryIO:
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_CLOEXEC", 0))
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # os.open takes a folder; open() did not
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if nonblock:  # reads block again: a pipe's writer may still be writing
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~nonblock)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def os_error_reason(exc: OSError) -> str:
    """What went wrong, in words: the system's text, except that a folder that cannot be
    made because a file has its name ("File exists" from ``mkdir``) says so."""
    name = exc.filename
    if isinstance(exc, FileExistsError) and name and Path(name).exists() \
            and not Path(name).is_dir():
        return f"{name} is a file, not a folder"
    return exc.strerror or str(exc)


def write_text_file(path: str | Path, text: str) -> None:
    """``Path(path).write_text(text)`` (UTF-8) whose ``OSError`` always names ``path``: a
    write or close that fails (EIO writing ``/proc/version``, ENOSPC on ``/dev/full``)
    raises one without a file name, and the command said "Input/output error" alone."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def file_error_text(exc: OSError) -> str:
    """An ``OSError`` as a command's one-line error: what went wrong, then the file
    (``No such file or directory: /proc/x``), without errno or a traceback."""
    reason = os_error_reason(exc)
    where = f": {exc.filename}" if exc.filename and str(exc.filename) not in reason else ""
    return f"{reason}{where}"
