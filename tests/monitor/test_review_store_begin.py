"""monitor.store's transactions: a BEGIN IMMEDIATE that fails after it began (SQLite
interrupted once it had the write lock) leaves no transaction open behind it."""

from __future__ import annotations

from pathlib import Path

from monitor.errors import StoreError
from monitor.store import Store

WALLETS = [f"0x{i:040x}" for i in range(1, 3)]


class _Fail:
    """A progress handler that interrupts SQLite once, after ``steps`` VM steps."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def __call__(self) -> int:
        self.left -= 1
        return 1 if self.left == 0 else 0


def test_a_begin_that_failed_after_it_began_leaves_no_transaction_open(
        tmp_path: Path) -> None:
    """BEGIN IMMEDIATE interrupted once it had the write lock: SQLite keeps the
    transaction open. Before, every later write failed 'cannot start a transaction
    within a transaction' until the process ended."""
    store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
    try:
        for steps in range(1, 12):  # every step of the BEGIN and a little after
            store._db.set_progress_handler(_Fail(steps), 1)
            try:
                store.set_cursors(WALLETS[:1], steps, None, "polling")
            except StoreError:
                pass
            finally:
                store._db.set_progress_handler(None, 1)
            assert not store._db.in_transaction
            store.set_cursors(WALLETS[1:2], steps, None, "polling")
            assert store.cursor(WALLETS[1]).block == steps  # type: ignore[union-attr]
    finally:
        store.close()
