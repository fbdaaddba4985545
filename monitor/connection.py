"""The WebSocket connection's decisions, without I/O. Time is always an argument.

Pieces, each usable alone (the asyncio shell in :mod:`monitor.websocket_manager` wires
them):

* :class:`ConnState` + :data:`TRANSITIONS` - one table ``(event, state) -> state``;
  :class:`StateMachine` applies it, raises :class:`~monitor.errors.IllegalTransition` on a
  missing entry and returns a :class:`Transition` (with its cause) for every change.
* :func:`reconnect_delays` - the backoff policy, a plain generator: ``initial``,
  ``initial*factor``, ... capped at ``maximum``, each shortened by up to ``jitter`` share
  drawn from a seeded :class:`random.Random` (so delays never exceed ``maximum``).
* :class:`ReconnectPolicy` - backoff + attempt counting: the backoff is reset only after a
  connection stayed up ``backoff_reset_after`` seconds; a server's ``Retry-After`` (a
  handshake refused with 429/503) lengthens a delay, up to ``backoff_max``; ``attempts``
  counts consecutive failed connection attempts (reset when a connection opens) and FAILED
  comes after ``max_reconnect_attempts`` of them (0 = never).
* :class:`Heartbeat` - when a ping is due, when a pong is overdue.
* :class:`Watchdog` - "stale" when no new head arrived for ``staleness_blocks *
  block_interval`` seconds while connected, even if pings succeed.
* :class:`StateTimer` - time spent in each state, from the transitions and ``now``.

Every interval in :class:`WsSettings` is in *simulated* seconds; the cores divide by
``speed`` and work in clock seconds (what the shell sleeps). The fields the monitor's
:class:`monitor.config.Settings` also has carry its names and take its defaults (one name
and one default per setting); :meth:`WsSettings.from_settings` passes them through.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from monitor.config import Settings
from monitor.errors import ConfigError, IllegalTransition
from polyvocab.policies import retry_delays

__all__ = [
    "TRANSITIONS",
    "ConnEvent",
    "ConnState",
    "Heartbeat",
    "HeartbeatAction",
    "ReconnectPolicy",
    "StateMachine",
    "StateTimer",
    "Transition",
    "Watchdog",
    "WsSettings",
    "reconnect_delays",
]

MiB = 1024 * 1024


def _default(name: str) -> Any:
    """The monitor's default for setting ``name`` (the one place it is written)."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


@dataclass(frozen=True, slots=True)
class WsSettings:
    """WebSocket manager settings. Intervals are simulated seconds (divided by ``speed``).

    Fields named like a :class:`monitor.config.Settings` field mean the same and default to
    its default (:func:`_default`); :meth:`from_settings` copies them by name.
    ``staleness_blocks * block_interval`` is the watchdog limit; ``staleness_blocks=0``
    turns the watchdog off (tests; the monitor's setting must be > 0).
    ``max_reconnect_attempts=0`` retries for ever. ``seed`` seeds the jitter (the
    monitor's: the endpoint and the shard, so clients dropped together do not retry
    together).
    ``alert_window``: a repeated alert kind within this many seconds is suppressed.
    ``min_timeout`` (clock seconds, not scaled) is a floor under the scaled open and
    request timeouts, since processing time is not compressed by ``speed``.
    """

    heartbeat_interval: float = _default("heartbeat_interval")
    heartbeat_timeout: float = _default("heartbeat_timeout")
    backoff_initial: float = _default("backoff_initial")
    backoff_max: float = _default("backoff_max")
    backoff_factor: float = 2.0
    backoff_jitter: float = _default("backoff_jitter")
    backoff_reset_after: float = _default("backoff_reset_after")
    max_reconnect_attempts: int = _default("max_reconnect_attempts")
    staleness_blocks: int = _default("staleness_blocks")
    block_interval: float = _default("block_interval")
    open_timeout: float = 10.0
    max_message_bytes: int = 16 * MiB
    speed: float = 1.0
    seed: int | str = 0
    alert_window: float = 300.0
    min_timeout: float = 0.25  # clock seconds: floor for scaled timeouts (work is not sped up)

    def __post_init__(self) -> None:
        positive = ("heartbeat_interval", "heartbeat_timeout", "backoff_initial",
                    "backoff_max", "backoff_factor", "block_interval", "open_timeout", "speed")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"WsSettings.{name} must be > 0, got {getattr(self, name)!r}")
        if self.backoff_factor < 1:
            raise ConfigError(f"WsSettings.backoff_factor must be >= 1, got {self.backoff_factor}")
        if self.backoff_max < self.backoff_initial:
            raise ConfigError("WsSettings.backoff_max must be >= backoff_initial")
        if not 0 <= self.backoff_jitter < 1:
            raise ConfigError(
                f"WsSettings.backoff_jitter must be in [0, 1), got {self.backoff_jitter}")
        for name in ("backoff_reset_after", "alert_window", "min_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"WsSettings.{name} must be >= 0")
        for name in ("max_reconnect_attempts", "staleness_blocks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"WsSettings.{name} must be >= 0")
        if self.max_message_bytes < 1024:
            raise ConfigError("WsSettings.max_message_bytes must be >= 1024")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WsSettings:
        """The manager's settings from the monitor's: every field both have, by its one
        name; ``overrides`` (``seed=...``) for the manager-only fields."""
        shared = {f.name: getattr(settings, f.name) for f in fields(cls)
                  if f.name in Settings.model_fields}
        return cls(**(shared | overrides))

    def real(self, simulated_s: float) -> float:
        """Clock seconds for an interval of ``simulated_s`` simulated seconds."""
        return simulated_s / self.speed

    @property
    def staleness_s(self) -> float:
        """The watchdog limit in simulated seconds (0 = off)."""
        return self.staleness_blocks * self.block_interval


class ConnState(enum.Enum):
    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"
    FAILED = "FAILED"


class ConnEvent(enum.Enum):
    START = "start"  # the owner asked to connect
    OPENED = "opened"  # handshake done and every subscription re-made
    ATTEMPT_FAILED = "attempt_failed"  # a connection attempt did not open
    LOST = "lost"  # an open connection broke (close, error, ping timeout, stale)
    GIVE_UP = "give_up"  # max attempts reached
    STOP = "stop"  # the owner asked to stop


S, E = ConnState, ConnEvent

#: The one transition table. CONNECTING is the first attempt after START; RECONNECTING
#: covers waiting for the backoff and every later attempt.
TRANSITIONS: dict[tuple[ConnEvent, ConnState], ConnState] = {
    (E.START, S.DISCONNECTED): S.CONNECTING,
    (E.START, S.FAILED): S.CONNECTING,
    (E.OPENED, S.CONNECTING): S.CONNECTED,
    (E.OPENED, S.RECONNECTING): S.CONNECTED,
    (E.ATTEMPT_FAILED, S.CONNECTING): S.RECONNECTING,
    (E.ATTEMPT_FAILED, S.RECONNECTING): S.RECONNECTING,
    (E.LOST, S.CONNECTED): S.RECONNECTING,
    (E.GIVE_UP, S.CONNECTING): S.FAILED,
    (E.GIVE_UP, S.RECONNECTING): S.FAILED,
    (E.STOP, S.DISCONNECTED): S.DISCONNECTED,
    (E.STOP, S.CONNECTING): S.DISCONNECTED,
    (E.STOP, S.CONNECTED): S.DISCONNECTED,
    (E.STOP, S.RECONNECTING): S.DISCONNECTED,
    (E.STOP, S.FAILED): S.DISCONNECTED,
}
del S, E


@dataclass(frozen=True, slots=True)
class Transition:
    """One application of the table. ``changed`` is False for a self-loop."""

    event: ConnEvent
    from_state: ConnState
    to_state: ConnState
    cause: str
    at: float

    @property
    def changed(self) -> bool:
        return self.from_state is not self.to_state

    def to_row(self, conn: str) -> dict[str, str]:
        """The ``state`` history row fields (docs/contracts.md)."""
        return {"conn": conn, "from": self.from_state.value, "to": self.to_state.value,
                "cause": self.cause}


#: state changes a :class:`StateMachine` keeps in ``history`` (the most recent; the
#: history file has every one as a ``state`` row)
HISTORY_KEPT = 1000


class StateMachine:
    """Applies :data:`TRANSITIONS`. Keeps the last ``keep`` transitions that changed the
    state (every one was kept: ~20 a simulated hour of the soak, for as long as the
    process ran)."""

    def __init__(self, initial: ConnState = ConnState.DISCONNECTED, *, now: float = 0.0,
                 keep: int = HISTORY_KEPT) -> None:
        self.state = initial
        self.since = now
        self.history: deque[Transition] = deque(maxlen=keep)

    def fire(self, event: ConnEvent, now: float, cause: str) -> Transition:
        """Move on ``event``; raise :class:`IllegalTransition` if the table has no entry."""
        try:
            to = TRANSITIONS[(event, self.state)]
        except KeyError:
            raise IllegalTransition(
                f"no transition for event {event.value!r} in state {self.state.value}"
            ) from None
        t = Transition(event, self.state, to, cause, now)
        if t.changed:
            self.state = to
            self.since = now
            self.history.append(t)
        return t

    def can(self, event: ConnEvent) -> bool:
        return (event, self.state) in TRANSITIONS


def reconnect_delays(
    initial: float = 1.0,
    maximum: float = 60.0,
    factor: float = 2.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Backoff delays: ``initial * factor**k`` capped at ``maximum``, minus up to ``jitter``.

    Each delay lies in ``[base * (1 - jitter), base]`` where ``base`` is the capped
    exponential, so no delay ever exceeds ``maximum``. Infinite.
    """
    return retry_delays(initial, maximum, factor, jitter=jitter,
                        rng=rng if rng is not None else random.Random(0))


class ReconnectPolicy:
    """Backoff delays and attempt counting for one connection, in clock seconds."""

    def __init__(self, settings: WsSettings) -> None:
        self._s = settings
        self._rng = random.Random(settings.seed)
        self._delays = self._fresh()
        self.attempts = 0  # consecutive failed attempts since the last open
        self.total_attempts = 0
        self._opened_at: float | None = None

    def _fresh(self) -> Iterator[float]:
        s = self._s
        return reconnect_delays(s.backoff_initial, s.backoff_max, s.backoff_factor,
                                s.backoff_jitter,
                                self._rng)

    def opened(self, now: float) -> None:
        """A connection opened: the failed-attempt count starts again."""
        self.attempts = 0
        self._opened_at = now

    def lost(self, now: float) -> None:
        """An open connection broke. If it had been healthy long enough, reset the backoff."""
        if self._opened_at is not None and now - self._opened_at >= self._s.real(
            self._s.backoff_reset_after
        ):
            self._delays = self._fresh()
        self._opened_at = None

    def attempt_failed(self) -> bool:
        """Count a failed attempt. True when max attempts is reached (go FAILED)."""
        self.attempts += 1
        self.total_attempts += 1
        return (self._s.max_reconnect_attempts > 0
                and self.attempts >= self._s.max_reconnect_attempts)

    def attempt_refused(self) -> None:
        """Count an attempt whose key the provider refused (HTTP 401/403), or that it
        refused for a spent quota: in the total,
        not toward ``max_reconnect_attempts`` (a refused key is retried every
        ``backoff_max`` for as long as it takes), and an outage's count starts again
        after it (the provider answered: an ordinary failure after it is a new one)."""
        self.attempts = 0
        self.total_attempts += 1

    def next_delay(self, asked: float | None = None) -> float:
        """Clock seconds to wait before the next attempt: the backoff's, or longer when
        the server ``asked`` (simulated seconds: a ``Retry-After`` on a refused handshake)
        for longer, never past ``backoff_max``."""
        delay = next(self._delays)
        if asked is not None:
            delay = max(delay, min(asked, self._s.backoff_max))
        return self._s.real(delay)

    def reset(self) -> None:
        self._delays = self._fresh()
        self.attempts = 0
        self._opened_at = None


class HeartbeatAction(enum.Enum):
    NONE = "none"
    SEND_PING = "send_ping"
    TIMEOUT = "timeout"


class Heartbeat:
    """Ping every ``interval``; a pong missing ``timeout`` after its ping is a failure."""

    def __init__(self, settings: WsSettings) -> None:
        self.interval = settings.real(settings.heartbeat_interval)
        self.timeout = max(settings.real(settings.heartbeat_timeout), settings.min_timeout)
        self._last_ping_due_from = 0.0
        self._ping_sent_at: float | None = None

    def connected(self, now: float) -> None:
        self._last_ping_due_from = now
        self._ping_sent_at = None

    def ping_sent(self, now: float) -> None:
        self._ping_sent_at = now

    def pong_received(self, now: float) -> float | None:
        """Record a pong; return the round trip in clock seconds."""
        rtt = None if self._ping_sent_at is None else now - self._ping_sent_at
        self._ping_sent_at = None
        self._last_ping_due_from = now
        return rtt

    def decide(self, now: float) -> HeartbeatAction:
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at >= self.timeout:
                return HeartbeatAction.TIMEOUT
            return HeartbeatAction.NONE
        if now - self._last_ping_due_from >= self.interval:
            return HeartbeatAction.SEND_PING
        return HeartbeatAction.NONE

    def next_deadline(self) -> float:
        """The clock time of the next decision that is not NONE."""
        if self._ping_sent_at is not None:
            return self._ping_sent_at + self.timeout
        return self._last_ping_due_from + self.interval


class Watchdog:
    """No head for ``limit`` clock seconds while connected -> stale. ``limit=0`` = off."""

    def __init__(self, settings: WsSettings) -> None:
        self.limit = settings.real(settings.staleness_s)
        self.last_head: float | None = None

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def arm(self, now: float) -> None:
        """Start counting (on connect): the connection gets a full limit for its first head."""
        self.last_head = now

    def disarm(self) -> None:
        self.last_head = None

    def note_head(self, now: float) -> None:
        if self.last_head is not None:
            self.last_head = max(self.last_head, now)

    def is_stale(self, now: float, last_head: float | None = None) -> bool:
        """True when ``now - last_head >= limit`` (and the watchdog is on and armed)."""
        last = self.last_head if last_head is None else last_head
        return self.enabled and last is not None and now - last >= self.limit

    def deadline(self) -> float | None:
        if not self.enabled or self.last_head is None:
            return None
        return self.last_head + self.limit


@dataclass(slots=True)
class StateTimer:
    """Time spent in each state, from the transitions and ``now`` (clock seconds)."""

    state: ConnState = ConnState.DISCONNECTED
    since: float = 0.0
    totals: dict[ConnState, float] = field(default_factory=dict)

    def enter(self, state: ConnState, now: float) -> None:
        self.totals[self.state] = self.totals.get(self.state, 0.0) + max(0.0, now - self.since)
        self.state, self.since = state, now

    def snapshot(self, now: float) -> dict[str, float]:
        out = {s.value: self.totals.get(s, 0.0) for s in ConnState}
        out[self.state.value] += max(0.0, now - self.since)
        return out
