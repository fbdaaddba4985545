"""Faults: what can be asked for, checked, and when it is scheduled (sans-I/O).

What each fault *does* is decided in :mod:`simulator.nemesis` (one table, :data:`KINDS`,
one pure function per hook); this module checks requests against that table and turns
``[[faults]]`` schedules into windows. ``FaultError``, ``FaultSpec``, ``ActiveFault`` and
``FaultBoard`` live in the nemesis and are re-exported here.

A fault has a ``name`` (below), a ``target`` and ``params``. Targets: ``ws`` (every
WebSocket connection) or ``ws:<conn id>`` (one), ``rpc_http``, ``rpc``, ``explorer``,
``chain``.

========================  ======== =====================================================
name                      target   params (defaults)
========================  ======== =====================================================
ws_drop                   ws       - (abrupt TCP close, no close frame; one-shot)
ws_close                  ws       code (1001; 1000/1001/1011/1012/1013), reason
ws_refuse                 ws       drop_existing (true), mode ("503" | "reset"): upgrades
                                   answered 503, or the TCP connection reset, meanwhile
ws_stall                  ws       - (half-open: nothing sent, pings unanswered)
ws_silent                 ws       subscription ("all" | "logs" | "newHeads"): pings and
                                   calls answered, that kind's notifications dropped
ws_latency                ws       delay_ms (200), jitter_ms (0), seed (0)
ws_loss                   ws       share (0.1), seed (0)
ws_dup                    ws       share (0.1), seed (0)
max_subscriptions         ws       n (1)
reorg                     chain    depth (1; 1..64), seed (0), move_share, vanish_share,
                                   heads ("each" | "top": a newHeads header for every new
                                   block, or only for the new top, after all the logs, as
                                   geth announces a side chain that overtakes at once),
                                   removed_logs (true; false: the orphans' logs are not
                                   sent again with ``removed: true``)
rpc_errors                rpc_http share (0.5), statuses ([429,500,502,503,"timeout"]),
                                   timeout_s (10), seed (0)
rpc_lag                   rpc_http blocks (1; 1..64): the HTTP node is ``blocks`` behind the
                                   head: eth_blockNumber, tags and logs answer from there,
                                   a block above it is null; it still has the blocks a
                                   reorg made since then replaced (WebSocket untouched)
explorer_rate_limit       explorer rate (1.0 calls/s per key)
explorer_lag              explorer extra_s (30): added to the index lag of new blocks
explorer_down             explorer mode ("html502" | "timeout")
ws_garbage                ws       share (0.2), max_items (50), seed (0), kinds (all of
                                   non_json, wrong_type, unknown_sub, unhashable_sub,
                                   huge_number, deep_nesting, unknown_id): a garbage
                                   frame after a notification
bad_log                   rpc      share (0.3), max_items (50), seed (0), kinds (all of
                                   bad_hex_data, wrong_data_length, huge_block_number,
                                   missing_fields): an undecodable copy of a log (fresh tx
                                   hash) after a ``logs`` notification and inside an
                                   ``eth_getLogs`` answer, the valid logs kept
head_jump                 ws       share (0.2), max_items (5), seed (0), ahead (2^40): a
                                   newHeads header ``ahead`` blocks past the real one,
                                   after it; never materialises
rpc_garbage               rpc_http share (0.2), max_items (50), seed (0), kinds (all of
                                   html, truncated, wrong_id, wrong_type): one HTTP
                                   JSON-RPC answer replaced
explorer_garbage          explorer share (0.2), max_items (50), seed (0), kinds (all of
                                   bad_rows, html200, status_mismatch): bad rows beside
                                   the good ones, or one answer replaced
========================  ======== =====================================================

``share`` is the chance per opportunity (a notification, an answer); ``max_items`` bounds
the malformed items one activation sends; each item is a ``malformed`` history row
(``fault_id``, ``name``, ``kind``, ``api``). Target ``rpc`` = JSON-RPC over WS and HTTP.

All durations and delays are simulated seconds (divided by ``speed`` on the wire). A
fault's duration counts from its start on the node's clock, whether or not the replay
runs: one posted to a paused node (``serve --paused``) ends on time before the start.

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

Seeds: an entry's ``seed`` seeds its random starts and is its ``params.seed`` (when the
fault has one); a ``params.seed`` alone does both too. An entry that gives neither gets
:func:`fault_seed` of the run's seed (the config's ``[chain] seed``, 0 when absent) and
its index in the list (:meth:`FaultPlan.seeded`, as the server builds the schedule): two
unseeded faults of one schedule draw different starts, shares and jitter, another run
seed draws others, and the same config draws the same again.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.nemesis import KINDS, ActiveFault, FaultBoard, FaultError, FaultSpec

__all__ = [
    "FAULTS",
    "MAX_WINDOWS",
    "ONE_SHOT",
    "ActiveFault",
    "FaultBoard",
    "FaultError",
    "FaultPlan",
    "FaultSpec",
    "Window",
    "check_duration",
    "fault_seed",
    "make_spec",
]

_WS = "ws"


class _FaultTable(Mapping[str, tuple[str, dict[str, Any]]]):
    """name -> (target kind, default params), read live from the nemesis table."""

    def __getitem__(self, name: str) -> tuple[str, dict[str, Any]]:
        kind = KINDS[name]
        return kind.target, dict(kind.defaults)

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


FAULTS: Mapping[str, tuple[str, dict[str, Any]]] = _FaultTable()
ONE_SHOT = frozenset(name for name, kind in KINDS.items() if kind.one_shot)
MAX_DURATION_S = 30 * 86_400.0  # a fault window or schedule time, simulated seconds
MIN_EVERY_S = 0.1  # shortest period of a periodic fault
MAX_RATE_PER_MIN = 600.0  # most random starts per simulated minute
MAX_SEED = 2**63 - 1
#: fault windows a schedule may open over its horizon (the soak week opens ~2,500): a
#: fault every 0.1 s over a week was 12 million windows, 2.4 GB and 26 s before the replay
MAX_WINDOWS = 200_000


def check_duration(value: Any, where: str) -> float:
    """A duration or time in simulated seconds: a finite number in [0, 30 days]."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value <= MAX_DURATION_S):  # NaN fails every comparison
        raise FaultError(f"{where}: expected a number of seconds in [0, {MAX_DURATION_S:g}], "
                         f"got {value!r}")
    return float(value)


def fault_seed(run_seed: int, index: int) -> int:
    """The seed of the ``index``-th ``[[faults]]`` entry that gives none, under run seed
    ``run_seed``: the first 8 bytes of sha256(``"{run_seed}:fault{index}"``), below 2^63
    (stable across Python versions and processes)."""
    digest = hashlib.sha256(f"{run_seed}:fault{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED


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


def make_spec(name: Any, target: Any = None, params: Any = None) -> FaultSpec:
    """Check a fault request; fill in the default target and params."""
    if not isinstance(name, str) or name not in KINDS:
        raise FaultError(f"name: unknown fault {name!r} (known: {', '.join(sorted(KINDS))})")
    kind_spec = KINDS[name]
    kind, defaults = kind_spec.target, dict(kind_spec.defaults)
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
    if kind_spec.check is not None:
        kind_spec.check(full)
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
            if _duration(entry, at) == 0 and not KINDS[spec.name].one_shot:
                # a window of 0 s: started and stopped at once, nothing done - a scenario
                # that reads as a stall (or an outage) that never happened
                raise FaultError(f"{at}: {spec.name} lasts its duration: give duration > 0 "
                                 "(simulated seconds); only one-shot faults (ws_drop, "
                                 "ws_close, reorg) go without one")
            checked.append(dict(entry))
        return cls(tuple(checked))

    def seeded(self, run_seed: int) -> FaultPlan:
        """This plan with a seed in every entry: its own (``seed``, else ``params.seed``),
        else :func:`fault_seed` of ``run_seed`` and its index; also in ``params.seed``
        where the fault has one and the entry gave none. Unseeded entries all drew from
        seed 0: two faults of one rate started at the same times, with the same draws."""
        out = []
        for i, entry in enumerate(self.entries):
            params = dict(entry.get("params") or {})
            seed = entry.get("seed", params.get("seed"))
            if seed is None:
                seed = fault_seed(run_seed, i)
            new = {**entry, "seed": seed}
            if "seed" in KINDS[entry["name"]].defaults and "seed" not in params:
                new["params"] = {**params, "seed": seed}
            out.append(new)
        return FaultPlan(tuple(out))

    def windows(self, horizon_s: float) -> list[Window]:
        """Every occurrence that starts before ``horizon_s``, sorted by start. Raises
        :class:`FaultError` past :data:`MAX_WINDOWS` of them (counted as they are made)."""
        out: list[Window] = []
        for entry in self.entries:
            spec = make_spec(entry["name"], entry.get("target"), entry.get("params"))
            duration = _duration(entry, "faults")
            one_shot = KINDS[spec.name].one_shot and duration == 0
            starts: list[float] = []
            if "at" in entry:
                starts = [float(entry["at"])]
            elif "every" in entry:
                every = float(entry["every"])
                t = float(entry.get("start", every))
                while t < horizon_s and len(starts) <= MAX_WINDOWS:
                    starts.append(t)
                    t += every
            else:
                rng = random.Random(int(entry.get("seed", 0)))
                rate_per_s = float(entry["rate"]) / 60.0
                t = float(entry.get("start", 0.0))
                while rate_per_s > 0 and len(starts) <= MAX_WINDOWS:
                    t += rng.expovariate(rate_per_s)
                    if t >= horizon_s:
                        break
                    starts.append(t)
                    t += duration  # one at a time
            for s in starts:
                if s < horizon_s:
                    out.append(Window(s, None if one_shot else s + duration, spec))
            if len(out) > MAX_WINDOWS:
                raise FaultError(f"faults: more than {MAX_WINDOWS:,} fault windows in "
                                 f"{horizon_s:g} simulated s (reached at {spec.name}): make "
                                 f"'every' longer or 'rate' lower")
        out.sort(key=lambda w: (w.start_s, w.spec.name))
        return out
