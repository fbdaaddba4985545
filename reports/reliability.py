"""The report's reliability section: what was thrown at the monitor and what it cost.

Per scenario, from the two histories and the per-trade outcomes of the run store:

- **faults injected** by kind (those inside the measured window: the summary's
  ``faults``, from the simulator's ``fault_start`` rows), and malformed items the
  simulator injected (``malformed`` rows, by kind, where a fault records them);
- **malformed inputs rejected** by the monitor, by kind (monitor ``bad_input`` and
  ``decode_error`` rows);
- **trades at risk** (in a fault: awaiting detection - visible, not yet delivered - while
  a fault window was open; experiments/checker.py), and of those:
  **lost** (missed), **duplicated**, **recovered** (delivered anyway; of them **late**,
  after the actionable window: too late to copy);
- **restarts survived** (monitor ``start`` rows after the first: crash-loop runs) and
  **tasks restarted** (``task_crash`` rows), with the tasks not alive at the end.

Nothing here is a verdict: it is shown as measured. Missing data gives ``None`` cells
(rendered as "-"), never zeros.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reports.load import Run, ScenarioData

__all__ = ["ReliabilityRow", "reliability_rows"]


@dataclass(frozen=True, slots=True)
class ReliabilityRow:
    scenario: str
    mode: str
    faults: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    at_risk: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    recovered: int | None = None
    recovered_late: int | None = None  # of the recovered, delivered past the window
    restarts_survived: int | None = None
    tasks_restarted: int | None = None
    tasks_dead: tuple[str, ...] = ()


def _events(frame: pd.DataFrame | None, event: str) -> pd.DataFrame:
    if frame is None or frame.empty or "event" not in frame.columns:
        return pd.DataFrame()
    return frame[frame["event"] == event]


def _count_by(rows: pd.DataFrame, column: str) -> dict[str, int]:
    if rows.empty or column not in rows.columns:
        return {}
    counts: Counter[str] = Counter(str(v) for v in rows[column].dropna())
    return dict(sorted(counts.items()))


def _faults(sc: ScenarioData) -> dict[str, int]:
    """Faults by kind: those the analysis found inside the measured window (the summary's
    ``faults``; seeds pooled: every seed's, ``fault_kinds``); a fault that started in the
    grace period met no judged trade. From the simulator's ``fault_start`` rows only when
    the summary lists none."""
    pooled = sc.summary.get("fault_kinds")  # seeds pooled: every seed's, by kind
    if isinstance(pooled, dict):
        return {str(k): int(v) for k, v in sorted(pooled.items())
                if isinstance(v, int) and not isinstance(v, bool)}
    listed = sc.summary.get("faults")
    if isinstance(listed, list):
        counts: Counter[str] = Counter(str(f.get("name")) for f in listed
                                       if isinstance(f, dict))
        return dict(sorted(counts.items()))
    return _count_by(_events(sc.sim_history, "fault_start"), "name")


def _row(sc: ScenarioData) -> ReliabilityRow:
    faults = _faults(sc)
    injected = _count_by(_events(sc.sim_history, "malformed"), "kind")
    rejected = _count_by(_events(sc.monitor_history, "bad_input"), "kind")
    decode = len(_events(sc.monitor_history, "decode_error"))
    if decode:
        rejected["decode_error"] = decode
    at_risk = lost = duplicated = recovered = late = None
    out = sc.outcomes
    if out is not None and "in_fault" in out.columns and "outcome" in out.columns:
        risk = out[out["in_fault"].fillna(False).astype(bool)
                   & out["outcome"].isin(["detected", "late", "missed", "duplicate"])]
        at_risk = len(risk)
        lost = int((risk["outcome"] == "missed").sum())
        duplicated = int((risk["outcome"] == "duplicate").sum())
        recovered = int(risk["outcome"].isin(["detected", "late"]).sum())
        late = int((risk["outcome"] == "late").sum())
    restarts = tasks = None
    dead: tuple[str, ...] = ()
    if sc.monitor_history is not None:
        restarts = max(len(_events(sc.monitor_history, "start")) - 1, 0)
        tasks = len(_events(sc.monitor_history, "task_crash"))
        ends = _events(sc.monitor_history, "tasks")
        if not ends.empty and "alive" in ends.columns:
            alive: Any = ends["alive"].iloc[-1]
            if isinstance(alive, dict):
                dead = tuple(sorted(k for k, v in alive.items() if not v))
    return ReliabilityRow(sc.name, sc.mode, faults, injected, rejected, at_risk, lost,
                          duplicated, recovered, late, restarts, tasks, dead)


def reliability_rows(run: Run) -> list[ReliabilityRow]:
    """One row per scenario that ran (harness errors have no histories to read)."""
    return [_row(sc) for sc in run.scenarios if sc.summary]
