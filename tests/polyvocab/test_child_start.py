"""polyvocab.child_start: a stop that comes while held reaches the handler of before
when the hold ends (once, whichever thread it was delivered to), and the handlers of
before are back."""

from __future__ import annotations

import os
import signal
import threading

from polyvocab.child_start import STOPS, stops_held


def test_a_stop_sent_while_held_arrives_when_the_hold_ends() -> None:
    got: list[int] = []
    before = {sig: signal.signal(sig, lambda sig, _frame: got.append(sig)) for sig in STOPS}
    try:
        mine = {sig: signal.getsignal(sig) for sig in STOPS}
        with stops_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(0.01)  # a bytecode boundary or two: handlers run here
            assert got == []
        assert got == [signal.SIGTERM, signal.SIGINT]
        assert {sig: signal.getsignal(sig) for sig in STOPS} == mine
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_outside_the_main_thread_nothing_is_held() -> None:
    seen: list[object] = []

    def body() -> None:
        with stops_held():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=body)
    t.start()
    t.join(30)
    assert seen == [signal.getsignal(signal.SIGTERM)]
