"""A trade's identity is ``(transactionHash, logIndex)`` (DESIGN.md), on the explorer's
path as on the node's: two logs of one transaction with the same topics and data under
two logIndexes are two fills (one order filled twice alike in one ``matchOrders``), and
both reach the bot. The same log repeated under its own logIndex (a page overlap) is one
trade. A content-based filter on the explorer's rows alone (b670e32, reverted) dropped
the second fill for good in a fallback: nothing re-reads a block the poller covered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_explorer_hostile_answers import _row, _run


@pytest.mark.parametrize(("index", "expected"), [("0x9", 7), ("0x0", 6)])
def test_two_logs_alike_under_two_log_indexes_are_two_trades(
        tmp_path: Path, index: str, expected: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    got, _cursors, _counters, bad, _alerts = _run(
        tmp_path, lambda fake, q: _row(fake, q, logIndex=index), trades=6)
    ids = [t for _b, t in got]
    # each id once; 0x0 is the first row's own logIndex: a plain repeat, one trade
    assert len(ids) == expected and len(set(ids)) == expected, got
    assert bad == 0, bad
    assert "Traceback" not in caplog.text
