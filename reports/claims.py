"""The migration plan's claims, checked against what was measured.

Each claim compares the polling baseline ("before") with the websocket monitor ("after").
The status is decided by the "after" bound (the promise); the "before" measurement is
shown next to the claimed range as context. No data for a side => ``not measured``.
"Healthy" scenarios are those without faults; when a mode has none, all of its
scenarios are used (and the note says so).

A claim the data cannot settle either way is ``not decided``, never confirmed: the missed
trades claim is judged, as the verdict judges ``missed_pct``, by the exact binomial upper
bound of the pooled miss rate (:mod:`experiments.confidence`), not its point estimate, and
the latency claim by each scenario's p95 bounds, as the verdict judges ``latency_p95_s``; a
run on the virtual clock measures protocol latency only (computing costs no time there),
so it can refute the latency claim but not confirm it, and it measures no CPU or memory.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from experiments.confidence import rate_bound, trials_needed
from experiments.thresholds import CONFIDENCE, evaluate, metric_value, rate_counts, shown
from reports.cost import MIN_RATE_WINDOW_S
from reports.criteria import ClaimSettings
from reports.load import VIRTUAL, Run, ScenarioData, run_clock

__all__ = ["Claim", "ClaimStatus", "check_claims"]

class ClaimStatus(enum.Enum):
    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    NOT_DECIDED = "not decided"  # measured, but the data cannot settle it either way
    NOT_MEASURED = "not measured"


@dataclass(frozen=True, slots=True)
class Claim:
    topic: str
    claimed_before: str
    claimed_after: str
    measured_before: str
    measured_after: str
    status: ClaimStatus
    note: str = ""


def _usable(run: Run, mode: str, healthy: bool) -> tuple[list[ScenarioData], bool]:
    scs = [s for s in run.scenarios if s.mode == mode and s.ok]
    if not healthy:
        return scs, False
    calm = [s for s in scs if not s.summary.get("faults")]
    return (calm, False) if calm else (scs, bool(scs))


def _n_wallets(s: ScenarioData) -> int:
    return int(s.summary.get("wallets") or 0)


#: call rates, which a window shorter than :data:`reports.cost.MIN_RATE_WINDOW_S` does not
#: give (the cost section's rule: a 30-s quick run's 0 calls confirmed "about 1 /h")
_RATES = frozenset({"explorer_calls_per_hour_per_wallet", "explorer_calls_per_hour",
                    "api_calls_per_hour", "api_calls_per_hour_per_wallet"})


def _values(scs: Sequence[ScenarioData], metric: str) -> list[float]:
    out = []
    for s in scs:
        if metric in _RATES and float(s.summary.get("sim_duration_s") or 0.0) < \
                MIN_RATE_WINDOW_S:
            continue
        v = metric_value(s.summary, metric)
        if v is not None:
            out.append(v)
    return out


def _pooled_missed(scs: Sequence[ScenarioData]) -> tuple[int, int]:
    """(missed, trades) summed over ``scs``; a scenario without a usable pair is left out."""
    missed = trades = 0
    for s in scs:
        k, n, _note = rate_counts(s.summary, "missed")  # pooled seeds: distinct replays
        if k is None or n is None or not 0 <= k <= n:
            continue
        missed, trades = missed + int(k), trades + int(n)
    return missed, trades


def _pooled_missed_pct(scs: Sequence[ScenarioData]) -> float | None:
    missed, trades = _pooled_missed(scs)
    return 100.0 * missed / trades if trades else None


def _num(v: float | None, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "not measured"
    return f"{shown(v, digits=digits)}{unit}"  # 1234.5 /h was "1.23e+03 /h"


def _baseline(values: Sequence[float], unit: str, prefix: str = "") -> str:
    """The polling baseline as measured: the mean, and the spread behind it when scenarios
    (15-s and 30-s intervals, a rate-capped many-wallets run) disagree: a single mean
    alone read as what today's polling does."""
    if not values:
        return f"{prefix}{_num(None)} (polling)"
    mean = sum(values) / len(values)
    lo, hi = min(values), max(values)
    spread = (f", mean of {len(values)} scenarios: {_num(lo)}-{_num(hi, unit)}"
              if len(values) > 1 and _num(lo) != _num(hi) else "")
    return f"{prefix}{_num(mean, unit)} (polling{spread})"


def _rng(lo: float, hi: float, unit: str) -> str:
    return f"{lo:g}-{hi:g}{unit}"


def _status(after: float | None, ok: bool) -> ClaimStatus:
    if after is None:
        return ClaimStatus.NOT_MEASURED
    return ClaimStatus.CONFIRMED if ok else ClaimStatus.REFUTED


def _latency(run: Run, cs: ClaimSettings) -> Claim:
    poll, _ = _usable(run, "polling", True)
    ws, ws_faulty = _usable(run, "websocket", True)
    virtual = run_clock(run) == VIRTUAL
    real_time = [s for s in ws if s.speed <= 1]
    if real_time:  # latency claims are made at speed 1 (DESIGN.md "Time")
        ws = real_time
    # the compressed-time runs are not in it; a virtual run is no speed-1 measurement
    where = " in virtual time" if virtual else " at speed 1" if real_time else ""
    before = _values(poll, "latency_p50_s")
    after = _values(ws, "latency_p95_s")
    b = sum(before) / len(before) if before else None
    a = max(after) if after else None
    notes = []
    if b is not None and not cs.latency_before_s[0] <= b <= cs.latency_before_s[1]:
        notes.append("baseline median outside the claimed range")
    speeds = {s.speed for s in ws}
    status = _status(a, a is not None and a < cs.latency_after_s)
    if a is not None:  # judged as the verdict judges its p95 gate: by its bounds
        gate = f"latency_p95_s < {cs.latency_after_s!r}"
        passed = [evaluate(gate, s.summary)["passed"] for s in ws
                  if metric_value(s.summary, "latency_p95_s") is not None]
        if any(p is False for p in passed):
            status = ClaimStatus.REFUTED
        elif any(p is None for p in passed):
            status = ClaimStatus.NOT_DECIDED
            n = sum(1 for p in passed if p is None)
            notes.append(f"{n} scenario{'s have' if n > 1 else ' has'} too few trades to "
                         f"bound the p95 either side of {cs.latency_after_s:g} s at 95 %")
    if virtual:
        notes.append("protocol latency in virtual time (computing and loopback cost "
                     "nothing there): not a speed-1 measurement")
        if status is ClaimStatus.CONFIRMED:  # a lower bound: it can refute, not confirm
            status = ClaimStatus.NOT_DECIDED
            notes.append("confirm with a run at speed 1 on the real clock")
    elif any(sp > 1 for sp in speeds):
        notes.append(f"measured at speed {max(speeds):g}: processing time is inflated, "
                     "repeat at speed 1 for the final figure")
    if ws_faulty:
        notes.append("no fault-free websocket scenario: measured under faults")
    return Claim(
        "Detection latency",
        f"{_rng(*cs.latency_before_s, ' s')} (polling)",
        f"under {cs.latency_after_s:g} s",
        _baseline(before, " s", "p50 "),
        f"p95 {_num(a, ' s')} (websocket, worst "
        f"{'scenario, under faults' if ws_faulty else 'fault-free scenario'}{where})",
        status,
        "; ".join(notes),
    )


def _missed(run: Run, cs: ClaimSettings) -> Claim:
    """Judged as the verdict judges ``missed_pct < target``: confirmed only when the upper
    confidence bound of the pooled websocket miss rate is below the target, refuted when
    the measured rate is not, else not decided (and how many more trades would decide)."""
    poll = [s for s in run.scenarios if s.mode == "polling" and s.ok]
    ws = [s for s in run.scenarios if s.mode == "websocket" and s.ok]
    b = _pooled_missed_pct(poll)
    missed, trades = _pooled_missed(ws)
    target = cs.missed_after_pct
    claimed = f"under {target:g} %"
    if not trades:
        return Claim("Missed trades", _rng(*cs.missed_before_pct, " %"), claimed,
                     f"{_num(b, ' %')} (polling, all scenarios)",
                     "not measured (websocket: no trades)", ClaimStatus.NOT_MEASURED)
    bound = rate_bound(missed, trades, CONFIDENCE)
    a = 100.0 * missed / trades
    if bound.upper * 100.0 < target:
        status, note = ClaimStatus.CONFIRMED, _per_scenario_note(ws, target)
    elif a >= target:
        status, note = ClaimStatus.REFUTED, ""
    else:
        more = trials_needed(target / 100.0, CONFIDENCE, events=missed) - trades
        status = ClaimStatus.NOT_DECIDED
        note = (f"not decided: {more:,} more trades needed (without a miss) to bound the "
                f"rate below {target:g} % at {CONFIDENCE:.0%}")
    return Claim(
        "Missed trades",
        _rng(*cs.missed_before_pct, " %"),
        claimed,
        f"{_num(b, ' %')} (polling, all scenarios)",
        f"{_num(a, ' %')} (websocket, all scenarios incl. faults; "
        f"{bound.text('missed')})",
        status,
        note,
    )


def _per_scenario_note(ws: Sequence[ScenarioData], target: float) -> str:
    """What the pooled confirmation does not say: the verdict gates each scenario's miss
    rate on its own, and a scenario with too few trades leaves its gate undecided (the
    banner's INCONCLUSIVE beside a 'confirmed' claim)."""
    undecided = []
    for s in ws:
        missed, trades = _pooled_missed([s])
        if trades and 100.0 * missed / trades < target <= \
                100.0 * rate_bound(missed, trades, CONFIDENCE).upper:
            undecided.append(s.name)
    if not undecided:
        return ""
    return (f"pooled over {len(ws)} websocket scenarios; the verdict gates each on its own, "
            f"and {len(undecided)} of them hold too few trades to bound their rate below "
            f"{target:g} % ({', '.join(undecided[:5])}{', ...' if len(undecided) > 5 else ''})")


def _explorer(run: Run, cs: ClaimSettings) -> Claim:
    poll, _ = _usable(run, "polling", True)
    ws, ws_faulty = _usable(run, "websocket", True)
    before = _values(poll, "explorer_calls_per_hour_per_wallet")
    after = _values(ws, "explorer_calls_per_hour_per_wallet")
    a = max(after) if after else None
    under_faults = _values(_usable(run, "websocket", False)[0],
                           "explorer_calls_per_hour_per_wallet")
    note = f"'about 1' counted as at most {cs.explorer_after_per_hour:g} /h"
    if ws_faulty:
        note += "; measured under faults only"
    elif under_faults and max(under_faults) > (a or 0):
        note += (f"; up to {_num(max(under_faults), ' /h')} per wallet while a fault "
                 "forces the explorer fallback")
    return Claim(
        "Explorer calls per wallet",
        _rng(*cs.explorer_before_per_hour, " /h"),
        "about 1 /h",
        _baseline(before, " /h"),
        f"{_num(a, ' /h')} (websocket, worst "
        f"{'scenario, under faults' if ws_faulty else 'fault-free scenario'})",
        _status(a, a is not None and a <= cs.explorer_after_per_hour),
        note,
    )


def _resources(run: Run) -> Claim:
    if run_clock(run) == VIRTUAL:
        return Claim("Resource use", "polling", "lower with websocket",
                     "not measured (virtual clock)", "not measured (virtual clock)",
                     ClaimStatus.NOT_MEASURED,
                     "CPU and memory are not measured on the virtual clock: run on the "
                     "real clock")
    poll, _ = _usable(run, "polling", True)
    ws, _ = _usable(run, "websocket", True)
    common = {_n_wallets(s) for s in poll} & {_n_wallets(s) for s in ws}
    if common:  # compare like with like: the same number of wallets
        poll = [s for s in poll if _n_wallets(s) in common]
        ws = [s for s in ws if _n_wallets(s) in common]
    pc = _values(poll, "cpu_s_per_hour")
    wc = _values(ws, "cpu_s_per_hour")
    pr = _values(poll, "rss_peak_mb")
    wr = _values(ws, "rss_peak_mb")
    if not pc or not wc:
        return Claim("Resource use", "polling", "lower with websocket",
                     f"{_num(max(pc) if pc else None, ' CPU s/h')}",
                     f"{_num(max(wc) if wc else None, ' CPU s/h')}",
                     ClaimStatus.NOT_MEASURED, "needs CPU figures for both modes")
    p_cpu, w_cpu = sum(pc) / len(pc), sum(wc) / len(wc)
    p_rss = sum(pr) / len(pr) if pr else None
    w_rss = sum(wr) / len(wr) if wr else None
    ok = w_cpu <= p_cpu and (p_rss is None or w_rss is None or w_rss <= p_rss * 1.1)
    return Claim(
        "Resource use",
        "polling",
        "lower with websocket",
        f"{_num(p_cpu, ' CPU s/h')}, {_num(p_rss, ' MB')} peak RSS",
        f"{_num(w_cpu, ' CPU s/h')}, {_num(w_rss, ' MB')} peak RSS",
        ClaimStatus.CONFIRMED if ok else ClaimStatus.REFUTED,
        "memory within 10 % counts as not higher"
        + (f"; fault-free scenarios with {', '.join(map(str, sorted(common)))} wallets"
           if common else "; different wallet counts"),
    )


def _capacity(scs: Sequence[ScenarioData], per_hour_limit: float) -> float | None:
    """Wallets one process can watch before explorer calls hit ``per_hour_limit``."""
    per_wallet = _values(scs, "explorer_calls_per_hour_per_wallet")
    if not per_wallet:
        return None
    worst = max(per_wallet)
    return float("inf") if worst <= 0 else per_hour_limit / worst


def _wallets(run: Run, explorer_limit_per_hour: float) -> Claim:
    poll = [s for s in run.scenarios if s.mode == "polling" and s.ok]
    ws = [s for s in run.scenarios if s.mode == "websocket" and s.ok]
    pcap = _capacity(poll, explorer_limit_per_hour)
    wcap = _capacity(ws, explorer_limit_per_hour)
    max_ws = max((int(s.summary.get("wallets") or 0) for s in ws), default=0)

    def cap(v: float | None) -> str:
        if v is None:
            return "not measured"
        return "no explorer limit in reach" if v == float("inf") else f"~{v:,.0f} wallets"

    if pcap is None or wcap is None:
        status = ClaimStatus.NOT_MEASURED
    else:
        status = ClaimStatus.CONFIRMED if wcap > pcap else ClaimStatus.REFUTED
    note = (f"explorer budget {explorer_limit_per_hour:,.0f} calls/h (the tighter of the "
            "per-second and per-day limits), at each mode's highest explorer rate per wallet")
    worst = _worst_explorer(ws)
    if worst is not None and worst.summary.get("faults"):
        calm = _capacity([s for s in ws if not s.summary.get("faults")],
                         explorer_limit_per_hour)
        note += (f"; websocket's is {worst.name}'s, while a fault forces the explorer "
                 f"fallback (without faults: {cap(calm)})")
    return Claim(
        "Wallets per process",
        "polling: limited by explorer calls",
        "more wallets per process",
        cap(pcap),
        f"{cap(wcap)} (largest run: {max_ws} wallets)",
        status,
        note,
    )


def _worst_explorer(scs: Sequence[ScenarioData]) -> ScenarioData | None:
    """The scenario with the highest explorer rate per wallet (None without one)."""
    rated = [(v, s) for s in scs
             if (v := metric_value(s.summary, "explorer_calls_per_hour_per_wallet")) is not None]
    return max(rated, key=lambda vs: vs[0])[1] if rated else None


def check_claims(run: Run, cs: ClaimSettings, explorer_limit_per_hour: float) -> list[Claim]:
    """The five claims of the migration plan, in the order the report shows them."""
    claims = [
        _latency(run, cs),
        _missed(run, cs),
        _explorer(run, cs),
        _resources(run),
        _wallets(run, explorer_limit_per_hour),
    ]
    broken = [s.name for s in run.scenarios if not s.ok]
    if not broken:
        return claims
    extra = f"without {', '.join(broken)} (no usable results)"
    return [replace(c, note=f"{c.note}; {extra}" if c.note else extra) for c in claims]
