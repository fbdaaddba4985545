"""Processes that end with the process that started them.

A harness process killed outright (SIGKILL, the OOM killer) runs no handler: the
simulator and monitor it started (each in a session of its own, so no terminal's signal
reaches them either) ran on for good, and a virtual run's pool workers (and the analysis's
second process) ran their scenario to the end with nobody to hand it to.
:func:`die_with_parent` asks the kernel for SIGTERM when the parent dies (Linux
``PR_SET_PDEATHSIG``; elsewhere nothing changes).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from typing import Any

__all__ = ["die_with_parent"]


def _prctl() -> Any:
    """libc's ``prctl`` (Linux), looked up here, before any fork, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """This process gets SIGTERM when the process ``parent`` (that started it) dies
    (kept across exec: call it in a child before exec, or as a pool's initializer). A
    parent already gone by the time this runs is the same signal at once."""
    if _PRCTL is None:
        return
    with contextlib.suppress(Exception):
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
