"""Faults: what can go wrong, when it is scheduled, and which are active (sans-I/O).

A fault has a ``name`` (below), a ``target`` and ``params``. Targets: ``ws`` (every
WebSocket connection) or ``ws:<conn id>`` (one), ``rpc_http``, ``explorer``, ``chain``.

========================  ======== =====================================================
name                      target   params (defaults)
========================  ======== =====================================================
ws_drop                   ws       - (abrupt TCP close, no close frame; one-shot)
ws_close                  ws       code (1001; 1000/1001/1011/1012/1013), reason
ws_refuse                 ws       drop_existing (true), mode ("503" | "reset"): upgrades
                                   answered 503, or the TCP connection reset, meanwhile
ws_stall                  ws       - (half-open: nothing sent, pings unanswered)
ws_silent                 ws       - (pings and calls answered, notifications dropped)
ws_latency                ws       delay_ms (200), jitter_ms (0), seed (0)
ws_loss                   ws       share (0.1), seed (0)
ws_dup                    ws       share (0.1), seed (0)
max_subscriptions         ws       n (1)
reorg                     chain    depth (1; 1..64), seed (0), move_share, vanish_share
rpc_errors                rpc_http share (0.5), statuses ([429,500,502,503,"timeout"]),
                                   timeout_s (10), seed (0)
explorer_rate_limit       explorer rate (1.0 calls/s per key)
explorer_lag              explorer extra_s (30): added to the index lag of new blocks
explorer_down             explorer mode ("html502" | "timeout")
========================  ======== =====================================================

All durations and delays are simulated seconds (divided by ``speed`` on the wire).

Scheduling (``[[faults]]`` in a TOML config or scenario)::

    [[faults]]                      # once
    name = "ws_drop"
    at = 30
    [[faults]]                      # periodically from `start` (or `at`; default = every)
    name = "ws_stall"
    every = 120
    duration = 20
    [[faults]]                      # Poisson arrivals, `rate` starts per simulated minute
    name = "ws_loss"                # (or rate_per_hour = 30, the contract's words)
    random = true
    rate = 0.5
    seed = 7
    duration = 10
    params = { share = 0.3 }
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAULTS",
    "ActiveFault",
    "FaultBoard",
    "FaultError",
    "FaultPlan",
    "FaultSpec",
    "Window",
    "check_duration",
    "make_spec",
]


class FaultError(ValueError):
    """A fault request or schedule entry that cannot be used (message names the field)."""


_WS = "ws"
# name -> (target kind, default params)
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ws_drop": (_WS, {}),
    "ws_close": (_WS, {"code": 1001, "reason": ""}),
    "ws_refuse": (_WS, {"drop_existing": True, "mode": "503"}),
    "ws_stall": (_WS, {}),
    "ws_silent": (_WS, {}),
    "ws_latency": (_WS, {"delay_ms": 200.0, "jitter_ms": 0.0, "seed": 0}),
    "ws_loss": (_WS, {"share": 0.1, "seed": 0}),
    "ws_dup": (_WS, {"share": 0.1, "seed": 0}),
    "max_subscriptions": (_WS, {"n": 1}),
    "reorg": ("chain", {"depth": 1, "seed": 0, "move_share": 0.3, "vanish_share": 0.2}),
    "rpc_errors": ("rpc_http", {"share": 0.5, "statuses": [429, 500, 502, 503, "timeout"],
                                "timeout_s": 10.0, "seed": 0}),
    "explorer_rate_limit": ("explorer", {"rate": 1.0}),
    "explorer_lag": ("explorer", {"extra_s": 30.0}),
    "explorer_down": ("explorer", {"mode": "html502"}),
}
ONE_SHOT = frozenset({"ws_drop", "ws_close", "reorg"})
_CLOSE_CODES = frozenset({1000, 1001, 1011, 1012, 1013})
MAX_DURATION_S = 30 * 86_400.0  # a fault window or schedule time, simulated seconds
MIN_EVERY_S = 0.1  # shortest period of a periodic fault
MAX_RATE_PER_MIN = 600.0  # most random starts per simulated minute
MAX_SEED = 2**63 - 1


def _num(params: dict[str, Any], key: str, lo: float, hi: float) -> None:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise FaultError(f"params.{key}: expected a number in [{lo}, {hi}], got {value!r}")


def check_duration(value: Any, where: str) -> float:
    """A duration or time in simulated seconds: a finite number in [0, 30 days]."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value <= MAX_DURATION_S):  # NaN fails every comparison
        raise FaultError(f"{where}: expected a number of seconds in [0, {MAX_DURATION_S:g}], "
                         f"got {value!r}")
    return float(value)


def _check_types(params: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Every param has the type of its default (numbers finite), before any use of it."""
    for key, want in defaults.items():
        value = params[key]
        if isinstance(want, bool):
            ok = isinstance(value, bool)
        elif isinstance(want, (int, float)):
            ok = (not isinstance(value, bool) and isinstance(value, (int, float))
                  and value == value and abs(value) != float("inf"))
        else:
            ok = isinstance(value, type(want))
        if not ok:
            raise FaultError(f"params.{key}: expected {type(want).__name__}, got {value!r}")
    if "seed" in defaults and not (isinstance(params["seed"], int)
                                   and 0 <= params["seed"] <= MAX_SEED):
        raise FaultError(f"params.seed: expected an integer in [0, 2^63), got {params['seed']!r}")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A checked fault: name, target and complete params."""

    name: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "params": self.params}

    @property
    def conn_id(self) -> str | None:
        """The one connection targeted (``ws:<id>``), or None for all."""
        return self.target.split(":", 1)[1] if ":" in self.target else None


def make_spec(name: Any, target: Any = None, params: Any = None) -> FaultSpec:
    """Check a fault request; fill in the default target and params."""
    if not isinstance(name, str) or name not in FAULTS:
        raise FaultError(f"name: unknown fault {name!r} (known: {', '.join(sorted(FAULTS))})")
    kind, defaults = FAULTS[name]
    if target is None:
        target = kind
    if not isinstance(target, str) or not (target == kind or (
            kind == _WS and target.startswith("ws:") and len(target) > 3)):
        hint = f"{kind!r} or 'ws:<connection id>'" if kind == _WS else repr(kind)
        raise FaultError(f"target: {name} targets {hint}, got {target!r}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise FaultError("params: expected an object")
    unknown = set(params) - set(defaults)
    if unknown:
        raise FaultError(f"params: unknown for {name}: {', '.join(sorted(unknown))}")
    full = {**defaults, **params}
    _check_types(full, defaults)
    if name == "ws_close" and len(full["reason"].encode()) > 123:
        raise FaultError("params.reason: a close reason is at most 123 bytes (RFC 6455)")
    if name == "ws_refuse" and full["mode"] not in ("503", "reset"):
        raise FaultError("params.mode: expected '503' or 'reset'")
    if name == "ws_close" and full["code"] not in _CLOSE_CODES:
        raise FaultError(f"params.code: expected one of {sorted(_CLOSE_CODES)}")
    if name == "ws_latency":
        _num(full, "delay_ms", 0, 600_000)
        _num(full, "jitter_ms", 0, 600_000)
    if name in ("ws_loss", "ws_dup", "rpc_errors"):
        _num(full, "share", 0, 1)
    if name == "reorg":
        _num(full, "depth", 1, 64)
        _num(full, "move_share", 0, 1)
        _num(full, "vanish_share", 0, 1)
        if full["move_share"] + full["vanish_share"] > 1:
            raise FaultError("params: move_share + vanish_share must be <= 1")
        full["depth"] = int(full["depth"])
    if name == "max_subscriptions":
        _num(full, "n", 0, 1_000_000)
        full["n"] = int(full["n"])
    if name == "explorer_rate_limit":
        _num(full, "rate", 0.001, 1_000_000)
    if name == "explorer_lag":
        _num(full, "extra_s", 0, 86_400)
    if name == "explorer_down" and full["mode"] not in ("html502", "timeout"):
        raise FaultError("params.mode: expected 'html502' or 'timeout'")
    if name == "rpc_errors":
        _num(full, "timeout_s", 0, 3600)
        statuses = full["statuses"]
        if not isinstance(statuses, list) or not statuses or not all(
                s == "timeout" or (isinstance(s, int) and 400 <= s <= 599) for s in statuses):
            raise FaultError("params.statuses: expected a list of HTTP codes 4xx/5xx "
                             "or \"timeout\"")
    return FaultSpec(name=name, target=target, params=full)


@dataclass(frozen=True, slots=True)
class Window:
    """One scheduled occurrence: start and stop in simulated seconds (stop None = one-shot)."""

    start_s: float
    stop_s: float | None
    spec: FaultSpec


def _duration(entry: dict[str, Any], where: str) -> float:
    return check_duration(entry.get("duration", 0.0), f"{where}.duration")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Scheduled faults from ``[[faults]]`` entries (pure: windows in simulated seconds)."""

    entries: tuple[dict[str, Any], ...] = ()

    @classmethod
    def parse(cls, entries: Any, where: str = "faults") -> FaultPlan:
        """Check every entry now, so a bad schedule fails before the run, naming the field."""
        if not isinstance(entries, (list, tuple)):
            raise FaultError(f"{where}: expected an array of tables")
        checked = []
        for i, entry in enumerate(entries):
            at = f"{where}[{i}]"
            if not isinstance(entry, dict):
                raise FaultError(f"{at}: expected a table")
            known = {"name", "target", "params", "at", "every", "start", "duration",
                     "random", "rate", "rate_per_hour", "seed"}
            extra = set(entry) - known
            if extra:
                raise FaultError(f"{at}: unknown keys {', '.join(sorted(extra))}")
            entry = dict(entry)
            if "rate_per_hour" in entry:  # the contract's words for a random schedule
                rate = entry.pop("rate_per_hour")
                if "random" in entry or "rate" in entry:
                    raise FaultError(f"{at}: give rate_per_hour or random + rate, not both")
                if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
                    raise FaultError(f"{at}.rate_per_hour: expected a number >= 0, "
                                     f"got {rate!r}")
                entry["random"], entry["rate"] = True, rate / 60.0
            if "every" in entry and "at" in entry:  # contract: at = first start
                if "start" in entry:
                    raise FaultError(f"{at}: give at or start with every, not both")
                entry["start"] = entry.pop("at")
            try:
                spec = make_spec(entry.get("name"), entry.get("target"), entry.get("params"))
            except FaultError as exc:
                raise FaultError(f"{at}.{exc}") from None
            if "seed" in entry and "seed" in spec.params and "seed" not in (
                    entry.get("params") or {}):
                entry["params"] = {**(entry.get("params") or {}), "seed": entry["seed"]}
            modes = [k for k in ("at", "every", "random") if k in entry]
            if len(modes) != 1:
                raise FaultError(f"{at}: give exactly one of 'at', 'every', 'random' "
                                 f"(or rate_per_hour)")
            _duration(entry, at)
            for key in ("at", "every", "start", "rate", "seed"):
                if key in entry:
                    v = entry[key]
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                        raise FaultError(f"{at}.{key}: expected a number >= 0, got {v!r}")
            for key in ("at", "every", "start"):
                if key in entry:
                    check_duration(entry[key], f"{at}.{key}")
            if "every" in entry and entry["every"] <= 0:
                raise FaultError(f"{at}.every: must be > 0")
            if "every" in entry and entry["every"] < MIN_EVERY_S:
                raise FaultError(f"{at}.every: must be at least {MIN_EVERY_S} s")
            if "rate" in entry and not entry["rate"] <= MAX_RATE_PER_MIN:
                raise FaultError(f"{at}.rate: at most {MAX_RATE_PER_MIN:g} starts per "
                                 f"simulated minute, got {entry['rate']!r}")
            if "seed" in entry and not (isinstance(entry["seed"], int)
                                        and entry["seed"] <= MAX_SEED):
                raise FaultError(f"{at}.seed: expected an integer in [0, 2^63)")
            if "random" in entry and (entry["random"] is not True or "rate" not in entry):
                raise FaultError(f"{at}: random faults need random = true and a rate")
            checked.append(dict(entry))
        return cls(tuple(checked))

    def windows(self, horizon_s: float) -> list[Window]:
        """Every occurrence that starts before ``horizon_s``, sorted by start."""
        out: list[Window] = []
        for entry in self.entries:
            spec = make_spec(entry["name"], entry.get("target"), entry.get("params"))
            duration = _duration(entry, "faults")
            one_shot = spec.name in ONE_SHOT and duration == 0
            starts: list[float] = []
            if "at" in entry:
                starts = [float(entry["at"])]
            elif "every" in entry:
                every = float(entry["every"])
                t = float(entry.get("start", every))
                while t < horizon_s:
                    starts.append(t)
                    t += every
            else:
                rng = random.Random(int(entry.get("seed", 0)))
                rate_per_s = float(entry["rate"]) / 60.0
                t = float(entry.get("start", 0.0))
                while rate_per_s > 0:
                    t += rng.expovariate(rate_per_s)
                    if t >= horizon_s:
                        break
                    starts.append(t)
                    t += duration  # one at a time
            for s in starts:
                if s < horizon_s:
                    out.append(Window(s, None if one_shot else s + duration, spec))
        out.sort(key=lambda w: (w.start_s, w.spec.name))
        return out


@dataclass(slots=True)
class ActiveFault:
    """A fault that has started; ``stop_ns`` None = until stopped by hand."""

    id: str
    spec: FaultSpec
    started_ns: int
    stop_ns: int | None
    rng: random.Random

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec.to_dict(), "started_ns": self.started_ns,
                "stop_ns": self.stop_ns}

    def hits(self, conn_id: str) -> bool:
        target = self.spec.conn_id
        return target is None or target == conn_id


class FaultBoard:
    """Which faults are active; ids are ``f1``, ``f2``, ... in start order."""

    def __init__(self) -> None:
        self.active: dict[str, ActiveFault] = {}
        self._next = 1

    def start(self, spec: FaultSpec, now_ns: int, duration_ns: int | None) -> ActiveFault:
        fault_id = f"f{self._next}"
        self._next += 1
        seed = spec.params.get("seed", 0)
        fault = ActiveFault(id=fault_id, spec=spec, started_ns=now_ns,
                            stop_ns=None if duration_ns is None else now_ns + duration_ns,
                            rng=random.Random(f"{seed}:{fault_id}"))
        self.active[fault_id] = fault
        return fault

    def stop(self, fault_id: str) -> ActiveFault | None:
        return self.active.pop(fault_id, None)

    def expired(self, now_ns: int) -> list[ActiveFault]:
        """Faults whose time is up (the caller stops them)."""
        return [f for f in self.active.values() if f.stop_ns is not None and f.stop_ns <= now_ns]

    def next_stop_ns(self) -> int | None:
        stops = [f.stop_ns for f in self.active.values() if f.stop_ns is not None]
        return min(stops) if stops else None

    def find(self, name: str, conn_id: str | None = None) -> list[ActiveFault]:
        return [f for f in self.active.values()
                if f.spec.name == name and (conn_id is None or f.hits(conn_id))]

    def first(self, name: str, conn_id: str | None = None) -> ActiveFault | None:
        found = self.find(name, conn_id)
        return found[0] if found else None
