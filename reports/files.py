"""Writing a report's files: whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from polyvocab.small_files import write_text_file

__all__ = ["write_whole"]


def write_whole(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: written beside it, then renamed over
    it, so that a disk that fills up mid-write leaves the earlier file as it was (the
    report of the last build was cut to nothing, the build failing). A path that is not
    a regular file (``/dev/stdout``, a device) is written to as it is; a symlink's
    target is replaced, the link kept. An ``OSError`` names ``path``."""
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    if target.exists() and not target.is_file():
        write_text_file(target, text)
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write_text_file(tmp, text)
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
