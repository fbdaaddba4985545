"""compare: a regression is a change the reader can see in the numbers shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reports.compare import _pct, compare_runs, text_table
from reports.criteria import load_criteria
from reports.load import load_run

MakeRun = Callable[..., Path]


def rows_of(cmp: object, scenario: str) -> dict[str, object]:
    return {r.metric: r for r in cmp.rows if r.scenario == scenario}  # type: ignore[attr-defined]


def test_a_change_invisible_at_the_shown_precision_is_not_a_regression(
        make_run: MakeRun) -> None:
    """ws_drop missed 1 of 600 trades in A and 1 of 599 in B: missed % 0.16667 ->
    0.16694, which the list gave as a regression reading "missed % 0.167 -> 0.167"
    (the missed count did not change). A change that does not show at the precision
    shown is no change now; a change that shows still is a regression."""
    a = make_run()
    base = load_run(a).scenario("ws_drop").summary
    one_fewer = {"trades": base["trades"] - 1, "detected": base["detected"] - 1,
                 "missed_pct": 100.0 * base["missed"] / (base["trades"] - 1)}
    b = make_run(overrides={"ws_drop": one_fewer})
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    row = rows_of(cmp, "ws_drop")["missed_pct"]
    assert row.a != row.b  # type: ignore[attr-defined]
    assert row.status == "same", row  # type: ignore[attr-defined]
    assert not [line for line in cmp.regressions if "missed %" in line], cmp.regressions
    # every regression listed shows two different numbers
    two_missed = {**one_fewer, "missed": 2, "detected": base["detected"] - 2,
                  "missed_pct": 200.0 / (base["trades"] - 1)}
    c = make_run(overrides={"ws_drop": two_missed})
    cmp = compare_runs(load_run(a), load_run(c), load_criteria())
    lines = [line for line in cmp.regressions if "ws_drop: missed" in line]
    assert lines, cmp.regressions
    for line in lines:
        before, after = line.split(": ", 1)[1].rsplit(" (", 1)[0].split(" -> ")
        assert before.split()[-1] != after, line
    assert "REGRESSION" in text_table(cmp)


def test_a_small_visible_change_does_not_read_as_zero_percent() -> None:
    assert _pct(0.0000012) == "+0.00012 %"
    assert _pct(-0.0000012) == "-0.00012 %"
    assert _pct(1.08) == "+108.0 %"
    assert _pct(0.0) == "+0.0 %"
    assert _pct(None) == "-"
