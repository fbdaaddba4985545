"""An explorer page that repeats a log under another logIndex (a broken index or a cache
in front of it): the trade id is ``<tx>:<logIndex>``, so the poller delivered the trade
twice, and nothing retracted the second (its block is canonical: the hand-back's check
compares block hashes only). The repeat is a bad row now, counted; the trade goes out
once and the cursor moves on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_explorer_hostile_answers import _row, _run


@pytest.mark.parametrize("index", ["0x9", "0x0"])
def test_a_log_repeated_under_another_log_index_is_delivered_once(
        tmp_path: Path, index: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    got, _cursors, _counters, bad, _alerts = _run(
        tmp_path, lambda fake, q: _row(fake, q, logIndex=index), trades=6)
    ids = [t for _b, t in got]
    # six trades, each once (0x0: the first row's own logIndex is 0x0 - a plain repeat)
    assert len(ids) == 6 and len(set(ids)) == 6, got
    assert bad == (1 if index != "0x0" else 0), bad
    assert "Traceback" not in caplog.text
