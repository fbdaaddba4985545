"""Scenario files: what one experiment runs, validated before anything starts.

A scenario is a TOML file (``experiments/scenarios/*.toml``)::

    name = "websocket_drops"
    description = "WebSocket feed with an abrupt TCP drop every 2 simulated minutes"
    recording = "today"             # a path, or a shipped one ("today", "default" = the
                                    # 2026-04-27 eve of V2); or profile + seed (+ blocks)
    era = "2026-05+ (1.75 s blocks, V2)"   # which chain this stands for (shown in the report)
    sim_duration_s = 1200           # simulated seconds measured
    speed = 40                      # time compression
    grace_s = 60                    # simulated seconds after the end before stopping
    actionable_window_s = 5
    thresholds = ["missed_pct < 1", "duplicates == 0", "phantoms == 0"]

    [wallets]                       # count + pick ("active" | "mix"), or list
    count = 10
    pick = "active"

    [monitor]                       # monitor settings by their contract names
    mode = "websocket"
    fallback_after = 20

    [explorer]                      # simulator config [explorer], [chain], [rpc]
    rate_per_s = 3.0

    [[faults]]                      # simulator config [[faults]]
    name = "ws_drop"
    target = "ws"
    at = 60
    every = 120

    [[restarts]]                    # the monitor restarted mid-run, its state kept
    at = 300                        # simulated s into the measured window
    kind = "kill"                   # "kill" (nothing drained or flushed) or "stop" (clean)
    down_s = 30                     # simulated s before it starts again (same store)
    add_wallets = 2                 # optional: the restarted monitor watches 2 more (picked
                                    # as [wallets] picks, never watched before), each from
                                    # the simulator's head at its start on
    remove_wallets = 1              # optional: and 1 watched one fewer (a seeded draw)

    [quick]                         # optional: what --quick runs instead
    sim_duration_s = 120
    speed = 40
    wallets = 30                    # a count in place of wallets.count

``extends = "other.toml"`` (a file beside it) starts from another scenario: tables merge
key by key, anything else replaces the other's (experiments/scenarios/soak/soak_week.toml).

:func:`load_scenario` raises :class:`ScenarioError` whose message names the file and the
field: ``scenarios/x.toml: monitor.mode: must be websocket or polling``.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from experiments.thresholds import ThresholdError, parse_threshold
from polyvocab.small_files import CONFIG_BYTES, is_special, read_small_text
from simulator.faults import FAULTS as SIM_FAULTS

__all__ = [
    "FAULT_NAMES",
    "MODES",
    "RESTART_KINDS",
    "FaultSpec",
    "MonitorSpec",
    "RestartSpec",
    "Scenario",
    "ScenarioError",
    "WalletSpec",
    "default_scenarios_dir",
    "list_default_scenarios",
    "load_scenario",
    "resolve_scenario",
    "scenario_from_dict",
]


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the field."""


# The simulator's fault table (simulator.nemesis.KINDS) is the one list of fault names.
FAULT_NAMES = frozenset(SIM_FAULTS)
#: what a scenario's monitor runs (and a live pilot's two paths are named)
MODES = ("websocket", "polling")

# Upper bounds: a typo such as ``blocks = 1e12`` must fail here, naming the field, not
# hours later as an out-of-memory synthesiser or a run that never ends.
# A simulated week fits: virtual time streams it (the simulator synthesises or reads the
# blocks as it replays them and keeps a window; see experiments/virtual.py); real time
# writes a profile's blocks to a file first (~1.5 ms a block) and then runs for days.
MAX_BLOCKS = 406_000  # blocks to synthesise: a week at 1.5-s blocks, plus an hour of grace
MAX_SIM_DURATION_S = 7 * 86_400.0  # simulated seconds measured (and grace): a week
MAX_SPEED = 100_000.0
#: the simulator's slowest --speed (slower, its clock's nanoseconds overflow): a scenario
#: of speed 1e-300 validated, then each run was a harness error
MIN_SPEED = 0.001
MAX_ACTIONABLE_WINDOW_S = 3600.0
MAX_WALLETS = 10_000
MAX_SEED = 2**63 - 1
#: seeds a scenario runs under at most (``--seeds`` or ``seeds = [...]``): ~80 hours of
#: simulated days two at a time here; 100 millions took 9 GB before anything ran
MAX_SEEDS = 10_000
#: ``[[restarts]]`` a scenario may list (each one a monitor's whole start-up)
MAX_RESTARTS = 1_000
MAX_JOBS = 256  # runs at a time (--jobs)
#: the run directory's own files (experiments.store, reports build): no scenario's name
RUN_FILES = frozenset({"manifest.json", "summary.json", "report.html"})

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TARGET = re.compile(r"^(ws|rpc_http|rpc|explorer|chain)(:[A-Za-z0-9_.-]+)?$")


def _positive(value: float | None, what: str = "must be > 0") -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(what)
    return value


def _at_most(value: float | None, limit: float, unit: str = "") -> float | None:
    if value is not None and value > limit:
        raise ValueError(f"must be at most {limit:g}{unit}, got {value:g}")
    return value


def _speed_floor(value: float | None, field: str | None) -> float | None:
    if field == "speed" and value is not None and value < MIN_SPEED:
        raise ValueError(f"must be at least {MIN_SPEED:g}, got {value:g}")
    return value


def _kinds(annotation: Any) -> set[Any]:
    """The scalar types a field's annotation takes (``object``: something else)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kinds(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(a) for a in get_args(annotation)))
    if origin is Literal:
        return {type(a) for a in get_args(annotation)}
    if annotation in (int, float, bool, str, type(None)):
        return {annotation}
    return {object}


def _element(annotation: Any) -> Any:
    """The element annotation of a ``tuple[X, ...]`` field (also optional), else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _element(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found = [e for e in map(_element, get_args(annotation)) if e is not None]
        return found[0] if found else None
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _not_coerced(value: Any, annotation: Any) -> None:
    """Refuse what pydantic's lax mode would turn into another type: ``true`` as the
    number 1 (``seeds = [true]``, ``speed = true``: a run at speed 1), a string as a
    number (``at = "30"``), a number or string as a boolean. TOML has all three kinds."""
    if isinstance(value, list | tuple):
        element = _element(annotation)
        if element is not None:
            for i, item in enumerate(value):
                try:
                    _not_coerced(item, element)
                except ValueError as exc:
                    raise ValueError(f"[{i}]: {exc}") from None
        return
    kinds = _kinds(annotation)
    if object in kinds or type(value) in kinds or value is None:
        return
    if kinds & {int, float} and isinstance(value, bool | str):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)[:40]
        raise ValueError(f"must be a number, got {shown}")
    if bool in kinds and not kinds & {int, float, str}:
        raise ValueError(f"must be true or false, got {repr(value)[:40]}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_lax_types(cls, v: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            _not_coerced(v, field.annotation)
        return v


def _wallet_count(v: int | None) -> int | None:
    """A number of wallets to watch: 1 to :data:`MAX_WALLETS`."""
    if v is not None and v < 1:
        raise ValueError("must be at least 1")
    _at_most(v, MAX_WALLETS)
    return v


class WalletSpec(_Strict):
    """Which wallets to watch: the ``count`` most active, a ``mix``, or an explicit list."""

    count: int | None = None
    pick: Literal["active", "mix"] = "active"
    list: tuple[str, ...] | None = None

    @field_validator("count")
    @classmethod
    def _count(cls, v: int | None) -> int | None:
        return _wallet_count(v)

    @field_validator("list")
    @classmethod
    def _addresses(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must name at least one wallet")
        seen: set[str] = set()
        for a in v:
            if not _ADDRESS.match(a):
                raise ValueError(f"not a 0x-prefixed 20-byte address: {a!r}")
            if a.lower() in seen:  # the monitor watches it once; the analysis counted it
                # twice ("wallets": 2, API calls per wallet halved)
                raise ValueError(f"{a} is listed twice (addresses are case-insensitive)")
            seen.add(a.lower())
        return tuple(a.lower() for a in v)

    @model_validator(mode="after")
    def _one_of(self) -> WalletSpec:
        if (self.count is None) == (self.list is None):
            raise ValueError("give either count (with pick) or list")
        return self


class MonitorSpec(_Strict):
    """Monitor settings, by the names in docs/contracts.md (URLs and paths are the runner's)."""

    mode: str = "websocket"
    websocket_enabled: bool | None = None
    fallback_polling_interval: float | None = None
    polling_interval: float | None = None
    heartbeat_interval: float | None = None
    heartbeat_timeout: float | None = None
    backoff_initial: float | None = None
    backoff_max: float | None = None
    backoff_jitter: float | None = None
    max_reconnect_attempts: int | None = None
    staleness_blocks: int | None = None
    block_interval: float | None = None
    fallback_after: float | None = None
    websocket_share: float | None = None
    max_wallets_per_filter: int | None = None
    backfill_chunk_blocks: int | None = None
    explorer_rate_per_s: float | None = None
    latency_stages: bool | None = None  # unset: on for websocket scenarios at speed 1
    state_synchronous: Literal["FULL", "NORMAL"] | None = None
    dedup_capacity: int | None = None
    dedup_retention_blocks: int | None = None
    # checked by the monitor's own settings (_monitor_accepts), as every field here is
    subscription_mode: Literal["auto", "filtered", "firehose"] | None = None
    reconcile_interval: float | None = None
    head_lag_blocks: int | None = None
    explorer_overlap_blocks: int | None = None

    @field_validator("dedup_retention_blocks")
    @classmethod
    def _retention(cls, v: int | None) -> int | None:
        from monitor.config import MIN_DEDUP_RETENTION_BLOCKS
        if v is not None and not (v == 0 or MIN_DEDUP_RETENTION_BLOCKS <= v <= 10**9):
            raise ValueError(f"must be 0 (keep every id) or {MIN_DEDUP_RETENTION_BLOCKS} "
                             "to 1,000,000,000 blocks")
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in MODES:
            raise ValueError("must be websocket or polling")
        return v

    @field_validator("fallback_polling_interval", "polling_interval", "heartbeat_interval",
                     "heartbeat_timeout", "backoff_initial", "backoff_max", "block_interval",
                     "fallback_after", "explorer_rate_per_s")
    @classmethod
    def _pos(cls, v: float | None) -> float | None:
        return _positive(v)

    @field_validator("max_reconnect_attempts", "staleness_blocks", "max_wallets_per_filter",
                     "backfill_chunk_blocks", "dedup_capacity")
    @classmethod
    def _pos_int(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("backoff_jitter")
    @classmethod
    def _jitter(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 1:
            raise ValueError("must be between 0 and 1")
        return v

    @field_validator("websocket_share")
    @classmethod
    def _share(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 100:
            raise ValueError("must be between 0 and 100")
        return v

    def settings(self) -> dict[str, Any]:
        """The settings that were given (for the monitor's TOML config)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class FaultSpec(_Strict):
    """One ``[[faults]]`` table of the simulator config (times in simulated seconds)."""

    name: str
    target: str | None = None
    at: float | None = None
    duration: float | None = None
    every: float | None = None
    rate_per_hour: float | None = None
    seed: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v not in SIM_FAULTS:  # read live: a fault added to the table is known here
            raise ValueError(f"unknown fault {v!r} (known: {', '.join(sorted(SIM_FAULTS))})")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None and not _TARGET.match(v):
            raise ValueError("must be ws, rpc_http, explorer, chain, rpc (WS + HTTP) or "
                             "ws:<connection-id>")
        return v

    @field_validator("at")
    @classmethod
    def _at(cls, v: float | None) -> float | None:
        if v is not None and not (v >= 0 and math.isfinite(v)):
            raise ValueError("must be >= 0")
        return _at_most(v, MAX_SIM_DURATION_S, " s")

    @field_validator("duration", "every", "rate_per_hour")
    @classmethod
    def _pos(cls, v: float | None) -> float | None:
        return _positive(v)

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= MAX_SEED:
            raise ValueError("must be an integer in [0, 2^63)")
        return v

    @model_validator(mode="after")
    def _when(self) -> FaultSpec:
        if self.at is None and self.rate_per_hour is None:
            raise ValueError("give at (optionally with every) or rate_per_hour")
        if self.at is not None and self.rate_per_hour is not None:
            raise ValueError("give either at/every or rate_per_hour, not both")
        if self.name == "reorg":
            depth = self.params.get("depth", 1)
            if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 64:
                raise ValueError("params.depth: reorg depth must be an integer 1..64")
        from simulator.faults import FaultError, FaultPlan, make_spec

        try:
            make_spec(self.name, self._sim_target(), self._sim_params())
        except FaultError as exc:
            raise ValueError(str(exc)) from None
        try:  # the schedule as the simulator will parse it (bounds on every, rate, ...)
            FaultPlan.parse([self.simulator_table()], "fault")
        except FaultError as exc:
            raise ValueError(str(exc).removeprefix("fault[0].").removeprefix("fault[0]: ")) \
                from None
        return self

    def _sim_target(self) -> str | None:
        # the simulator fills in each fault's own target; only one connection is explicit
        return self.target if self.target and ":" in self.target else None

    def _sim_params(self) -> dict[str, Any]:
        params = dict(self.params)
        if self.seed is not None and self.rate_per_hour is None:
            params.setdefault("seed", self.seed)
        defaults = SIM_FAULTS.get(self.name, ("", {}))[1]
        if "seed" in params and "seed" not in defaults and "seed" not in self.params:
            del params["seed"]
        return params

    def table(self) -> dict[str, Any]:
        """The scenario's table, in the scenario's (contract) vocabulary."""
        return {k: v for k, v in self.model_dump().items() if v is not None and v != {}}

    def simulator_table(self) -> dict[str, Any]:
        """The ``[[faults]]`` table the simulator's schedule parser takes: ``at`` once,
        ``every`` + ``start`` repeated, ``random = true`` + ``rate`` (per simulated minute)."""
        t: dict[str, Any] = {"name": self.name}
        target = self._sim_target()
        if target:
            t["target"] = target
        if self.rate_per_hour is not None:
            t["random"] = True
            t["rate"] = self.rate_per_hour / 60.0
            if self.seed is not None:
                t["seed"] = self.seed
        elif self.every is not None:
            t["every"] = self.every
            t["start"] = self.at
        else:
            t["at"] = self.at
        if self.duration is not None:
            t["duration"] = self.duration
        params = self._sim_params()
        if params:
            t["params"] = params
        return t


# contract names (docs/contracts.md 'Simulator config') -> the simulator's own sections
_LAG_KEYS = {"index_lag_median_s": "median_s", "index_lag_p95_s": "p95_s", "seed": "seed"}
_NODE_KEYS = {"get_logs_max_range": "logs_max_range", "get_logs_max_results": "logs_max_results"}


class QuickSpec(_Strict):
    sim_duration_s: float | None = None
    speed: float | None = None
    grace_s: float | None = None
    #: wallets watched in the quick form (a shorter chain has fewer active wallets)
    wallets: int | None = None

    @field_validator("wallets")
    @classmethod
    def _wallets(cls, v: int | None) -> int | None:
        return _wallet_count(v)

    @field_validator("sim_duration_s", "speed", "grace_s")
    @classmethod
    def _pos(cls, v: float | None, info: ValidationInfo) -> float | None:
        limit = MAX_SPEED if info.field_name == "speed" else MAX_SIM_DURATION_S
        return _speed_floor(_at_most(_positive(v), limit), info.field_name)


#: how a ``[[restarts]]`` entry takes the monitor down: ``kill`` as a killed process (every
#: task cancelled; nothing drained, sent or marked sent), ``stop`` as a clean stop
RESTART_KINDS = ("kill", "stop")


class RestartSpec(_Strict):
    """One ``[[restarts]]`` table: the monitor taken down ``at`` simulated seconds into the
    measured window (``kind``), and started again ``down_s`` simulated seconds later on
    the same state store and detections file. Virtual time only (experiments/virtual.py);
    a real-time run refuses it before anything runs."""

    at: float
    kind: Literal["kill", "stop"]
    down_s: float = 0.0
    #: wallets the restarted monitor watches besides (picked as ``[wallets]`` picks, among
    #: those no monitor of the run watched yet): each starts at its launch point, the
    #: simulator's head when the restarted monitor starts (earlier trades are never the
    #: bot's)
    add_wallets: int = 0
    #: watched wallets the restarted monitor no longer watches (a seeded draw): their
    #: trades mined after the old monitor stopped are not expected
    remove_wallets: int = 0

    @field_validator("at", "down_s")
    @classmethod
    def _time(cls, v: float) -> float:
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError("must be >= 0 (simulated seconds)")
        return v

    @field_validator("add_wallets", "remove_wallets")
    @classmethod
    def _wallet_change(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0 (a number of wallets)")
        _at_most(v, MAX_WALLETS)
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """As dumped: the wallet changes only when given (a restart that changes none
        dumps as it did before they existed)."""
        data: dict[str, Any] = handler(self)
        for key in ("add_wallets", "remove_wallets"):
            if not data.get(key):
                data.pop(key, None)
        return data

    def table(self) -> dict[str, Any]:
        """The scenario's table (the wallet changes only when given)."""
        return self.model_dump()

    @property
    def changes_wallets(self) -> bool:
        return bool(self.add_wallets or self.remove_wallets)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if v not in RESTART_KINDS:
            raise ValueError(f"must be {' or '.join(repr(k) for k in RESTART_KINDS)} "
                             f"(got {v!r})")
        return v


class Scenario(_Strict):
    """One experiment, validated."""

    name: str
    description: str = ""
    # which era of the chain the scenario stands for, e.g. "2026-05+ (1.75 s blocks, V2)"
    # or "2026-04 (2 s blocks, V1+V2)": carried into the summary and shown in the report
    era: str | None = None
    recording: str | None = None
    profile: str | None = None
    seed: int = 0
    #: run under each of these seeds and pool them (``--seeds N`` on the command line wins)
    seeds: Annotated[tuple[int, ...], Field(max_length=MAX_SEEDS)] | None = None
    blocks: int | None = None
    sim_duration_s: float
    speed: float = 1.0
    grace_s: float = 60.0
    actionable_window_s: float = 5.0
    wallets: WalletSpec
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    explorer: dict[str, Any] = Field(default_factory=dict)
    chain: dict[str, Any] = Field(default_factory=dict)
    rpc: dict[str, Any] = Field(default_factory=dict)
    faults: tuple[FaultSpec, ...] = ()
    restarts: Annotated[tuple[RestartSpec, ...], Field(max_length=MAX_RESTARTS)] = ()
    thresholds: tuple[str, ...] = ()
    quick: QuickSpec = Field(default_factory=QuickSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", v):
            raise ValueError("must be letters, digits, '_', '-' or '.' (it names a directory)")
        if v in RUN_FILES:  # its directory took the run's own file's place: the whole run
            # ended "Is a directory" after it had run, with no summary and no latest
            raise ValueError(f"{v!r} is the name of a file of the run directory "
                             f"({', '.join(sorted(RUN_FILES))}); choose another")
        return v

    @field_validator("sim_duration_s", "speed", "actionable_window_s")
    @classmethod
    def _pos(cls, v: float, info: ValidationInfo) -> float:
        _positive(v)
        limit, unit = {"sim_duration_s": (MAX_SIM_DURATION_S, " simulated s (a week)"),
                       "speed": (MAX_SPEED, ""),
                       "actionable_window_s": (MAX_ACTIONABLE_WINDOW_S, " s")}[
                           str(info.field_name)]
        _at_most(v, limit, unit)
        _speed_floor(v, info.field_name)
        return v

    @field_validator("grace_s")
    @classmethod
    def _grace(cls, v: float) -> float:
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError("must be >= 0")
        _at_most(v, MAX_SIM_DURATION_S, " simulated s (a week)")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        if v > MAX_SEED:
            raise ValueError("must be below 2^63")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            if not v:
                raise ValueError("must list at least one seed (or leave seeds out)")
            for i, seed in enumerate(v):
                if not 0 <= seed <= MAX_SEED:
                    raise ValueError(f"[{i}]: must be 0 .. 2^63, got {seed}")
                if seed in v[:i]:  # validate said ok, run refused it
                    raise ValueError(f"[{i}]: seed {seed} is listed twice (seeds must be "
                                     "distinct)")
        return v

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        _at_most(v, MAX_BLOCKS, " (about a week of Polygon blocks)")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, expr in enumerate(v):
            try:
                parse_threshold(expr)
            except ThresholdError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
        return v

    @field_validator("recording", "profile")
    @classmethod
    def _named(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not v.strip():  # was read as the current folder: "a folder"
            raise ValueError("is empty: name a recording file (.jsonl or .jsonl.gz), "
                             "\"today\" or \"default\"" if info.field_name == "recording"
                             else "is empty: name a profile")
        return v

    @model_validator(mode="after")
    def _source(self) -> Scenario:
        if (self.recording is None) == (self.profile is None):
            raise ValueError("recording: give either recording (a path, \"today\" or "
                             "\"default\") "
                             "or profile (+ seed, blocks)")
        if self.recording is not None and self.blocks is not None:
            raise ValueError("blocks: only with profile (a recording has its own blocks)")
        if self.profile is not None and self.synth_blocks() > MAX_BLOCKS:
            raise ValueError(f"sim_duration_s: sim_duration_s + grace_s need "
                             f"{self.synth_blocks()} synthesised blocks, more than "
                             f"{MAX_BLOCKS}; shorten the run or give blocks")
        if self.profile is not None:
            from simulator.profiles import PROFILES

            if self.profile not in PROFILES:
                raise ValueError(f"profile: unknown profile {self.profile!r} (known: "
                                 f"{', '.join(sorted(PROFILES))})")
        end = self.sim_duration_s + self.grace_s
        for i, f in enumerate(self.faults):  # one that never starts is a typo, not a run
            if f.at is not None and f.at >= end:
                raise ValueError(f"faults[{i}].at: {f.at:g} s is after the run ends "
                                 f"(sim_duration_s + grace_s = {end:g} s): it would never "
                                 f"start")
        if self.faults:  # the windows the simulator will open: bounded, found now
            from simulator.faults import FaultError, FaultPlan

            try:
                FaultPlan.parse([f.simulator_table() for f in self.faults]).windows(end)
            except FaultError as exc:
                raise ValueError(str(exc)) from None
        self._restarts_fit()
        self._monitor_accepts()
        from simulator.settings import SettingsError, settings_from_dict

        try:  # [explorer], [chain], [rpc] as the simulator will read them, found now
            settings_from_dict({k: v for k, v in self.simulator_config().items()
                                if k != "faults"}, "simulator settings")
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _restarts_fit(self) -> None:
        """Each restart starts and is up again inside the measured window (one in the
        grace period would meet no judged trade, and one still down at the end would
        leave the run without the monitor's stop), in time order, one after the other."""
        end = self.sim_duration_s
        prev_up: float | None = None
        for i, r in enumerate(self.restarts):
            if r.at >= end:
                raise ValueError(f"restarts[{i}].at: {r.at:g} s is not inside the measured "
                                 f"window (sim_duration_s = {end:g} s)")
            if r.at + r.down_s >= end:
                raise ValueError(f"restarts[{i}].down_s: the monitor would still be down "
                                 f"at the measured window's end ({r.at:g} + {r.down_s:g} "
                                 f">= sim_duration_s = {end:g} s)")
            if prev_up is not None and r.at <= prev_up:
                raise ValueError(f"restarts[{i}].at: {r.at:g} s is not after restarts"
                                 f"[{i - 1}] is up again ({prev_up:g} s): restarts must be "
                                 "in time order and not overlap")
            prev_up = r.at + r.down_s
        self._wallet_changes_fit(self.restarts, self.wallets.count
                                 if self.wallets.list is None else len(self.wallets.list),
                                 "restarts")
        if self.quick.wallets is not None and self.wallets.count is not None:
            # the --quick form watches quick.wallets at first: its restarts must fit too
            quick = self.quickened()
            self._wallet_changes_fit(quick.restarts, self.quick.wallets,
                                     "restarts", " (in the --quick form: quick.wallets = "
                                     f"{self.quick.wallets})")

    @staticmethod
    def _wallet_changes_fit(restarts: tuple[RestartSpec, ...], watched: int | None,
                            field: str, form: str = "") -> None:
        """Each restart removes no more wallets than are watched and leaves at least one
        watched; every wallet ever watched counts against :data:`MAX_WALLETS`."""
        if watched is None:
            return
        ever = watched
        for i, r in enumerate(restarts):
            if r.remove_wallets > watched:
                raise ValueError(f"{field}[{i}].remove_wallets: only {watched} wallets are "
                                 f"watched then, got {r.remove_wallets}{form}")
            if r.remove_wallets == watched and not r.add_wallets:
                raise ValueError(f"{field}[{i}].remove_wallets: {r.remove_wallets} of the "
                                 f"{watched} wallets watched then would leave none "
                                 f"watched (add some with add_wallets){form}")
            watched += r.add_wallets - r.remove_wallets
            ever += r.add_wallets
            if ever > MAX_WALLETS:
                raise ValueError(f"{field}[{i}].add_wallets: {ever} wallets watched in the "
                                 f"run, more than {MAX_WALLETS}{form}")

    def _monitor_accepts(self) -> None:
        """The ``[monitor]`` settings as the monitor will load them (its own bounds and
        cross-checks: ``heartbeat_interval`` at most a day, ``backoff_max`` >=
        ``backoff_initial``, ...): refused here, not as a harness error of every run
        after the scenarios before it in the matrix had run."""
        from monitor.config import load_settings
        from monitor.errors import MonitorError

        settings = self.monitor.settings()
        settings.pop("mode", None)
        url = "127.0.0.1:1/"
        cli = {**settings, "mode": self.mode, "websocket_url": f"ws://{url}",
               "rpc_url": f"http://{url}", "explorer_url": f"http://{url}v2/api",
               "explorer_api_key": "k", "wallets": ["0x" + "00" * 20], "speed": self.speed}
        try:
            load_settings(cli, environ={})
        except MonitorError as exc:
            raise ValueError(f"monitor: the monitor refuses these settings: "
                             f"{exc.message}") from None

    # -- derived -----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self.monitor.mode

    def synth_blocks(self) -> int:
        """Blocks to synthesise for a profile: enough for the run at 1.5 s blocks."""
        if self.blocks is not None:
            return self.blocks
        return int((self.sim_duration_s + self.grace_s) / 1.5) + 60

    def quickened(self) -> Scenario:
        """The ``--quick`` variant: fewer simulated seconds, a higher speed."""
        duration = self.quick.sim_duration_s or min(self.sim_duration_s, 90.0)
        speed = self.quick.speed or max(self.speed, 40.0)
        grace = self.quick.grace_s if self.quick.grace_s is not None else min(self.grace_s, 20.0)
        blocks = self.blocks
        if self.profile is not None and self.blocks is not None:
            blocks = min(self.blocks, int((duration + grace) / 1.5) + 60)
        # a fault set to start after the shorter run ends would never start: not kept (a
        # scenario that names one is refused at validation)
        faults = tuple(f for f in self.faults if f.at is None or f.at < duration + grace)
        restarts = tuple(r for r in self.restarts if r.at + r.down_s < duration)
        wallets = self.wallets
        if self.quick.wallets is not None and wallets.count is not None:
            wallets = wallets.model_copy(update={"count": self.quick.wallets})
        return self.model_copy(update={"sim_duration_s": duration, "speed": speed,
                                       "grace_s": grace, "blocks": blocks, "faults": faults,
                                       "restarts": restarts,
                                       "wallets": wallets})

    def simulator_config(self) -> dict[str, Any]:
        """The simulator config document (docs/contracts.md 'Simulator config')."""
        doc: dict[str, Any] = {}
        chain, rpc = dict(self.chain), dict(self.rpc)
        lag = {new: chain.pop(old) for old, new in _LAG_KEYS.items() if old in chain}
        node = {new: rpc.pop(old) for old, new in _NODE_KEYS.items() if old in rpc}
        # the runs start the replay at the recording's first block, as they always did (a
        # fresh `serve` would serve 16 blocks as history): change it here to change results
        chain.setdefault("history_blocks", 0)
        if lag:
            doc["lag"] = lag
        if node:
            doc["node"] = node
        if chain:
            doc["chain"] = chain
        if rpc:
            doc["rpc"] = rpc
        if self.explorer:
            doc["explorer"] = dict(self.explorer)
        if self.faults:
            doc["faults"] = [f.simulator_table() for f in self.faults]
        return doc

    def to_toml_dict(self) -> dict[str, Any]:
        """The scenario as a TOML document (``scenario.toml`` in the run store)."""
        data = self.model_dump(exclude_none=True)
        data["faults"] = [f.table() for f in self.faults]
        data["monitor"] = self.monitor.settings()
        if not data["faults"]:
            del data["faults"]
        data["restarts"] = [r.table() for r in self.restarts]
        if not data["restarts"]:
            del data["restarts"]
        for key in ("explorer", "chain", "rpc"):
            if not data.get(key):
                data.pop(key, None)
        data["thresholds"] = list(self.thresholds)
        if not self.quick.model_dump(exclude_none=True):
            data.pop("quick", None)
        return data


def _format_error(where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    loc = loc.removeprefix(".")
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "extra_forbidden":
        msg = "unknown field"
    if not loc:
        # model-level errors name their field at the start of the message
        field, sep, rest = msg.partition(": ")
        if sep and re.match(r"^[a-z_.\[\]0-9]+$", field):
            loc, msg = field, rest
    elif msg.startswith("params.depth: "):
        loc, msg = f"{loc}.params.depth", msg.removeprefix("params.depth: ")
    elif loc == "thresholds" and msg.startswith("["):
        idx, _, rest = msg.partition("]: ")
        loc, msg = f"thresholds{idx}]", rest
    more = len(exc.errors()) - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {loc}: {msg}{tail}" if loc else f"{where}: {msg}{tail}"


def scenario_from_dict(data: dict[str, Any], where: str = "scenario") -> Scenario:
    """Validate a parsed document. Raises :class:`ScenarioError` naming the field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_error(where, exc)) from None


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: tables merge key by key, anything else (values, arrays
    such as ``[[faults]]``) is replaced whole."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _scenario_document(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    try:
        if is_special(path):  # a FIFO: the open waited for a writer (validate and run hung)
            raise ScenarioError(f"{path}: cannot read (not a regular file)")
        data = tomllib.loads(read_small_text(path, CONFIG_BYTES))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib has no depth limit: [[[[...]]]] was a traceback
        raise ScenarioError(f"{path}: not valid TOML (nested too deep)") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.endswith(".toml"):
        raise ScenarioError(f"{path}: extends: expected a scenario file name (x.toml), "
                            f"got {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ScenarioError(f"{path}: extends: {base} extends this file again (a cycle)")
    return _merged(_scenario_document(base_path, (*seen, path.resolve())), data)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file. ``extends = "other.toml"`` (beside it) starts
    from that scenario: tables such as ``[monitor]`` merge key by key, anything else
    (``name``, ``sim_duration_s``, the whole ``[[faults]]`` list) replaces the other's."""
    path = Path(path)
    return scenario_from_dict(_scenario_document(path), str(path))


def default_scenarios_dir() -> Path:
    return Path(__file__).resolve().parent / "scenarios"


def list_default_scenarios() -> list[Path]:
    """The default matrix, in file-name order."""
    return sorted(default_scenarios_dir().glob("*.toml"))


def resolve_scenario(name_or_path: str) -> Path:
    """A scenario given by name (``polling_15s``) or by path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        if not p.exists():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        return p
    candidate = default_scenarios_dir() / f"{name_or_path}.toml"
    if not candidate.exists():
        known = ", ".join(q.stem for q in list_default_scenarios())
        raise ScenarioError(f"{name_or_path}: no such scenario (known: {known})")
    return candidate
