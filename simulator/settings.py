"""Settings of the mock node: provider-like limits, index lag, and where they come from.

All values have provider-like defaults (see REFERENCE.md). A TOML config
(``serve --config FILE``) may override them::

    [node]
    profile = "alchemy"         # geth | alchemy | infura | quicknode | public
    logs_max_range = 2000       # optional: overrides the profile's number

    [lag]               # or, in the contract's words, [chain] index_lag_median_s = 4.0
    median_s = 4.0
    p95_s = 10.0

    [explorer]          # passed through to simulator.explorer untouched
    rate_limit_per_s = 3

    [[faults]]          # see simulator.faults
    name = "ws_drop"
    at = 30

Unknown keys are an error that names the key (a typo must not silently fall back).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyvocab.small_files import CONFIG_BYTES, is_special, read_small_text
from simulator.errors import SimulatorError
from simulator.providers import PROFILES

#: blocks of history a fresh ``serve`` has when neither the config nor the flag says
SERVE_HISTORY_BLOCKS = 16
#: blocks a streamed chain keeps in memory behind its head when nothing says otherwise:
#: a reorg of up to 64 blocks, the explorer's index lag and a recent eth_getLogs look-back
#: all stay inside; older blocks are regenerated (synthetic) or re-read (file) on demand
DEFAULT_WINDOW_BLOCKS = 96

__all__ = [
    "DEFAULT_WINDOW_BLOCKS",
    "FROM_PROFILE",
    "SERVE_HISTORY_BLOCKS",
    "LagSettings",
    "NodeSettings",
    "SettingsError",
    "SimSettings",
    "load_config",
]


class SettingsError(SimulatorError, ValueError):
    """A config that cannot be used; the message names the file and the field."""


#: a limit left to the provider profile (``[node] profile``); after construction every such
#: geth v1.17 rpc/http.go defaultBodyLimit: an HTTP request body past it is 413
GETH_HTTP_BODY_LIMIT = 5 * 1024 * 1024
#: geth v1.17 rpc/websocket.go wsDefaultReadLimit: a WebSocket message past it closes (1009)
GETH_WS_READ_LIMIT = 32 * 1024 * 1024
#: field holds the profile's number, ``None`` meaning "no limit"
FROM_PROFILE = -1
_PROFILE_LIMITS = ("logs_max_range", "logs_max_results", "max_batch", "max_ws_batch",
                   "max_subscriptions")
_DAY_S = 86_400.0
#: the node's own bound where the profile documents none (no provider's number is known):
#: 100,000 subscriptions on one connection took 72 MB and ~400 ms a block
_OWN_BOUNDS = {"max_subscriptions": 1000}


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """JSON-RPC behaviour, with the limits real providers apply.

    ``profile`` names a :data:`simulator.providers.PROFILES` entry (geth, alchemy, infura,
    quicknode, public): its ``eth_getLogs`` range/result limits and texts, batch and
    subscription limits. A limit given here overrides the profile's number (the profile's
    text and range rule stay); ``None`` after construction = no limit.
    """

    client_version: str = "bor/v2.0.1-stable/linux-amd64/go1.23.4"
    profile: str = "alchemy"
    logs_max_range: int | None = FROM_PROFILE
    logs_max_results: int | None = FROM_PROFILE
    #: bytes of an HTTP request body and of a WebSocket message; None = geth v1.17's own
    #: (rpc/http.go defaultBodyLimit 5 MiB, rpc/websocket.go wsDefaultReadLimit 32 MiB)
    max_frame_bytes: int | None = None
    max_json_depth: int = 64  # nesting of a request body; deeper -> -32700 / HTTP 400
    max_batch: int | None = FROM_PROFILE  # more -> -32600 "batch too large" (geth's text)
    max_ws_batch: int | None = FROM_PROFILE  # the same over WebSocket (Alchemy: 20)
    # geth's BatchResponseMaxSize: past it the rest of a batch gets -32003 "response too large"
    max_response_bytes: int = 25_000_000
    # logs one body (a batch) may select, failed over-limit queries counted as
    # logs_max_results + 1: bounds the work of a batch of eth_getLogs the same way
    max_logs_per_request: int = 40_000
    # blocks outside a streamed chain's window one body's eth_getLogs may cover (each is
    # rebuilt: ~0.3 ms a default block, ~26 ms a busy one); past it the profile's range
    # error. 2,000: the monitor's largest backfill chunk
    max_rebuilt_blocks: int = 2000
    notify_buffer: int = 10000  # geth drops a connection whose buffer passes 10k
    #: bytes of notifications waiting for one WebSocket connection past which it is dropped
    #: (a client that does not read; geth's write deadline). Its requests are read only
    #: while its unsent answers are under a quarter of this: a client that sends and never
    #: reads holds one answer's worth, however many requests it sends.
    notify_buffer_bytes: int = 64 << 20
    # per connection: the profile's number, else 1,000; None = unlimited
    max_subscriptions: int | None = FROM_PROFILE
    # addresses and topic alternatives of all the logs subscriptions of one connection
    # (each filter also at most 1,000 of either, geth's bounds): 2,000 subscriptions of
    # 1,000 addresses took 185 MB and ~1.2 s a block. The monitor holds ~500 a connection
    max_filter_values: int = 20_000
    finality_depth: int = 16  # 'safe'/'finalized' lag behind 'latest' by this many blocks
    #: seconds an HTTP client has to send a request's headers, then its body (geth's
    #: ReadTimeout, 30 s), and that an idle keep-alive connection is kept: one byte every
    #: 5 s held a connection for hours
    http_read_timeout_s: float = 30.0
    #: seconds a keep-alive connection is kept idle between two requests (geth's
    #: IdleTimeout, 120 s, beside its 30 s ReadTimeout and ReadHeaderTimeout): a client
    #: that asks every 30-120 s reuses its connection, as on a node. It was the read
    #: timeout: a new TCP connection for most of a monitor's syncs, ~0.3 ms of CPU each
    http_idle_timeout_s: float = 120.0
    #: open connections (HTTP and WebSocket) past which a new one is answered 503 and
    #: closed; None = three quarters of the process's file-descriptor limit, so the node
    #: runs out of connections before it runs out of descriptors
    max_connections: int | None = None
    #: seconds a WebSocket connection may go without the node writing to it before the
    #: node pings it; a client that does not answer the ping (pong) within as many
    #: seconds is closed (geth v1.17 rpc/websocket.go wsPingInterval and wsPongTimeout,
    #: 30 s each); None = no pings
    ws_ping_interval_s: float | None = 30.0
    #: a block's ``logs`` notifications go out before its ``newHeads`` one. geth gives
    #: either order (its filter system's event loop selects between the chain and the
    #: logs events, and each subscription writes from its own goroutine): a client must
    #: take both. False: the order the connection's subscriptions were made in
    logs_before_heads: bool = False

    def __post_init__(self) -> None:
        chosen = PROFILES.get(self.profile)
        if chosen is None:
            raise SettingsError(f"profile: unknown provider profile {self.profile!r} "
                                f"(known: {', '.join(sorted(PROFILES))})")
        for name in _PROFILE_LIMITS:
            if getattr(self, name) == FROM_PROFILE:
                value = getattr(chosen, name)
                object.__setattr__(self, name, _OWN_BOUNDS.get(name) if value is None
                                   else value)
        for name in ("max_json_depth", "max_response_bytes",
                     "max_logs_per_request", "max_rebuilt_blocks", "max_filter_values",
                     "notify_buffer", "notify_buffer_bytes", *_PROFILE_LIMITS):
            value = getattr(self, name)
            if value is None and name in _PROFILE_LIMITS:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.max_frame_bytes is not None and (
                isinstance(self.max_frame_bytes, bool)
                or not isinstance(self.max_frame_bytes, int) or self.max_frame_bytes < 1):
            raise SettingsError(f"max_frame_bytes: expected an integer >= 1, got "
                                f"{self.max_frame_bytes!r}")
        if self.max_connections is not None and (
                isinstance(self.max_connections, bool)
                or not isinstance(self.max_connections, int) or self.max_connections < 1):
            raise SettingsError(f"max_connections: expected an integer >= 1, got "
                                f"{self.max_connections!r}")
        if not isinstance(self.logs_before_heads, bool):
            raise SettingsError(f"logs_before_heads: expected true or false, got "
                                f"{self.logs_before_heads!r}")
        for name in ("http_read_timeout_s", "http_idle_timeout_s", "ws_ping_interval_s"):
            timeout = getattr(self, name)
            if timeout is None and name == "ws_ping_interval_s":
                continue
            if isinstance(timeout, bool) or not (isinstance(timeout, (int, float))
                                                 and 0 < timeout <= _DAY_S):
                raise SettingsError(f"{name}: expected seconds in (0, {_DAY_S:g}], "
                                    f"got {timeout!r}")

    @property
    def http_body_limit(self) -> int:
        """Bytes of an HTTP request body: ``max_frame_bytes``, else geth's 5 MiB."""
        return GETH_HTTP_BODY_LIMIT if self.max_frame_bytes is None else self.max_frame_bytes

    @property
    def ws_read_limit(self) -> int:
        """Bytes of a WebSocket message: ``max_frame_bytes``, else geth's 32 MiB."""
        return GETH_WS_READ_LIMIT if self.max_frame_bytes is None else self.max_frame_bytes


#: the explorer's index lag: a day at most, a median of at least a millisecond (the draw is
#: log-normal: a p95 many orders above the median overflowed it)
MAX_LAG_S = 86_400.0
MIN_LAG_MEDIAN_S = 0.001


@dataclass(frozen=True, slots=True)
class LagSettings:
    """Explorer index lag: lognormal with this median and 95th percentile (simulated s)."""

    median_s: float = 4.0
    p95_s: float = 10.0
    min_s: float = 0.5
    max_s: float = 60.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("median_s", "p95_s", "min_s", "max_s"):
            value = getattr(self, name)
            # inf made NaN lags; 1e300 overflowed the draw
            if not (math.isfinite(value) and value <= MAX_LAG_S):
                raise SettingsError(f"{name}: expected seconds up to {MAX_LAG_S:g}, got "
                                    f"{value!r}")
        if not MIN_LAG_MEDIAN_S <= self.median_s <= self.p95_s:
            raise SettingsError(f"need {MIN_LAG_MEDIAN_S:g} <= median_s <= p95_s")
        if not 0 <= self.min_s <= self.max_s:
            raise SettingsError("need 0 <= min_s <= max_s")


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Everything ``serve`` needs besides the recording."""

    node: NodeSettings = field(default_factory=NodeSettings)
    lag: LagSettings = field(default_factory=LagSettings)
    explorer: dict[str, Any] = field(default_factory=dict)
    faults: tuple[dict[str, Any], ...] = ()
    chain_id: int = 137
    #: the first blocks of the recording served as already-published history (a real node
    #: has every block before "now": look-backs at start-up, confirmation depths, the first
    #: replayed block's parent); the replay starts with the block after them. At least one
    #: block is always replayed. ``[chain] history_blocks`` / ``serve --history-blocks``;
    #: None = not set: ``serve`` then uses :data:`SERVE_HISTORY_BLOCKS`, the library 0.
    history_blocks: int | None = None
    #: blocks a streamed chain (``serve --profile``, ``serve --recording``) keeps in memory
    #: behind its head (``[chain] window_blocks`` / ``serve --window``); None =
    #: :data:`DEFAULT_WINDOW_BLOCKS`. An in-memory recording keeps every block anyway.
    window_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.window_blocks is not None and (
                isinstance(self.window_blocks, bool) or not isinstance(self.window_blocks, int)
                or self.window_blocks < 1):
            raise SettingsError(f"chain.window_blocks: expected an integer >= 1, got "
                                f"{self.window_blocks!r}")
        if self.history_blocks is None:
            return
        if isinstance(self.history_blocks, bool) or not isinstance(self.history_blocks, int) \
                or self.history_blocks < 0:
            raise SettingsError(f"chain.history_blocks: expected an integer >= 0, got "
                                f"{self.history_blocks!r}")


def _build(cls: Any, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: expected a table")
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise SettingsError(f"{where}.{key}: unknown setting (known: {', '.join(names)})")
    defaults = cls()
    for key, value in table.items():
        want = getattr(defaults, key)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              if isinstance(want, (int, float)) and not isinstance(want, bool)
              else want is None or isinstance(value, type(want)))
        if not ok:
            raise SettingsError(f"{where}.{key}: expected {type(want).__name__}, "
                                f"got {value!r}")
    try:
        return cls(**table)
    except SettingsError as exc:
        raise SettingsError(f"{where}: {exc}") from None


# docs/contracts.md "Simulator config" names -> (section, field) of this module
_CONTRACT_KEYS = {
    "chain": {"index_lag_median_s": ("lag", "median_s"), "index_lag_p95_s": ("lag", "p95_s"),
              "seed": ("lag", "seed")},
    "rpc": {"get_logs_max_range": ("node", "logs_max_range"),
            "get_logs_max_results": ("node", "logs_max_results")},
}


def settings_from_dict(data: dict[str, Any], where: str = "config") -> SimSettings:
    """Build :class:`SimSettings` from a parsed TOML document.

    Takes this module's sections (``[node]``, ``[lag]``) and the contract's names
    (``[chain] index_lag_*``, ``[rpc] get_logs_*``) alike.
    """
    known = ("node", "lag", "chain", "rpc", "explorer", "faults", "chain_id")
    for key in data:
        if key not in known:
            raise SettingsError(f"{where}: unknown section {key!r} (known: {', '.join(known)})")
    tables: dict[str, dict[str, Any]] = {"node": {}, "lag": {}}
    history: Any = None
    window: Any = None
    for section in ("node", "lag"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise SettingsError(f"{where}.{section}: expected a table")
        tables[section].update(table)
    for section, names in _CONTRACT_KEYS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise SettingsError(f"{where}.{section}: expected a table")
        for key, value in table.items():
            if section == "chain" and key == "history_blocks":
                history = value
                continue
            if section == "chain" and key == "window_blocks":
                window = value
                continue
            if key in names:
                target, name = names[key]
            elif section == "rpc":
                target, name = "node", key  # the node's own names work under [rpc] too
            else:
                raise SettingsError(f"{where}.{section}.{key}: unknown setting "
                                    f"(known: {', '.join(names)})")
            tables[target][name] = value
    faults = data.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
        raise SettingsError(f"{where}: [[faults]] must be an array of tables")
    explorer = data.get("explorer", {})
    if not isinstance(explorer, dict):
        raise SettingsError(f"{where}.explorer: expected a table")
    from simulator.explorer import explorer_settings_from

    try:  # checked now, not when the server starts (built again there with its speed)
        explorer_settings_from(explorer)
    except ValueError as exc:
        raise SettingsError(f"{where}.{exc}") from None
    chain_id = data.get("chain_id", 137)
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 1 <= chain_id < 2**63:
        raise SettingsError(f"{where}.chain_id: expected a positive integer, got {chain_id!r}")
    return SimSettings(
        node=_build(NodeSettings, tables["node"], f"{where}.node"),
        lag=_build(LagSettings, tables["lag"], f"{where}.lag"),
        explorer=dict(explorer),
        faults=tuple(faults),
        chain_id=chain_id,
        history_blocks=history,
        window_blocks=window,
    )


def load_config(path: str | Path) -> SimSettings:
    """Read a TOML config. Raises :class:`SettingsError` naming the file and field."""
    import tomllib  # only with --config: not on every serve start-up (~10 ms)

    path = Path(path)
    try:
        if is_special(path):  # a FIFO: the open would wait for a writer
            raise SettingsError(f"{path}: not a regular file")
        data = tomllib.loads(read_small_text(path, CONFIG_BYTES))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such config file") from None
    except OSError as exc:  # a directory, no permission, too large, not UTF-8
        raise SettingsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib has no depth limit: [[[[...]]]] was a traceback
        raise SettingsError(f"{path}: not valid TOML (nested too deep)") from None
    return settings_from_dict(data, str(path))
