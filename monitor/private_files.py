"""Files the monitor writes are private: created with mode 0600 (state, detections,
history hold the wallets watched and what they traded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

__all__ = ["PRIVATE_MODE", "open_private"]

PRIVATE_MODE = 0o600


def open_private(path: str | Path, *, buffering: int = -1) -> IO[str]:
    """Open ``path`` for appending text (UTF-8), creating it (and its folder) with mode
    0600. An existing file keeps its mode."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=buffering)
