"""A pilot history whose rows are whole JSON but hold values of the wrong type (a
hand edit, bit rot in a rotated file) is a ReconcileError naming the file and row, one
line from the CLI: a pilot_session row's wall_ns that is no number, or a row's t_ns, was
a ValueError/KeyError traceback after the truth had been fetched from the chain, and a
float t_ns was taken as a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.reconcile import ReconcileError, reconcile
from tests.experiments.test_reconcile_hunt import S, make_store, node, opts, ts

__all__ = ["node"]  # the fixture, used by name


@pytest.mark.parametrize("rows", [
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "wall_ns": "x", "mono_ns": 0}],
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "mono_ns": 0}],
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "wall_ns": 10**30, "mono_ns": None}],
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "wall_ns": ts(99) * S, "mono_ns": 0},
     {"t_ns": "abc", "event": "feed", "healthy": True}],
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "wall_ns": ts(99) * S, "mono_ns": 0},
     {"t_ns": 1.5e300, "event": "feed", "healthy": True}],
    [{"t_ns": 0, "event": "pilot_session", "session": 1, "wall_ns": ts(99) * S, "mono_ns": 0},
     [1, 2]],
], ids=["wall_ns text", "wall_ns missing", "mono_ns null", "t_ns text", "t_ns huge",
        "row a list"])
def test_a_history_row_of_the_wrong_type_is_a_reconcile_error_naming_it(
        rows: list[object], node: tuple[object, str], tmp_path: Path) -> None:
    state, url = node
    state.head = 200  # type: ignore[attr-defined]
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    hist = store / "websocket" / "history.jsonl"
    hist.parent.mkdir()
    hist.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ReconcileError) as err:
        reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert "history.jsonl" in str(err.value), err.value
