"""Monitor settings: pydantic-settings, from defaults < TOML file < environment < CLI flags.

The names are the ones in ``docs/contracts.md`` ("Monitor settings"). Environment
variables carry one prefix, ``MONITOR_`` + the upper-case name (``MONITOR_POLLING_INTERVAL``);
the team's names ``WEBSOCKET_ENABLED``, ``WEBSOCKET_URL``, ``FALLBACK_POLLING_INTERVAL``,
``BENCHMARK_ENABLED`` and the secrets' ``EXPLORER_API_KEY``, ``TELEGRAM_TOKEN``,
``TELEGRAM_CHAT_ID`` are kept as aliases (:data:`ENV_ALIASES`; the prefixed name wins).
Removed settings (:data:`DEPRECATED`: ``benchmark_enabled``, ``actionable_window``) are
still accepted from every source, ``BENCHMARK_ENABLED`` included, and ignored with one
warning, so an existing deployment keeps starting.
The simulation-only ``speed`` is never read from the environment (``SPEED=40`` in a shell
must not multiply the explorer rate limit against the real Etherscan), and ``speed != 1``
is refused against endpoints that are not on loopback. The TOML file uses the lower-case
names at top level (or under a ``[monitor]`` table), CLI flags override both.

Invalid settings raise :class:`monitor.errors.ConfigError` whose one-line message names
the setting; the CLI prints it and exits 2 (no traceback). Secrets
(``explorer_api_key``, ``telegram_token``) are :class:`pydantic.SecretStr`, registered
with :mod:`monitor.redact` the moment settings are loaded, and masked in
:meth:`Settings.redacted_dict` (the history ``start`` row).

Times are in simulated seconds; shells divide them by ``speed``
(:meth:`Settings.scaled`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from eth_hash.auto import keccak
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.errors import ConfigError
from monitor.private_files import check_regular
from monitor.providers import PROVIDER_DEFAULTS
from monitor.redact import mask, redact, register_secret, register_url_secrets
from polyvocab import DEFAULT_EXCHANGES
from polyvocab.bounds import MAX_QUANTITY
from polyvocab.redact import key_like_segment
from polyvocab.small_files import CONFIG_BYTES, read_small_text

__all__ = ["DEPRECATED", "ENV_ALIASES", "ENV_PREFIX", "SECRET_FIELDS", "ArgvSecret",
           "Settings", "argv_secrets", "explorer_needs_key", "load_settings",
           "normalise_address"]

log = logging.getLogger(__name__)


def explorer_needs_key(url: str | None) -> bool:
    """Whether the explorer at ``url`` refuses every call without a key: Etherscan V2
    (``*.etherscan.io``) answers each one NOTOK "Missing/Invalid API Key"."""
    try:
        host = (urlsplit(url or "").hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    return host == "etherscan.io" or host.endswith(".etherscan.io")


ENV_PREFIX = "MONITOR_"
#: setting -> the un-prefixed environment name kept as a documented alias
ENV_ALIASES = {
    "websocket_enabled": "WEBSOCKET_ENABLED", "websocket_url": "WEBSOCKET_URL",
    "fallback_polling_interval": "FALLBACK_POLLING_INTERVAL",
    "benchmark_enabled": "BENCHMARK_ENABLED", "explorer_api_key": "EXPLORER_API_KEY",
    "telegram_token": "TELEGRAM_TOKEN", "telegram_chat_id": "TELEGRAM_CHAT_ID",
}
#: removed settings, accepted and ignored (with a warning) -> why
DEPRECATED = {
    "benchmark_enabled": "nothing read it; timings are in /metrics and the history",
    "actionable_window": "the actionable window is the experiment's (scenario "
                         "actionable_window_s), the monitor never used it",
}
#: never read from the environment
NOT_FROM_ENV = frozenset({"speed"})

SECRET_FIELDS = ("explorer_api_key", "telegram_token")
#: settings that may be read from a file named by ``<NAME>_FILE`` (env) or ``<name>_file``
#: (TOML, ``--set``): keys, tokens, and provider URLs that carry a key in their path
FILE_SETTINGS = ("explorer_api_key", "telegram_token", "websocket_url", "rpc_url")
#: the smallest non-zero ``dedup_retention_blocks``: well past a backfill's overlap, the
#: deepest reorg a tracker follows and the reconnect re-check's window (128 blocks)
MIN_DEDUP_RETENTION_BLOCKS = 1024
#: blocks a poll reads again for trades the explorer indexed late: its index is usually
#: 4-20 s behind the chain's head (REFERENCE), a minute or more in an incident, and
#: ``module=proxy`` answers the head itself. 16 blocks (32 s) lost every trade of an
#: index a minute behind; 64 cover ~2 minutes of 2-s blocks, for no extra call (the rows
#: read again are dropped by the dedup)
DEFAULT_EXPLORER_OVERLAP_BLOCKS = 64
#: the shortest interval or timeout a setting takes (simulated seconds): 1e-7 was taken,
#: a ping flood or every request timed out, with no error at start
MIN_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class ArgvSecret:
    """A secret on the command line: ``flag`` (``--api-key``, ``--set telegram_token``),
    the setting it gives, and ``definite`` (a key or token flag; False: a URL that looks
    like it carries a key, a guess)."""

    flag: str
    setting: str
    definite: bool

    def instead(self) -> str:
        """Where the secret belongs: the environment or a file it names."""
        env = ENV_ALIASES.get(self.setting, ENV_PREFIX + self.setting.upper())
        return f"{env} or {self.setting.upper()}_FILE"

    def advice(self) -> str:
        what = "" if self.definite else " (it looks like it carries a key)"
        return (f"{self.flag} on the command line{what} is visible to every user in `ps`: "
                f"prefer {self.instead()}")


#: flag dest -> the setting of a URL that may carry a provider key
_URL_FLAGS = {"ws_url": "websocket_url", "rpc_url": "rpc_url", "explorer_url": "explorer_url",
              "telegram_api_url": "telegram_api_url"}


def argv_secrets(flags: Mapping[str, Any], sets: Iterable[str]) -> list[ArgvSecret]:
    """Every secret a command line carries, for ``run`` and ``pilot`` alike (``flags``:
    the parsed flags by dest; ``sets``: the ``--set NAME=VALUE`` items): the key and
    token flags (``--api-key``, ``--telegram-token``), ``--set`` of either, and URLs with
    a key-like path segment, a query value or a password (``register_url_secrets``' own
    test). ``run`` warned only for ``--api-key``; the pilot refused ``--api-key`` and
    took ``--telegram-token`` silently."""
    found: list[ArgvSecret] = []
    for dest, setting in (("api_key", "explorer_api_key"), ("telegram_token", "telegram_token")):
        if flags.get(dest) is not None:
            found.append(ArgvSecret("--" + dest.replace("_", "-"), setting, True))
    for dest, setting in _URL_FLAGS.items():
        if _url_has_key(flags.get(dest)):
            found.append(ArgvSecret("--" + dest.replace("_", "-"), setting, False))
    for item in sets:
        name, _, value = item.partition("=")
        # lower-cased as the settings read it: --set EXPLORER_API_KEY=... was taken as the
        # key, with neither run's warning nor the pilot's refusal
        name = name.strip().replace("-", "_").lower()
        if name in SECRET_FIELDS and value:
            found.append(ArgvSecret(f"--set {name}", name, True))
        elif name in _URL_FLAGS.values() and _url_has_key(value):
            found.append(ArgvSecret(f"--set {name}", name, False))
    return found


def _url_has_key(url: str | None) -> bool:
    """The parts :func:`register_url_secrets` would register: a key-like path segment,
    a query value of 8+ characters, a password or a user part (``wss://KEY@host``)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return any(key_like_segment(run) for run in re.findall(r"[A-Za-z0-9_-]+", url))
    return bool(password or user) or any(key_like_segment(seg) for seg in parts.path.split("/")) \
        or any(len(v) >= 8 for _, v in parse_qsl(parts.query))


_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


def normalise_address(value: str, what: str = "address") -> str:
    """A 20-byte hex address, lower-case with ``0x``; ValueError naming ``what`` otherwise.

    Only ASCII hex digits (``int(body, 16)`` took ``_``, a sign, spaces and other scripts'
    digits: ``0xaaaa_bbbb...`` was watched as it was, an address no log ever names). A
    mixed-case address must carry its EIP-55 checksum, as web3.py and ethers require: a
    bad one is a mistyped address, all lower or all upper case has no checksum."""
    text = str(value).strip()
    body = text[2:] if text[:2].lower() == "0x" else ""
    if len(body) != 40:
        raise ValueError(f"{what} {_shown(text)} is not a 20-byte hex address (0x + 40 hex "
                         "digits)")
    if not _HEX40.fullmatch(body):
        raise ValueError(f"{what} {text!r} is not hex")
    lower = body.lower()
    if body != lower and body != body.upper() and body != _eip55(lower):
        raise ValueError(f"{what} {text!r} has a bad EIP-55 checksum (its mixed case says "
                         "a character is mistyped; all lower case skips the check)")
    return "0x" + lower


def _shown(text: str) -> str:
    """``text`` as an error shows it: quoted when it is an address mistyped (``0x`` and at
    most 50 characters); else only its length. The wrong file given as the wallets file
    (the explorer key's: it was printed whole to the terminal and the journal) or a 50 MB
    line is not repeated."""
    if text[:2].lower() == "0x" and len(text) <= 50:
        return repr(text)
    return f"(a value of {len(text):,} characters{'' if text[:2].lower() == '0x' else ', no 0x'})"


_HIGH_NIBBLE = frozenset("89abcdef")


def _eip55(lower: str) -> str:
    """The EIP-55 mixed-case form of 40 lower-case hex digits (~7 us: 100,000 checksummed
    wallets take 0.7 s more at start; lower-case ones are not hashed)."""
    digest = keccak(lower.encode("ascii")).hex()
    return "".join([c.upper() if d in _HIGH_NIBBLE else c
                    for c, d in zip(lower, digest[:40], strict=True)])


def _split_list(value: Any) -> Any:
    """Accept a list, or a string with comma/whitespace separated items (env, CLI)."""
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return value


_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _check_url(value: str | None, schemes: tuple[str, ...], name: str) -> str | None:
    """``value`` without the whitespace around it (a CRLF env file's ``\r``), or None
    when empty. A space or a control character inside is refused: urlsplit and yarl
    silently dropped a tab or a newline (``wss://h\tx`` connected to ``hx``) and took a
    space or a NUL in the host, found only as a DNS failure at every reconnect."""
    value = value.strip() if value is not None else None
    if value is None or value == "":
        return None
    bad = _SPACE_OR_CONTROL.search(value)
    if bad is not None:
        raise ValueError(f"{name} has a space or a control character (at character "
                         f"{bad.start() + 1}): {redact(value)!r}")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{name} must be a {'/'.join(schemes)} URL, got {redact(value)!r}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(f"{name} has a port that is not a number in 0-65535: "
                         f"{redact(value)!r}") from None
    if not parts.hostname:
        raise ValueError(f"{name} has no host: {redact(value)!r}")
    return value


class _TomlSource(PydanticBaseSettingsSource):
    """Settings from a TOML file: top-level keys, or the ``[monitor]`` table if present."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = dict(data)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _EnvSource(PydanticBaseSettingsSource):
    """Settings from the environment: ``MONITOR_<NAME>``, else the alias of
    :data:`ENV_ALIASES`; never ``speed``. Values are strings, validated as any input."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._env = {str(k).upper(): v for k, v in env.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            if name in NOT_FROM_ENV:
                continue
            key = ENV_PREFIX + name.upper()
            alias = ENV_ALIASES.get(name)
            if key in self._env:
                out[name] = self._env[key]
            elif alias is not None and alias in self._env:
                out[name] = self._env[alias]
        return out


def _loopback(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "") if url else ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")

#: the settings that are seconds: none longer than a day (a heartbeat, a timeout or a
#: fall-back that far away is a typo, and in effect "never")
DURATION_SETTINGS = (
    "fallback_polling_interval", "polling_interval", "heartbeat_interval",
    "heartbeat_timeout", "backoff_initial", "backoff_max", "backoff_reset_after",
    "block_interval", "fallback_after", "reconcile_interval", "explorer_timeout",
    "rpc_timeout", "outbox_retry_interval")
MAX_DURATION_S = 86_400.0
MAX_RATE = 1_000_000.0  # requests a second, or the speed-up of a simulated run
#: values one filter may hold in its address list or in one topic position: geth's
#: ``maxAddresses`` / ``maxSubTopics`` (eth/filters/api.go), so bor's, every Polygon node's
#: ("exceed max addresses" / "exceed max topics"); the simulator refuses past it too
MAX_FILTER_VALUES = 1000


class Settings(BaseSettings):
    """Every knob of the monitor. Defaults are the production values of issue 3."""

    model_config = SettingsConfigDict(
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
        frozen=True,
        # TOML and the environment can say inf and nan: an infinite heartbeat interval,
        # RPC timeout or fall-back delay means "never", a silent failure
        allow_inf_nan=False,
    )

    toml_data: ClassVar[dict[str, Any]] = {}
    env_data: ClassVar[dict[str, str] | None] = None

    mode: Literal["websocket", "polling"] = Field("websocket",
        description="`websocket` (new) or `polling` (today's behaviour, the baseline)")
    websocket_enabled: bool = Field(True,
        description="master switch: `false` sends every wallet back to polling (the rollback)")
    websocket_url: str | None = Field(None,
        description="provider `wss://` endpoint for `eth_subscribe` (required in websocket mode)")
    rpc_url: str | None = Field(None,
        description="provider HTTP JSON-RPC endpoint for backfill (`eth_getLogs`) and checks")
    explorer_url: str = Field("https://api.etherscan.io/v2/api",
        description="Etherscan V2 API endpoint (polling and fallback)")
    explorer_api_key: SecretStr | None = Field(None,
        description="explorer API key (secret: redacted in logs and histories)")
    chain_id: int = Field(137, gt=0,
        description="chain id sent to the explorer, and checked against the node's by the "
                    "pilot (137 = Polygon PoS)")
    wallets: Annotated[list[str], NoDecode] = Field(default_factory=list,
        description="wallets to watch (proxy wallet addresses; a mixed-case one must "
                    "carry its EIP-55 checksum, as web3.py and ethers require)")
    exchanges: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_EXCHANGES),
        description="exchange contracts whose `OrderFilled` logs count (V1 + V2, both NegRisk)")
    fallback_polling_interval: float = Field(15.0, ge=MIN_SECONDS,
        description="seconds between explorer polls while the feed is down")
    polling_interval: float = Field(15.0, ge=MIN_SECONDS,
        description="seconds between explorer polls in `polling` mode (the baseline)")
    heartbeat_interval: float = Field(30.0, ge=MIN_SECONDS,
        description="seconds between heartbeats on an idle WebSocket")
    heartbeat_timeout: float = Field(10.0, ge=MIN_SECONDS,
        description="seconds without a heartbeat answer before the connection counts as lost")
    backoff_initial: float = Field(1.0, ge=MIN_SECONDS,
                                   description="first reconnect delay (seconds)")
    backoff_max: float = Field(60.0, gt=0, description="longest reconnect delay (seconds)")
    backoff_jitter: float = Field(0.2, ge=0, lt=1,
        description="random share added to each delay (0-1)")
    backoff_reset_after: float = Field(30.0, gt=0,
        description="a connection up this long (simulated seconds) resets the backoff to "
                    "`backoff_initial`")
    max_reconnect_attempts: int = Field(0, ge=0,
        description="attempts before giving up and alerting (0 = never give up; "
                    "handshakes refused for the key or a spent quota do not count: "
                    "they retry every backoff_max)")
    staleness_blocks: int = Field(10, gt=0,
        description="blocks without a new head before a silent subscription counts as stale")
    head_lag_blocks: int = Field(3, ge=0,
        description="while heads are late, the node's HTTP head this many blocks ahead of the "
                    "feed means a dead subscription: reconnect at once (0 = off)")
    block_interval: float = Field(2.0, ge=0.1, le=60,
        description="expected block interval in seconds (2.0; 1.75 since PIP-86)")
    fallback_after: float = Field(30.0, gt=0,
        description="seconds unhealthy before polling takes over")
    websocket_share: float = Field(100.0, ge=0, le=100,
        description="rollout: percent of wallets on WebSocket (0-100)")
    provider_profile: Literal["geth", "alchemy", "infura", "quicknode", "public"] | None = Field(
        None, description="provider whose limits set the defaults of max_wallets_per_filter, "
                          "backfill_chunk_blocks and firehose_above_wallets and cap a filter's "
                          "maker topics (the simulator's [node] profile names; none = 500, "
                          "1000 and 2000)")
    max_wallets_per_filter: int = Field(500, gt=0,
        description="wallets per `logs` subscription filter (at most 1000: geth/bor "
                    "refuse more values in one topic position)")
    subscription_mode: Literal["auto", "filtered", "firehose"] = Field("auto",
        description="`filtered`: one `logs` filter of maker topics per shard of "
                    "`max_wallets_per_filter` wallets; `firehose`: one subscription to every "
                    "`OrderFilled` of the exchanges, makers filtered locally; `auto`: the "
                    "firehose past `firehose_above_wallets` WebSocket wallets")
    firehose_above_wallets: int = Field(2000, ge=0,
        description="`auto` takes the firehose past this many WebSocket wallets (the "
                    "provider profile's number unless given)")
    firehose_chunk_blocks: int = Field(8, gt=0,
        description="blocks per `eth_getLogs` request in firehose mode (no maker list: every "
                    "`OrderFilled` of the range, ~230 per busy block)")
    backfill_chunk_blocks: int = Field(1000, gt=0,
        description="blocks per `eth_getLogs` request when filling a gap")
    reconcile_interval: float = Field(30.0, ge=0,
        description="seconds between `eth_getLogs` sweeps from the cursor to the head over JSON-"
                    "RPC HTTP, which re-fetch anything a live notification lost (0 = heads move "
                    "the cursor; a sweep only after interruptions and once every 64 blocks: a "
                    "logs subscription silent while heads flow loses nothing but is found, and "
                    "its trades delivered, up to 64 blocks late; the first sweep after a restart "
                    "fetches the 128 blocks below the stored cursor, so a notification lost in "
                    "the last <= 64 blocks before a stop is delivered after the restart)")
    explorer_rate_per_s: float = Field(3.0, gt=0,
        description="client-side explorer rate limit (free tier: 3/s)")
    explorer_page_size: int = Field(1000, gt=0, le=10000,
        description="records per explorer page (at most 1,000 since 2026-07)")
    explorer_overlap_blocks: int = Field(DEFAULT_EXPLORER_OVERLAP_BLOCKS, ge=0,
        description="blocks re-read at each poll so late-indexed trades are not skipped "
                    "and trades reorged away are retracted (the cursor also never passes the "
                    "explorer's index head, so an index further behind than this loses "
                    "nothing)")
    explorer_timeout: float = Field(10.0, ge=MIN_SECONDS,
        description="seconds before an explorer request times out")
    rpc_timeout: float = Field(10.0, ge=MIN_SECONDS,
        description="seconds before a JSON-RPC request times out")
    rpc_rate_per_s: float = Field(25.0, gt=0, description="client-side JSON-RPC HTTP rate limit")
    rpc_batch_size: int = Field(20, ge=1, le=100,
        description="calls in one JSON-RPC HTTP batch where the monitor asks many blocks at "
                    "once (the reconnect and restart checks' block hashes); each call still "
                    "counts against `rpc_rate_per_s`; 1 = no batches. Each batch the node "
                    "refuses halves it from then on (a provider's limit), down to 1")
    start_block: int | None = Field(None, ge=0, le=MAX_QUANTITY,
        description="first block to watch (none = the block after the chain head at the "
                    "first start, stored before anything is delivered, so a process killed "
                    "before its first head resumes from there; or the stored cursor)")
    telegram_token: SecretStr | None = Field(None,
        description="Telegram bot token for alerts (secret)")
    telegram_chat_id: str | None = Field(None, description="Telegram chat that receives alerts")
    telegram_api_url: str = Field("https://api.telegram.org",
        description="Telegram Bot API base URL")
    state_db: str = Field("monitor.db",
        description="SQLite file with the cursor and outbox (survives restarts)")
    detections_path: str | None = Field(None,
        description="JSON-lines sink for detections (experiments)")
    history_path: str | None = Field(None, description="JSON-lines history of what the monitor saw")
    detections_fsync: bool = Field(False, description="fsync the detections file after each line")
    tls_verify: bool = Field(True,
        description="check TLS certificates of `wss://` and `https://` endpoints (false only "
                    "against a test node)")
    latency_stages: bool = Field(False,
        description="stamp each live trade's path (frame received, parsed, queued, decoded, "
                    "deduplicated, persisted, delivered) into its detection row's `stages` "
                    "(the latency budget; a few clock reads per frame)")
    state_synchronous: Literal["FULL", "NORMAL"] = Field("FULL",
        description="SQLite `synchronous` of the state DB (`FULL` survives power loss)")
    dedup_capacity: int = Field(200_000, ge=1, le=100_000_000,
        description="trade ids kept in memory, most recent first (older ones are looked up "
                    "in the state DB), and the detections file's window of ids it will not "
                    "write twice: memory stays flat past it")
    dedup_retention_blocks: int = Field(10_000, ge=0, le=10**9,
        description="trade ids of blocks this far below their wallet's cursor are dropped "
                    "from the state DB (no backfill goes back there; ~5.6 h of 2-s blocks, "
                    "a margin for a provider that replays old blocks), so the file stops "
                    "growing with every trade; 0 keeps every id; at least 1024 otherwise")
    outbox_retry_interval: float = Field(5.0, ge=MIN_SECONDS,
        description="seconds between re-sends of what a failed sink left in the outbox")
    live_queue_max: int = Field(100_000, gt=0,
        description="live logs waiting for delivery; past it they are dropped and a sync re-"
                    "fetches them")
    head_jump_slack: int = Field(64, ge=1,
        description="a head further ahead than elapsed time allows by this many blocks is ignored")
    speed: float = Field(1.0, gt=0,
        description="time compression for experiments (1.0 in production)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO",
        description="DEBUG / INFO / WARNING / ERROR")
    metrics_host: str = Field("127.0.0.1",
        description="address of the `/metrics`, `/healthz`, `/readyz` server (loopback by default)")
    metrics_port: int | None = Field(None, ge=0, le=65535,
        description="port of that server (none or 0: no server)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = getattr(settings_cls, "toml_data", None) or {}
        env = getattr(settings_cls, "env_data", None)
        return (init_settings, _EnvSource(settings_cls, os.environ if env is None else env),
                _TomlSource(settings_cls, toml))

    @field_validator("wallets", "exchanges", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("wallets")
    @classmethod
    def _wallets(cls, value: list[str]) -> list[str]:
        # first occurrence kept, in order (a dict: 100,000 wallets in linear time)
        return list(dict.fromkeys(normalise_address(w, "wallet") for w in value))

    @field_validator("exchanges")
    @classmethod
    def _exchanges(cls, value: list[str]) -> list[str]:
        out = list(dict.fromkeys(normalise_address(a, "exchange") for a in value))
        if not out:
            raise ValueError("at least one exchange address is needed")
        if len(out) > MAX_FILTER_VALUES:
            raise ValueError(f"at most {MAX_FILTER_VALUES} exchange addresses: a node "
                             "refuses a filter of more ('exceed max addresses')")
        return out

    @field_validator("max_wallets_per_filter")
    @classmethod
    def _filter_a_node_takes(cls, v: int) -> int:
        # each wallet is one value of the filter's maker topic: a filter of 1,001 was
        # refused at every subscribe and every sync, and no trade came from the feed
        if v > MAX_FILTER_VALUES:
            raise ValueError(f"must be at most {MAX_FILTER_VALUES}: a node refuses a filter "
                             "with more values in one topic position ('exceed max topics'); "
                             "more wallets take more filters, or the firehose")
        return v

    @field_validator(*DURATION_SETTINGS)
    @classmethod
    def _at_most_a_day(cls, v: float) -> float:
        if v > MAX_DURATION_S:  # 1e300 s is "never" too
            raise ValueError(f"must be at most {MAX_DURATION_S:g} seconds (a day)")
        return v

    @field_validator("explorer_rate_per_s", "rpc_rate_per_s", "speed")
    @classmethod
    def _at_most_a_million(cls, v: float) -> float:
        if v > MAX_RATE:
            raise ValueError(f"must be at most {MAX_RATE:g}")
        return v

    @field_validator("dedup_retention_blocks")
    @classmethod
    def _retention_past_every_overlap(cls, v: int) -> int:
        if 0 < v < MIN_DEDUP_RETENTION_BLOCKS:
            raise ValueError(f"must be 0 (keep every id) or at least "
                             f"{MIN_DEDUP_RETENTION_BLOCKS} blocks: a backfill's overlap, "
                             "a reorg and the reconnect re-check all look back below the "
                             "cursor")
        return v

    @field_validator("state_db", "metrics_host")
    @classmethod
    def _not_empty(cls, v: str, info: ValidationInfo) -> str:
        # an empty state_db was the current folder ("state_db  is a directory"); an empty
        # metrics_host listened on every interface, without a word
        if not v.strip():
            raise ValueError("must not be empty" + (
                " (0.0.0.0 listens on every interface)" if info.field_name == "metrics_host"
                else ""))
        return v

    @field_validator("websocket_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        register_url_secrets(value)
        return _check_url(value, ("ws", "wss"), "websocket_url")

    @field_validator("rpc_url", "explorer_url", "telegram_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        register_url_secrets(value)
        return _check_url(value, ("http", "https"), "URL")

    @field_validator("explorer_api_key", "telegram_token", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, str):
            register_secret(value)
            if not value:
                return None
        return value

    @field_validator("telegram_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # it goes into the request's path (/bot<token>/sendMessage): a "/", "?", "#" or a
        # space there would send the alert somewhere else; the message never repeats it
        if value is not None and not _BOT_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("not a Telegram bot token (digits, a colon, then letters, "
                             "digits, _ or -)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.provider_profile is not None:  # the profile's numbers unless given
            chosen = PROVIDER_DEFAULTS[self.provider_profile]
            for name in ("max_wallets_per_filter", "backfill_chunk_blocks",
                         "firehose_above_wallets"):
                if name not in self.model_fields_set:
                    self.__dict__[name] = getattr(chosen, name)
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        if self.speed != 1.0:
            used: list[tuple[str, str | None]] = [("explorer_url", self.explorer_url)]
            if self.use_websocket and self.websocket_share > 0:
                used += [("websocket_url", self.websocket_url), ("rpc_url", self.rpc_url)]
            far = [n for n, u in used if u and not _loopback(u)]
            if far:
                raise ValueError(f"speed {self.speed:g} is for a local simulator only: "
                                 f"{', '.join(far)} is not on loopback (use speed = 1)")
        return self

    # -- derived -----------------------------------------------------------------------

    @property
    def use_websocket(self) -> bool:
        """WebSocket mode is on (``mode = websocket`` and ``websocket_enabled``)."""
        return self.mode == "websocket" and self.websocket_enabled

    def scaled(self, seconds: float) -> float:
        """A simulated-time interval in wall seconds at this ``speed``."""
        return seconds / self.speed

    def api_key(self) -> str:
        return self.explorer_api_key.get_secret_value() if self.explorer_api_key else ""

    def redacted_dict(self) -> dict[str, Any]:
        """Every setting as JSON-able values, secrets masked (for the history ``start`` row)."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if name in SECRET_FIELDS:
                secret = getattr(self, name)
                out[name] = None if secret is None else mask(secret.get_secret_value())
            elif name == "wallets":
                out[name] = len(value)
            else:
                out[name] = redact(value) if isinstance(value, str) else value
        return out


def _format_error(exc: ValidationError) -> str:
    """One line naming the setting(s). An error of the whole model (no setting: the
    ``speed`` check) reads "invalid settings: ...", not "invalid setting settings: ..."."""
    parts = []
    for err in exc.errors()[:3]:
        # each part redacted alone: the whole line read "explorer_api_key: *** should be
        # a valid string" and "api_key: *** setting" (a name, then ": ", looks like a key
        # and its value); the values a message quotes are still masked, secrets only
        loc = ".".join(str(p) or "''" for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting"
        parts.append(f"{redact(loc)}: {redact(msg)}" if loc else redact(msg))
    more = len(exc.errors()) - 3
    text = "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
    named = any(err.get("loc") for err in exc.errors()[:3])
    return ("invalid setting " if named else "invalid settings: ") + text


def _read_regular(path: str | Path) -> str:
    """A config or secret file's text; a FIFO (or a device) is refused, not waited on:
    opening one blocks until something writes to it."""
    check_regular(path)
    return read_small_text(path, CONFIG_BYTES)


def _read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = tomllib.loads(_read_regular(p))
    except FileNotFoundError:
        raise ConfigError(f"config: file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {p} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib has no depth limit: [[[[...]]]] was a traceback
        raise ConfigError(f"config: {p} is not valid TOML: nested too deep") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {p}: {exc.strerror}") from None
    if isinstance(data.get("monitor"), dict):
        data = data["monitor"]
    return {str(k).lower().replace("-", "_"): v for k, v in data.items()}


def _secrets_from_files(overrides: dict[str, Any], toml: dict[str, Any],
                        env: dict[str, str]) -> None:
    """``<name>_file`` (CLI ``--set``, TOML) or ``<NAME>_FILE`` (environment): read the
    setting from that file (first line, stripped), so secrets need not be in argv or in the
    environment of every child process. The file fills its own layer, so the documented
    order holds for every secret: flags > environment > config file (a TOML
    ``explorer_api_key_file`` beat ``EXPLORER_API_KEY``). In a layer, a value given
    directly beats that layer's file. Only the winning file is read."""
    for name in FILE_SETTINGS:
        key = f"{name}_file"
        flag_path, toml_path = overrides.pop(key, None), toml.pop(key, None)
        env_path = _env_get(env, key)
        if name in overrides:
            continue
        if flag_path is not None:
            overrides[name] = _file_setting(key, flag_path, name)
        elif _env_has(env, name):
            continue
        elif env_path is not None:
            env[ENV_PREFIX + name.upper()] = _file_setting(key, env_path, name)
        elif toml_path is not None and name not in toml:
            toml[name] = _file_setting(key, toml_path, name)


def _env_has(env: Mapping[str, str], name: str) -> bool:
    """The environment sets ``name`` directly (as :class:`_EnvSource` reads it), not
    empty."""
    upper = {str(k).upper(): v for k, v in env.items()}
    alias = ENV_ALIASES.get(name)
    return bool(upper.get(ENV_PREFIX + name.upper())) or bool(alias and upper.get(alias))


def _file_setting(key: str, path: Any, name: str) -> str:
    """The first line of the file a ``<name>_file`` names, registered as a secret."""
    try:
        text = _read_regular(str(path))
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    if name in SECRET_FIELDS:
        register_secret(value)
    else:
        register_url_secrets(value)
    return value


def _drop_deprecated(overrides: dict[str, Any], toml: dict[str, Any],
                     env: Mapping[str, str]) -> None:
    """Take the :data:`DEPRECATED` names out of every source, warning once per name."""
    for name, why in DEPRECATED.items():
        found = [src for src, present in (
            ("flag", overrides.pop(name, None) is not None),
            ("config file", toml.pop(name, None) is not None),
            ("environment", _env_get(env, name) is not None
             or ENV_ALIASES.get(name, "").lower() in {k.lower() for k in env}),
        ) if present]
        if found:
            log.warning("setting %s (%s) is deprecated and ignored: %s",
                        name, ", ".join(found), why)


def _env_get(env: Mapping[str, str], key: str) -> str | None:
    """``MONITOR_<KEY>`` or the bare ``<KEY>`` (``EXPLORER_API_KEY_FILE``), prefixed first."""
    found = None
    for k, v in env.items():
        if k.lower() == (ENV_PREFIX.lower() + key):
            return v
        if k.lower() == key:
            found = v
    return found


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from defaults < ``config_file`` < environment < ``cli`` overrides.

    ``environ`` replaces ``os.environ`` (tests). Raises :class:`ConfigError` naming the
    setting when anything is invalid.
    """
    toml = _read_toml(config_file) if config_file is not None else {}
    overrides = {k: v for k, v in (cli or {}).items() if v is not None}
    env = dict(os.environ if environ is None else environ)  # a copy: files add to it
    _drop_deprecated(overrides, toml, env)
    _secrets_from_files(overrides, toml, env)
    cls = type("Settings", (Settings,), {"toml_data": toml, "env_data": env,
                                         "__module__": __name__})
    _warn_unread_files(env)
    try:
        settings = cls(**overrides)
    except ValidationError as exc:  # redacted part by part, not again as a whole
        raise ConfigError(_format_error(exc), redacted=True) from None
    if (settings.telegram_token is None) != (settings.telegram_chat_id is None):
        have, lack = (("telegram_token", "telegram_chat_id")
                      if settings.telegram_chat_id is None
                      else ("telegram_chat_id", "telegram_token"))
        log.warning("%s is set but %s is not: Telegram alerts are off, alerts go to the log "
                    "only", have, lack)
    return settings


def _warn_unread_files(env: Mapping[str, str]) -> None:
    """``MONITOR_<NAME>_FILE`` for a setting that is not read from a file (only
    :data:`FILE_SETTINGS` are) is said, once: ``MONITOR_EXPLORER_URL_FILE`` was ignored
    without a word and the explorer stayed Etherscan."""
    for key in env:
        upper = str(key).upper()
        if not (upper.startswith(ENV_PREFIX.upper()) and upper.endswith("_FILE")):
            continue
        name = upper[len(ENV_PREFIX):-len("_FILE")].lower()
        if name in Settings.model_fields and name not in FILE_SETTINGS:
            log.warning("%s is not read: only %s come from a file; set %s%s itself", key,
                        ", ".join(FILE_SETTINGS), ENV_PREFIX, name.upper())
