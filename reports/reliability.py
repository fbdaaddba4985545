"""The report's reliability section: what was thrown at the monitor and what it cost.

Per scenario, from what the analysis counted of the two histories and the per-trade
outcomes of the run store:

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

The malformed items, rejected inputs, restarts, task crashes and dead tasks are the
counts the analysis noted while it read the histories (``ScenarioData.reliability``; of a
scenario pooled over seeds, every seed's summed by the pool), never a history read here:
the histories in a pooled scenario's folder are its first seed's. A stored run analysed
before the analysis noted them is read from those histories, and of a pooled scenario its
figures say "first seed only" (:class:`FirstSeedOnly`) rather than stand for every seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reports.load import Run, ScenarioData

__all__ = ["FirstSeedOnly", "ReliabilityRow", "reliability_rows"]

FIRST_SEED_ONLY = "first seed only"


@dataclass(frozen=True, slots=True)
class FirstSeedOnly:
    """A count of a pooled scenario's first seed only (``n``; None: none of that kind),
    from a stored run whose analysis did not note every seed's: it reads "3 (first seed
    only)" wherever it is shown, never as the whole."""

    n: int | None

    def __str__(self) -> str:
        return f"({FIRST_SEED_ONLY})" if self.n is None else f"{self.n:,} ({FIRST_SEED_ONLY})"


Count = int | FirstSeedOnly


@dataclass(frozen=True, slots=True)
class ReliabilityRow:
    scenario: str
    mode: str
    faults: dict[str, int] = field(default_factory=dict)
    injected: dict[str, Count] = field(default_factory=dict)
    rejected: dict[str, Count] = field(default_factory=dict)
    at_risk: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    recovered: int | None = None
    recovered_late: int | None = None  # of the recovered, delivered past the window
    restarts_survived: Count | None = None
    tasks_restarted: Count | None = None
    tasks_dead: tuple[str, ...] = ()
    #: the injected, rejected, restart and task figures are the first seed's only (a
    #: pooled scenario of a store analysed before every seed's were noted)
    first_seed_only: bool = False


def _events(frame: pd.DataFrame | None, event: str) -> pd.DataFrame:
    if frame is None or frame.empty or "event" not in frame.columns:
        return pd.DataFrame()
    return frame[frame["event"] == event]


def _weights(rows: pd.DataFrame) -> pd.Series:
    """How many history rows each row stands for: the report's load counts the rows of an
    event (``rows``, reports.load.HISTORY_COUNTED); a frame of every row has none."""
    if "rows" not in rows.columns:
        return pd.Series(1, index=rows.index)
    return pd.to_numeric(rows["rows"], errors="coerce").fillna(1).astype("int64")


def _n(rows: pd.DataFrame) -> int:
    return int(_weights(rows).sum()) if not rows.empty else 0


def _count_by(rows: pd.DataFrame, column: str) -> dict[str, int]:
    if rows.empty or column not in rows.columns:
        return {}
    counts: Counter[str] = Counter()
    for value, n in zip(rows[column], _weights(rows), strict=True):
        if value is not None and not (isinstance(value, float) and value != value):  # NaN
            counts[str(value)] += int(n)
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


def _from_histories(sc: ScenarioData) -> tuple[dict[str, int], dict[str, int], int | None,
                                                 int | None, tuple[str, ...]]:
    """The counts of a store analysed before the analysis noted them: from the histories
    in the scenario's folder (a pooled scenario's: its first seed's)."""
    injected = _count_by(_events(sc.sim_history, "malformed"), "kind")
    rejected = _count_by(_events(sc.monitor_history, "bad_input"), "kind")
    decode = _n(_events(sc.monitor_history, "decode_error"))
    if decode:
        rejected["decode_error"] = decode
    restarts = tasks = None
    dead: tuple[str, ...] = ()
    if sc.monitor_history is not None:
        restarts = max(_n(_events(sc.monitor_history, "start")) - 1, 0)
        tasks = _n(_events(sc.monitor_history, "task_crash"))
        ends = _events(sc.monitor_history, "tasks")
        if not ends.empty and "alive" in ends.columns:
            alive: Any = ends["alive"].iloc[-1]
            if isinstance(alive, dict):
                dead = tuple(sorted(k for k, v in alive.items() if not v))
    return injected, rejected, restarts, tasks, dead


def _pooled(sc: ScenarioData) -> bool:
    seeds = sc.summary.get("seeds")
    return isinstance(seeds, list) and len(seeds) > 1


def _first_seed_only(kinds: dict[str, int]) -> dict[str, Count]:
    if not kinds:
        return {"none": FirstSeedOnly(None)}
    return {k: FirstSeedOnly(v) for k, v in kinds.items()}


def _row(sc: ScenarioData) -> ReliabilityRow:
    faults = _faults(sc)
    counts = sc.reliability
    injected: dict[str, Count]
    rejected: dict[str, Count]
    restarts: Count | None
    tasks: Count | None
    partial = False
    if counts is not None:
        injected, rejected = dict(counts["malformed"]), dict(counts["rejected"])
        restarts, tasks = counts["restarts"], counts["task_crashes"]
        dead = tuple(counts["tasks_dead"])
    else:
        inj, rej, n_restarts, n_tasks, dead = _from_histories(sc)
        injected, rejected, restarts, tasks = dict(inj), dict(rej), n_restarts, n_tasks
        if _pooled(sc):
            partial = True
            injected, rejected = _first_seed_only(inj), _first_seed_only(rej)
            restarts = None if n_restarts is None else FirstSeedOnly(n_restarts)
            tasks = None if n_tasks is None else FirstSeedOnly(n_tasks)
            if dead:
                dead = (*dead[:-1], f"{dead[-1]} ({FIRST_SEED_ONLY})")
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
    return ReliabilityRow(sc.name, sc.mode, faults, injected, rejected, at_risk, lost,
                          duplicated, recovered, late, restarts, tasks, dead, partial)


def reliability_rows(run: Run) -> list[ReliabilityRow]:
    """One row per scenario that ran (harness errors have no histories to read)."""
    return [_row(sc) for sc in run.scenarios if sc.summary]
