"""The report's criteria as data: verdict rules, claims, cost plans, rollout phases.

Defaults live in ``reports/criteria.toml``; ``--criteria FILE`` replaces them (tables that
the file leaves out keep their defaults). A bad file raises :class:`CriteriaError` with a
message naming the key: print it, exit code 2.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from experiments.scenario import MODES
from experiments.thresholds import ThresholdError, parse_threshold
from polyvocab.small_files import CONFIG_BYTES, read_small_text

__all__ = [
    "DEFAULT_CRITERIA",
    "ClaimSettings",
    "CostSettings",
    "Criteria",
    "CriteriaError",
    "ExplorerPlan",
    "ProviderPlan",
    "RolloutSettings",
    "Rule",
    "load_criteria",
]

DEFAULT_CRITERIA = Path(__file__).with_name("criteria.toml")


class CriteriaError(Exception):
    """The criteria file is invalid; the message names the key. Fix the file."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One threshold: ``expr`` on every scenario of ``modes`` (all modes when empty).

    ``faults``: None = every scenario, True = only scenarios with faults, False = only
    scenarios without.
    """

    name: str
    expr: str
    critical: bool = False
    weight: float = 1.0
    modes: tuple[str, ...] = ()
    faults: bool | None = None


@dataclass(frozen=True, slots=True)
class ClaimSettings:
    latency_before_s: tuple[float, float] = (15.0, 30.0)
    latency_after_s: float = 1.0
    missed_before_pct: tuple[float, float] = (5.0, 10.0)
    missed_after_pct: float = 1.0
    explorer_before_per_hour: tuple[float, float] = (240.0, 480.0)
    explorer_after_per_hour: float = 12.0


@dataclass(frozen=True, slots=True)
class ExplorerPlan:
    plan: str = "Etherscan V2 free"
    rate_per_s: float = 3.0
    calls_per_day: float = 100_000
    price_per_month_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class ProviderPlan:
    plan: str = "example"
    price_per_million_requests_usd: float = 0.0
    compute_units_per_request: float = 20.0
    price_per_million_compute_units_usd: float = 0.45
    free_compute_units_per_month: float = 30_000_000
    compute_units_per_month_limit: float = 0.0
    requests_per_second_limit: float = 0.0


@dataclass(frozen=True, slots=True)
class CostSettings:
    hours_per_month: float = 730.0
    explorer: ExplorerPlan = ExplorerPlan()
    provider: ProviderPlan = ProviderPlan()


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    phases: tuple[tuple[str, int], ...] = (("Phase 1", 0), ("10%", 10), ("50%", 50), ("100%", 100))
    min_trades_per_phase: int = 300
    min_hours_per_phase: float = 24.0


@dataclass(frozen=True, slots=True)
class Criteria:
    rules: tuple[Rule, ...]
    go_score: float = 0.9
    marginal_score: float = 0.7
    claims: ClaimSettings = ClaimSettings()
    cost: CostSettings = CostSettings()
    rollout: RolloutSettings = RolloutSettings()
    source: str = "defaults"


def _num(table: dict[str, Any], key: str, default: float, where: str, *,
         positive: bool = False) -> float:
    """A finite number >= 0 (> 0 with ``positive``): every figure of the criteria is a
    share, a time, a rate, a count or a price (TOML has ``nan`` and ``inf``: a NaN
    weight made the score NaN; a rate of 0 divided by zero)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CriteriaError(f"{where}.{key} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise CriteriaError(f"{where}.{key} must be a finite number "
                            f"{'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _table(data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """``[key]`` of ``data`` (empty when absent); anything but a table is an error."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CriteriaError(f"{where}{key} must be a table ([{where}{key}]), got {value!r}")
    return value


def _pair(table: dict[str, Any], key: str, default: tuple[float, float], where: str) -> tuple[
    float, float
]:
    value = table.get(key, list(default))
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool)
                   and math.isfinite(v) and v >= 0 for v in value)
        or value[0] > value[1]
    ):
        raise CriteriaError(f"{where}.{key} must be [low, high], finite, 0 <= low <= high, "
                            f"got {value!r}")
    return (float(value[0]), float(value[1]))


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse a key the criteria do not read: a typo (``critcal = true``) would otherwise
    quietly turn a critical gate into a scored check."""
    for key in table:
        if key not in keys:
            raise CriteriaError(f"{where}{key}: unknown key (known: {', '.join(keys)})")


_RULE_KEYS = ("name", "expr", "critical", "weight", "modes", "faults")


def _rule(raw: Any, i: int) -> Rule:
    where = f"rule[{i}]"
    if not isinstance(raw, dict):
        raise CriteriaError(f"{where} must be a table")
    _known(raw, _RULE_KEYS, f"{where}.")
    expr = raw.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise CriteriaError(f"{where}.expr must be a non-empty string")
    try:
        parse_threshold(expr)
    except ThresholdError as exc:
        raise CriteriaError(f"{where}.expr: {exc}") from None
    modes = raw.get("modes", [])
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise CriteriaError(f"{where}.modes must be a list of strings")
    unknown = [m for m in modes if m not in MODES]
    if unknown:  # a typo turned the rule off: it applied to no scenario, silently
        raise CriteriaError(f"{where}.modes: unknown mode {unknown[0]!r} (one of "
                            f"{', '.join(MODES)})")
    faults = raw.get("faults")
    if faults is not None and not isinstance(faults, bool):
        raise CriteriaError(f"{where}.faults must be true or false")
    critical = raw.get("critical", False)
    if not isinstance(critical, bool):
        raise CriteriaError(f"{where}.critical must be true or false")
    return Rule(
        name=str(raw.get("name", expr)),
        expr=expr,
        critical=critical,
        weight=_num(raw, "weight", 1.0, where),
        modes=tuple(modes),
        faults=faults,
    )


def _parse(data: dict[str, Any], source: str) -> Criteria:
    _known(data, ("verdict", "rule", "claims", "cost", "rollout"), "")
    verdict = _table(data, "verdict")
    _known(verdict, ("go_score", "marginal_score"), "verdict.")
    rule_list = data.get("rule", [])
    if not isinstance(rule_list, list):
        raise CriteriaError("rule must be an array of tables ([[rule]])")
    rules = tuple(_rule(r, i) for i, r in enumerate(rule_list))
    c = _table(data, "claims")
    _known(c, tuple(f.name for f in fields(ClaimSettings)), "claims.")
    claims = ClaimSettings(
        latency_before_s=_pair(c, "latency_before_s", (15.0, 30.0), "claims"),
        latency_after_s=_num(c, "latency_after_s", 1.0, "claims"),
        missed_before_pct=_pair(c, "missed_before_pct", (5.0, 10.0), "claims"),
        missed_after_pct=_num(c, "missed_after_pct", 1.0, "claims"),
        explorer_before_per_hour=_pair(c, "explorer_before_per_hour", (240.0, 480.0), "claims"),
        explorer_after_per_hour=_num(c, "explorer_after_per_hour", 12.0, "claims"),
    )
    cost = _table(data, "cost")
    _known(cost, ("hours_per_month", "explorer", "provider"), "cost.")
    e = _table(cost, "explorer", "cost.")
    _known(e, tuple(f.name for f in fields(ExplorerPlan)), "cost.explorer.")
    p = _table(cost, "provider", "cost.")
    _known(p, tuple(f.name for f in fields(ProviderPlan)), "cost.provider.")
    d_e, d_p = ExplorerPlan(), ProviderPlan()
    cost_settings = CostSettings(
        hours_per_month=_num(cost, "hours_per_month", 730.0, "cost", positive=True),
        explorer=ExplorerPlan(
            plan=str(e.get("plan", d_e.plan)),
            rate_per_s=_num(e, "rate_per_s", d_e.rate_per_s, "cost.explorer", positive=True),
            calls_per_day=_num(e, "calls_per_day", d_e.calls_per_day, "cost.explorer",
                               positive=True),
            price_per_month_usd=_num(e, "price_per_month_usd", 0.0, "cost.explorer"),
        ),
        provider=ProviderPlan(
            plan=str(p.get("plan", d_p.plan)),
            **{
                k: _num(p, k, getattr(d_p, k), "cost.provider")
                for k in (
                    "price_per_million_requests_usd",
                    "compute_units_per_request",
                    "price_per_million_compute_units_usd",
                    "free_compute_units_per_month",
                    "compute_units_per_month_limit",
                    "requests_per_second_limit",
                )
            },
        ),
    )
    r = _table(data, "rollout")
    _known(r, tuple(f.name for f in fields(RolloutSettings)), "rollout.")
    phases_raw = r.get("phases", [list(x) for x in RolloutSettings().phases])
    try:
        phases = tuple((str(name), int(share)) for name, share in phases_raw)
    except (TypeError, ValueError, OverflowError):
        raise CriteriaError("rollout.phases must be a list of [name, percent]") from None
    if not all(0 <= share <= 100 for _name, share in phases):
        raise CriteriaError("rollout.phases: each percent must be 0..100")
    rollout = RolloutSettings(
        phases=phases,
        min_trades_per_phase=int(_num(r, "min_trades_per_phase", 300, "rollout")),
        min_hours_per_phase=_num(r, "min_hours_per_phase", 24.0, "rollout"),
    )
    go = _num(verdict, "go_score", 0.9, "verdict")
    marginal = _num(verdict, "marginal_score", 0.7, "verdict")
    if not 0 <= marginal <= go <= 1:
        raise CriteriaError("verdict: need 0 <= marginal_score <= go_score <= 1")
    if not rules:  # an empty file, or [[rules]] for [[rule]]: nothing would be judged
        raise CriteriaError("no [[rule]]: a verdict needs at least one gate or check")
    return Criteria(rules, go, marginal, claims, cost_settings, rollout, source)


def load_criteria(path: str | Path | None = None) -> Criteria:
    """The criteria from ``path`` (default: ``reports/criteria.toml``)."""
    file = Path(path) if path is not None else DEFAULT_CRITERIA
    try:
        data = tomllib.loads(read_small_text(file, CONFIG_BYTES))
    except FileNotFoundError:
        raise CriteriaError(f"criteria file not found: {file}") from None
    except OSError as exc:
        raise CriteriaError(f"criteria file {file} unreadable: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CriteriaError(f"criteria file {file} is not valid TOML: {exc}") from None
    return _parse(data, "defaults" if path is None else str(file))
