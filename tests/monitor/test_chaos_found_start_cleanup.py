"""A ``WalletMonitor.start`` that fails after it opened its store and HTTP session (here a
metrics port already taken, found only when the ops server binds) closes what it opened
before it raises: ``async with WalletMonitor(...)`` never calls ``stop`` when ``start``
raises, and the session stayed open ("Unclosed client session"), the store and the
polling task with it."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import MonitorError
from monitor.wallet_monitor import WalletMonitor


def test_a_start_that_fails_late_closes_its_session_store_and_tasks(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        settings = load_settings({
            "wallets": ["0x" + "1" * 40], "mode": "polling",
            "explorer_url": "http://127.0.0.1:9/api",  # never answered: nothing to wait on
            "metrics_port": taken.getsockname()[1],
            "state_db": str(tmp_path / "s.db")}, environ={})

        async def main() -> WalletMonitor:
            mon = WalletMonitor(settings)
            with pytest.raises(MonitorError, match="cannot listen"):
                async with mon:
                    raise AssertionError("started on a port already taken")
            return mon

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mon = asyncio.run(main())
            gc.collect()
    finally:
        taken.close()
    assert mon.session is not None and mon.session.closed
    assert mon.supervisor is not None and not any(mon.supervisor.alive().values())
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)
                and "client session" in str(w.message).lower()]
    with pytest.raises(Exception, match="closed"):  # the store was closed
        mon.store.outbox_size()  # type: ignore[union-attr]
