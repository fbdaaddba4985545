"""Starting a ``spawn`` child whole, even when this process is stopped meanwhile.

A ``spawn`` child reads what it is to run (the preparation data and the pickled
process object) from a pipe its parent writes just after starting it. A parent stopped
in between (SIGTERM from the pool that owns it, Ctrl-C) left the child reading a closed
pipe: its interpreter printed ``EOFError: Ran out of input`` with a traceback from
``multiprocessing.spawn`` on the terminal it shares, after the run had stopped.

:func:`stops_held` holds SIGINT and SIGTERM back while a child is started and delivers
one that came meanwhile once it is started, to the handler that was there before.
It replaces the handlers for that time rather than blocking the signals (a thread's
signal mask): a process-directed signal goes to any thread that does not block it, and
a process with a library's threads (pyarrow's, a BLAS's) died at once all the same.
Handlers can be set only in the main thread; elsewhere nothing is held.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["STOPS", "stops_held"]

#: the signals that stop a run (Ctrl-C, a pool's or a supervisor's terminate)
STOPS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back while the body starts a child; each that came
    meanwhile is raised again when the body ends, with the handlers of before back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def hold(sig: int, _frame: FrameType | None) -> None:
        if sig not in came:
            came.append(sig)

    previous = {sig: signal.signal(sig, hold) for sig in STOPS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # None: a handler not set from Python; the default is the nearest there is
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        _raise_all(came)


def _raise_all(stops: list[int]) -> None:
    """Raise each of ``stops``, in order, even when a handler raises: a Ctrl-C's
    KeyboardInterrupt left a SIGTERM held with it unraised, and the process lived on."""
    if stops:
        try:
            signal.raise_signal(stops[0])
        finally:
            _raise_all(stops[1:])
