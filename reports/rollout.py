"""The rollout plan: Phase 1 (one wallet) -> 10% -> 50% -> 100%, with gates and rollback
triggers derived from what the run measured on the websocket scenarios.

Gates get headroom over the measured numbers (1.5x, never stricter than the claims), and
rollback triggers are set where production clearly departs from the test (2-3x). The
number of trades a phase needs is derived from the bound the pilot needs: the fewest trades
with 0 misses whose exact 95 % upper bound on the miss rate is below the claimed rate
(:func:`experiments.confidence.trials_needed`; 299 for "missed < 1 %"), and never fewer
than ``min_trades_per_phase``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.confidence import pct_up, trials_needed, upper_bound
from experiments.thresholds import metric_value, shown
from reports.criteria import Criteria
from reports.load import VIRTUAL, Run, run_clock
from reports.verdict import NO_SCENARIO, CheckResult, Verdict

__all__ = ["Phase", "RolloutPlan", "plan_rollout"]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    share: str
    action: str  # what changes in the configuration
    duration: str
    gate: tuple[str, ...]
    rollback: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    recommendation: str
    phases: tuple[Phase, ...]
    basis: tuple[str, ...]  # the measured numbers the gates came from


def _g(v: float) -> str:
    """A number for the plan: 3 significant digits, thousands written out (no 1.32e+03)."""
    return shown(v)


def _ceil_to(v: float, step: float) -> float:
    """``v`` rounded up to a multiple of ``step``; a number past what a float holds (a
    summary's 1e308 s latency, doubled) stays as it is: was an OverflowError traceback."""
    if not math.isfinite(v / step):
        return v
    return math.ceil(v / step) * step


def _too_few_trades(checks: Sequence[CheckResult]) -> int:
    """How many verdict-relevant checks are undecided only because the run holds too few
    trades (a rate's or a latency quantile's confidence bound straddles its target); 0
    when any check is unknown for another reason (a broken scenario, a metric absent):
    then the harness, not the run's length, is what needs attention."""
    unknown = [c for c in checks if c.passed is None and (c.critical or c.scored)]
    if not unknown or any(c.bound is None for c in unknown):
        return 0
    return len(unknown)


#: seeds the recommendation asks for when the full matrix left a gate undecided
MORE_SEEDS = 3


def _more_evidence(checks: Sequence[CheckResult], *, quick: bool | None,
                   clock: str | None) -> str:
    """What to run for the trades an undecided gate lacks: the full matrix after a
    ``--quick`` one; after the full matrix (``make experiment`` once more decides
    nothing new) the full matrix under more seeds, as a command, naming the scenarios
    that need them (a run of those alone leaves the other rules without a scenario)."""
    if quick is not False:  # a quick run, or a store that does not say
        return ("Run longer: the full matrix (make experiment, not --quick), or more "
                "seeds (--seeds N).")
    names = sorted({c.scenario for c in checks if c.passed is None
                    and (c.critical or c.scored) and c.scenario != NO_SCENARIO})
    virtual = " --clock virtual" if clock == "virtual" else ""
    also = "" if virtual else (
        f" (real time, as this run: about {MORE_SEEDS} times as long; --clock virtual "
        "takes minutes, but its latencies are protocol latencies, not this machine's)")
    which = f", for {', '.join(names)}" if names else ""
    return (f"Run longer: the matrix under {MORE_SEEDS} seeds, pooled{which}: "
            f"`python -m experiments run --seeds {MORE_SEEDS}{virtual}`{also}, then build "
            "the report of that run.")


def _recommendation(verdict: Verdict, checks: Sequence[CheckResult], *,
                    pilot: bool = False, quick: bool | None = None,
                    clock: str | None = None) -> str:
    undecided = _too_few_trades(checks) if verdict is Verdict.INCONCLUSIVE else 0
    if undecided:
        # a live pilot has no matrix or seeds to add: only more time on the same store
        more = ("Keep the pilot running (same --store), then reconcile and build the "
                "report again." if pilot else
                _more_evidence(checks, quick=quick, clock=clock))
        what = "pilot" if pilot else "harness"
        return (f"Do not start the rollout yet: the {what} worked, but {undecided} "
                f"check{'s are' if undecided > 1 else ' is'} undecided for lack of trades "
                "(each confidence bound still straddles its target; the reasons "
                f"above say how many more trades each needs). {more}")
    if verdict is Verdict.INCONCLUSIVE and any(c.scenario == NO_SCENARIO and c.passed is None
                                               for c in checks):
        return ("Do not start the rollout yet: the run holds no scenario for some of the "
                "criteria's rules (the reasons above name them): run the default matrix "
                "(make experiment), not a part of it, and build the report again.")
    return {
        Verdict.GO: "Start Phase 1 with one wallet; move to the next phase only when its "
                    "gate holds.",
        Verdict.MARGINAL: "Start Phase 1 only, with the failed checks watched closely; do not "
                          "go beyond 10 % until they pass in a new run.",
        Verdict.NO_GO: "Do not start the rollout: fix what failed and run the experiments "
                       "again.",
        Verdict.INCONCLUSIVE: "Do not start the rollout yet: the run could not show the "
                              "numbers the gates need; repair the harness and run again.",
    }[verdict]


def plan_rollout(run: Run, verdict: Verdict, criteria: Criteria,
                 checks: Sequence[CheckResult] = ()) -> RolloutPlan:
    """``checks``: the verdict's checks, which tell an INCONCLUSIVE run that only needs
    more trades from one whose harness failed."""
    ws = [s for s in run.scenarios if s.mode == "websocket" and s.ok]
    calm = [s for s in ws if not s.summary.get("faults")] or ws

    def worst(scs: list, metric: str) -> float | None:
        vals = [v for s in scs if (v := metric_value(s.summary, metric)) is not None]
        return max(vals) if vals else None

    virtual = run_clock(run) == VIRTUAL
    # in virtual time computing costs nothing: a fault-free latency there is 0 by
    # construction, no basis for a gate; a fault's latency is its protocol latency
    p95 = None if virtual else worst(calm, "latency_p95_s")
    p95_fault = worst(ws, "latency_p95_in_fault_s")
    reconn = worst(calm, "reconnects_per_hour")
    fb_pct = worst(calm, "fallback_pct")
    explorer = worst(calm, "explorer_calls_per_hour_per_wallet")
    window = worst(ws, "actionable_window_s") or 5.0
    trades_h = [
        float(s.summary.get("trades") or 0) * 3600.0
        / (float(s.summary.get("sim_duration_s") or 0) * float(s.summary.get("wallets") or 1))
        for s in calm if float(s.summary.get("sim_duration_s") or 0) > 0
    ]
    rate = sum(trades_h) / len(trades_h) if trades_h else None  # trades / hour / wallet

    lat_gate = max(criteria.claims.latency_after_s, _ceil_to((p95 or 0) * 1.5, 0.1))
    lat_gate = min(lat_gate, window) if p95 is not None else criteria.claims.latency_after_s
    rc_gate = max(1.0, _ceil_to((reconn or 0) * 2, 0.5))
    fb_gate = max(1.0, _ceil_to((fb_pct or 0) * 2, 0.5))
    ex_gate = max(2.0, _ceil_to((explorer or 0) * 2, 1.0))
    fault_p95 = p95_fault if p95_fault is not None else window
    # never looser than the actionable window: a trade later than that is lost money
    fault_gate = min(max(fault_p95 * 1.5, lat_gate), window)
    fault_capped = (f" (above the {window:g}-s actionable window: the gate while the "
                    f"provider misbehaves is held at {fault_gate:.2g} s, which this run "
                    "would not pass)" if fault_p95 > fault_gate else "")
    limit = criteria.claims.missed_after_pct / 100.0
    n = max(criteria.rollout.min_trades_per_phase,
            trials_needed(limit) if 0.0 < limit < 1.0 else 0)
    bound = 100.0 * upper_bound(0, n) if n else float("inf")

    basis = tuple(
        x for x in (
            f"websocket latency p95 (fault-free) {_g(p95)} s" if p95 is not None else None,
            f"latency p95 during faults {_g(p95_fault)} s"
            f"{' (virtual time: protocol latency only)' if virtual else ''}"
            f"{fault_capped}"
            if p95_fault is not None else None,
            "websocket latency p95 (fault-free): not measured in virtual time"
            if virtual else None,
            f"reconnects {_g(reconn)} per hour" if reconn is not None else None,
            f"fallback active {_g(fb_pct)} % of the time" if fb_pct is not None else None,
            f"explorer {_g(explorer)} calls/h per wallet" if explorer is not None else None,
            f"{_g(rate)} trades/h per wallet" if rate is not None else None,
        ) if x
    ) or ("no websocket measurement: gates fall back to the claims",)

    common_rollback = (
        "any trade found by the polling shadow/reconciliation but not delivered "
        "(missed) -> set websocket_share back to the previous phase",
        "any duplicate or phantom trade reaching the executor -> websocket_enabled=false",
        f"latency p95 above {2 * lat_gate:.2g} s for 15 minutes",
        f"fallback polling active more than {min(3 * fb_gate, 50):.2g} % of an hour, or "
        f"more than {max(3 * rc_gate, 3):.2g} reconnects per hour",
        f"explorer calls above {_g(3 * ex_gate)} per hour per wallet (stuck in fallback)",
    )
    phases = []
    for name, share in criteria.rollout.phases:
        wallets_desc = "one wallet" if share == 0 else f"{share} % of wallets"
        if rate and rate > 0:
            # rounded up: 'at least' must not promise the trades sooner than they come
            per_wallet_h = math.ceil(n / rate)
            hours = math.ceil(max(criteria.rollout.min_hours_per_phase,
                                  per_wallet_h if share == 0
                                  else criteria.rollout.min_hours_per_phase))
            duration = (f"at least {hours} h and {n} trades "
                        f"(~{per_wallet_h} h for one wallet at the measured rate)")
        else:
            duration = f"at least {criteria.rollout.min_hours_per_phase:.0f} h and {n} trades"
        gate = (
            f"0 missed in >= {n} trades (miss rate < {pct_up(bound / 100)} at 95 %), compared "
            "with the polling shadow",
            "0 duplicates and 0 phantoms",
            f"latency p95 <= {lat_gate:.2g} s; <= {fault_gate:.2g} s while the provider "
            "misbehaves",
            f"<= {rc_gate:.2g} reconnects per hour; fallback active <= {fb_gate:.2g} % of time",
            f"explorer calls <= {_g(ex_gate)} per hour per wallet",
        )
        if share == 0:
            action = ("websocket on for one wallet (mode=websocket for it alone); today's "
                      "polling keeps running beside it as the shadow to compare against")
        elif share >= 100:
            action = ("websocket_share=100; polling remains only as the fallback "
                      "(fallback_polling_interval)")
        else:
            action = f"websocket_share={share}; the other wallets stay on polling"
        phases.append(Phase(name, wallets_desc, action, duration, gate, common_rollback))

    quick = run.manifest.get("quick")
    clock = run.manifest.get("clock")
    rec = _recommendation(verdict, checks, pilot=run.manifest.get("kind") == "pilot",
                          quick=quick if isinstance(quick, bool) else None,
                          clock=clock if isinstance(clock, str) else None)
    return RolloutPlan(rec, tuple(phases), basis)
