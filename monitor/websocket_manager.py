"""The WebSocket manager: one JSON-RPC WebSocket connection kept alive for its owner.

An asyncio shell over ``websockets`` (``websockets.asyncio.client.connect``); every
decision comes from the sans-I/O cores in :mod:`monitor.connection` (state table,
backoff, heartbeat, watchdog) and :mod:`monitor.alerts` (alert policy).

What it does:

* connects in the background (:meth:`WebSocketManager.start` returns at once), with
  states DISCONNECTED -> CONNECTING -> CONNECTED, RECONNECTING on any failure, FAILED
  after ``max_reconnect_attempts`` consecutive failed attempts (cause
  ``max_attempts: <cause>``); every state change is a ``state`` history row with its cause;
* reconnects with exponential backoff and jitter on any failure: connection refused,
  handshake rejected (e.g. HTTP 5xx; a 429/503's ``Retry-After`` is waited, up to
  ``backoff_max``), an ``eth_subscribe`` answered with a rate limit (cause
  ``rate_limited``; Infura's ``data.backoff_seconds`` is waited as a ``Retry-After``; a
  quota spent, Alchemy's "Monthly capacity limit exceeded": cause ``quota_exhausted``,
  a ``quota_exhausted`` alert once an episode, attempts every ``backoff_max`` unless it
  named a wait, never counted toward ``max_reconnect_attempts``: a spent quota retries
  for as long as it takes, the fallback polling meanwhile),
  close frames (1001/1011/1013/...), abrupt close, ping timeout, stale subscription;
* a handshake refused with 401/403 (a revoked or wrong key) is no outage: FAILED at once
  (cause ``key_refused: handshake_401``), one ``failed`` alert saying the provider
  refused the key, and an attempt every ``backoff_max`` (each from FAILED through
  CONNECTING, no new alert) until a handshake succeeds (``recovered``): a key restored
  comes back without a restart. :attr:`WebSocketManager.key_refused` holds the status
  meanwhile (``monitor run`` exits 2 when the first connection of all is refused);
* keeps subscriptions under stable ids (``sub-1``, ...) and re-makes every one of them
  after each reconnect before going CONNECTED; routes ``eth_subscription`` notifications
  by the node's subscription id to the caller's callback. A notification of an id not
  known yet while an ``eth_subscribe`` is unanswered is held (up to
  :data:`MAX_EARLY_NOTIFICATIONS` and :data:`MAX_EARLY_BYTES` a connection; past them
  the connection is dropped, cause ``early_overflow``, and re-made) and delivered once the
  answer names its subscription: a provider's proxy may send the first ones before the
  answer;
* heartbeat: its own WebSocket pings every ``heartbeat_interval`` with a
  ``heartbeat_timeout`` (the library's keepalive is off so ``speed`` applies);
* watchdog on new heads. **Choice:** the manager watches the heads itself: every
  notification of a subscription whose first param is ``"newHeads"`` and whose result
  looks like a header (an object with ``number``, ``hash``, ``parentHash`` strings; its
  ``number`` may be a JSON integer, which the owner reads as well) counts as a head; any
  other (null, a number, a list) is bad input (``bad_head``), never a head.
  The watchdog is armed while such a subscription exists (or once :meth:`note_head` has
  been called by an owner that learns of heads another way). No head for
  ``staleness_blocks * block_interval`` while CONNECTED -> reconnect with cause
  ``"stale"``, even if pings succeed;
* alerts (one ``disconnected`` + one ``recovered`` per outage, ``failed`` always), sent in
  the background so a slow Telegram never delays a reconnect;
* counts everything in :attr:`WebSocketManager.metrics`; malformed frames (not JSON,
  binary garbage, JSON that is neither a response nor a notification, unknown response or
  subscription ids) are counted under ``errors`` by kind and logged, never raised. An
  error answer without a request id (``"id": null``) fails the requests waiting when it
  can be told whose it is (see :meth:`WebSocketManager._unaddressed_error`).

Callbacks (``on_message``, ``on_connected``, ``on_disconnected``) may be plain functions
or coroutine functions. Notification callbacks run in the reader, in arrival order, so
they should be quick (hand work to a queue). An exception in a callback is logged and
counted (``errors["callback"]``), never kills the connection.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import inspect
import itertools
import json
import logging
import ssl
import termios
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode

from monitor.alerts import Alert, Alerter, AlertPolicy, seconds_text
from monitor.bounds import nesting_ok
from monitor.clock import Clock
from monitor.connection import (
    ConnEvent,
    ConnState,
    Heartbeat,
    HeartbeatAction,
    ReconnectPolicy,
    StateMachine,
    Transition,
    Watchdog,
    WsSettings,
)
from monitor.errors import (
    BadResponse,
    ConnectionLost,
    MonitorError,
    NotConnected,
    RateLimited,
    RpcError,
    Timeout,
)
from monitor.history import History
from monitor.metrics import WsMetrics
from monitor.redact import redact
from monitor.stages import FrameStamps
from polyvocab.bounds import brief, values_ok
from polyvocab.errors import QuotaExhausted
from polyvocab.jsonrpc_http import classify_http, error_of, rate_limit_of
from polyvocab.policies import (
    is_key_refused_status,
    parse_retry_after,
)

__all__ = [
    "MAX_EARLY_BYTES",
    "MAX_EARLY_NOTIFICATIONS",
    "MAX_FRAME_VALUES",
    "MAX_RETIRED_IDS",
    "ConnState",
    "OnConnected",
    "OnDisconnected",
    "OnMessage",
    "SessionFactory",
    "WebSocketManager",
    "WsSettings",
    "classify_close",
    "classify_connect_error",
    "handshake_limit",
    "refused_key_status",
    "retry_after",
]

log = logging.getLogger("monitor.ws")

OnMessage = Callable[[dict[str, Any]], Awaitable[None] | None]
OnConnected = Callable[[bool], Awaitable[None] | None]
OnDisconnected = Callable[[str], Awaitable[None] | None]
#: ``factory(url, open_timeout=..., max_size=...)`` -> awaitable of an open connection
#: with ``send``, ``recv``, ``ping``, ``close`` (a ``websockets`` ClientConnection).
SessionFactory = Callable[..., Awaitable[Any]]

_NO_PROXY: Any = None


_MAX_BATCH = 10_000  # items in one frame (a JSON-RPC batch answer); more is hostile
#: JSON values in one frame (:func:`polyvocab.bounds.values_ok`, before parsing): a
#: notification has ~15. A frame of ``max_message_bytes`` (16 MiB) made of ``[],`` (5 M
#: empty lists) took ~360 MB and 0.8-3 s of the event loop to parse, every frame: the
#: other connections, the HTTP sync and the explorer fallback stalled with it
MAX_FRAME_VALUES = 200_000
#: notifications held for a subscription whose ``eth_subscribe`` answer has not come yet,
#: per connection (a node may send the first ones before the answer; past this, dropped)
MAX_EARLY_NOTIFICATIONS = 10_000
#: bytes of frames those held notifications came in, per connection (a node may send
#: frames of up to ``max_message_bytes`` each: 10,000 of them were 160 GB). Past either
#: bound the connection is dropped (``early_overflow``) and re-made: a notification
#: dropped in place could be a trade that no sync asks for again
MAX_EARLY_BYTES = 32 << 20
#: retired subscription ids remembered per connection (:attr:`_Link.retired`): a late
#: notification comes within moments of its ``eth_unsubscribe``, not after a thousand more
MAX_RETIRED_IDS = 1024
_CLOSE_TIMEOUT_S = 2.0
#: bytes this side wrote that the peer has not taken (in the transport, past the kernel's
#: buffers). Ours are a few requests and pings; the library also answers every ping of the
#: peer with a pong, whether or not it reads them: a peer flooding pings and reading
#: nothing grew this process by 20 MB a second. Past this, the connection is dropped
#: (:class:`_BoundedConnection`).
MAX_UNSENT_BYTES = 1 << 20
#: pings the peer may send: a burst of this many, then this many a second. A node pings
#: every few seconds at most; the library answers each one, so a peer that reads its
#: pongs can keep this side busy answering (15-20 % of a core measured) with nothing to
#: show for it. Past the budget the connection is dropped (``peer_ping_flood``).
PING_BURST = 100
PINGS_PER_S = 20.0
#: bytes one read of the socket takes at most (asyncio's is 256 KiB: ``recv`` on a plain
#: socket, the ciphertext buffer of a TLS one). The frames of one read are what the live
#: delivery finds queued when it next runs, so a backlog (a firehose, a stall caught up)
#: went to the store in batches of ~230 notifications, each one fsync'd commit; 1 MiB
#: makes them ~900 (WsShard takes up to 1,000): fewer commits and fewer pages written a
#: trade (tests/monitor/test_ws_read_chunk.py). A read of that much is parsed in one
#: callback (~10 ms of the loop for 900 frames); a quiet feed's reads are as small as before
READ_CHUNK_BYTES = 1 << 20




def insecure_factory(url: str, *, open_timeout: float, max_size: int) -> Awaitable[Any]:
    """Like the default, but a ``wss://`` certificate is NOT verified (``tls_verify =
    false``; for a self-signed test node only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _connect(url, open_timeout=open_timeout, max_size=max_size,
                    ssl=ctx if url.startswith("wss:") else None)


def _default_factory(url: str, *, open_timeout: float, max_size: int) -> Awaitable[Any]:
    """``websockets`` connect: certificates verified for ``wss://`` (the library default)."""
    return _connect(url, open_timeout=open_timeout, max_size=max_size)


class _NoRedirects(ws_connect):
    """``websockets`` connect, without following redirects: the library follows up to ten,
    to other hosts too, and a provider's URL carries its key. A 3xx is the handshake's
    failure (``handshake_302``), as the HTTP clients refuse theirs."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _connect(url: str, *, open_timeout: float, max_size: int, **extra: Any) -> Awaitable[Any]:
    return _NoRedirects(
        url,
        open_timeout=open_timeout,
        ping_interval=None,  # our own heartbeat, under the state machine and speed
        ping_timeout=None,
        # how long a close this side began (for a protocol error: a message past max_size)
        # waits for the peer's; ours on stop or reconnect abort at once. A peer that never
        # answers held the connection half-closed for open_timeout (10 s) before
        close_timeout=_CLOSE_TIMEOUT_S,
        max_size=max_size,
        max_queue=4096,
        proxy=_NO_PROXY,
        create_connection=_BoundedConnection,
        **extra,
    )


class _BoundedConnection(ClientConnection):
    """The library's connection, with two ends it leaves open:

    * dropped when the peer stops taking what this side writes: past
      :data:`MAX_UNSENT_BYTES` unsent, checked as each chunk of the peer's bytes arrives (a
      ping flood is such chunks); ``not_reading`` then says why it closed;
    * a close the library began on the peer's data (1009 for a message past ``max_size``,
      1002 for a bad frame) ends by its close timeout even if this side sends nothing
      more: the library enforces that deadline only at its next send, so a peer that never
      answered held the connection half-closed until the heartbeat or the watchdog;
    * dropped when the peer pings past :data:`PING_BURST` and :data:`PINGS_PER_S`
      (``ping_flood``): each ping costs this side a pong, read or not."""

    not_reading = False
    ping_flood = False
    _closer: asyncio.TimerHandle | None = None
    _ping_tokens = float(PING_BURST)
    _ping_at = 0.0

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING and not self.ping_flood:
            now = self.loop.time()
            self._ping_tokens = min(float(PING_BURST),
                                    self._ping_tokens + (now - self._ping_at) * PINGS_PER_S)
            self._ping_at = now
            if self._ping_tokens < 1.0:
                self.ping_flood = True
                self.transport.abort()
                return
            self._ping_tokens -= 1.0
        super().process_event(event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        widen_reads(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        transport = self.transport
        if not self.not_reading and transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            self.not_reading = True
            transport.abort()
        elif self._closer is None and self.close_deadline is not None:
            self._closer = self.loop.call_at(self.close_deadline, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closer is not None:
            self._closer.cancel()
        super().connection_lost(exc)


def widen_reads(transport: Any, chunk: int = READ_CHUNK_BYTES) -> None:
    """Let ``transport`` read up to ``chunk`` bytes at a time (:data:`READ_CHUNK_BYTES`):
    asyncio's selector transport (``max_size``, its ``recv`` size) and, for TLS, the SSL
    protocol under it (``max_size``, its ciphertext buffer). Their attributes, where they
    are ints; another loop's transports (none of these) are left as they are."""
    readers: tuple[Any, ...] = (transport, getattr(transport, "_ssl_protocol", None))
    for reader in readers:
        size = getattr(reader, "max_size", None)
        if type(size) is int and size < chunk:
            reader.max_size = chunk


def _unread(ws: Any) -> int:
    """Frames the connection parsed that nobody has read yet, plus the bytes waiting in
    its socket (``FIONREAD``; a TLS socket's are still encrypted, a backlog all the same).
    0 where either cannot be told."""
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    waiting = len(frames) if frames is not None and hasattr(frames, "__len__") else 0
    transport = getattr(ws, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        buf = array.array("i", [0])
        with contextlib.suppress(OSError, ValueError):
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
            waiting += buf[0]
    return waiting


def classify_close(exc: BaseException) -> str:
    """The cause recorded for a connection that broke with ``exc``."""
    if isinstance(exc, ConnectionClosed):
        if exc.rcvd is None:
            # this side closed for a protocol error (1009 a message past max_size, 1002
            # a bad frame) and the peer never answered: say which
            if exc.sent is not None and exc.sent.code not in (1000, 1001):
                return f"sent_close_{exc.sent.code}"
            return "abrupt_close"
        return f"close_{exc.rcvd.code}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"error_{type(exc).__name__}"


class _OpenFailed(Exception):
    """The connection closed while the subscriptions were being re-made."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class _Unread:
    """The default of ``limit`` below: the refused handshake's body not read yet."""


_UNREAD = _Unread()


def retry_after(exc: BaseException, *, limit: RateLimited | _Unread | None = _UNREAD
                ) -> float | None:
    """Seconds a server that refused the handshake asked to wait (its ``Retry-After``,
    e.g. on a 429 or 503), or that answered an ``eth_subscribe`` with a rate limit asked
    for (Infura's ``data.backoff_seconds``); None if it did not say. ``limit``: what
    :func:`handshake_limit` already read of ``exc`` (the body is then not read again)."""
    if isinstance(exc, RateLimited):
        return exc.retry_after
    if not isinstance(exc, InvalidStatus):
        return None
    asked = parse_retry_after(exc.response.headers.get("Retry-After"))
    if asked is not None:
        return asked
    limited = handshake_limit(exc) if isinstance(limit, _Unread) else limit
    return limited.retry_after if limited is not None else None


def handshake_limit(exc: BaseException) -> RateLimited | None:
    """The rate limit (or spent quota: :class:`QuotaExhausted`) a handshake refused with
    429 says, read from its body as the HTTP client reads a 429 (:func:`polyvocab.
    jsonrpc_http.classify_http`): Infura's ``data.backoff_seconds``, Ankr's "retry in 10s",
    Alchemy's "Monthly capacity limit exceeded"; and the spent quota a 401/403 says in its
    body (Alchemy answers its monthly capacity with a 403 too, the key being good:
    :func:`polyvocab.policies.is_quota_exhausted`, read by the same classify_http); and a
    402 Payment Required whatever its body (dRPC's spent free tier). None for any other
    refusal."""
    if not isinstance(exc, InvalidStatus):
        return None
    status = exc.response.status_code
    if status not in (429, 402) and not is_key_refused_status(status):
        return None
    body = (exc.response.body or b"")[:64 * 1024].decode("utf-8", "replace")
    out = classify_http(status, body, {"Retry-After": exc.response.headers.get("Retry-After")
                                       or ""})
    return out if isinstance(out, RateLimited) else None


def refused_key_status(exc: BaseException, *,
                       limit: RateLimited | _Unread | None = _UNREAD) -> int | None:
    """The HTTP status when the server refused the handshake because of the key (401,
    403: :func:`polyvocab.policies.is_key_refused_status`), else None. A 403 whose body
    is a spent quota (:func:`handshake_limit`) is no refused key: the key is good, the
    plan is spent (another alert, another remedy). ``limit``: as :func:`retry_after`."""
    if not (isinstance(exc, InvalidStatus) and is_key_refused_status(exc.response.status_code)):
        return None
    limited = handshake_limit(exc) if isinstance(limit, _Unread) else limit
    return int(exc.response.status_code) if limited is None else None


def classify_connect_error(exc: BaseException) -> str:
    """The cause recorded for a connection attempt that failed with ``exc``."""
    if isinstance(exc, _OpenFailed):
        return exc.cause
    if isinstance(exc, InvalidStatus):
        return f"handshake_{exc.response.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "open_timeout"
    if isinstance(exc, InvalidHandshake):
        return "handshake_error"
    if isinstance(exc, ConnectionClosed):
        return classify_close(exc)
    if isinstance(exc, OSError):
        return "connect_error"
    if isinstance(exc, RpcError):
        return "subscribe_rejected"
    if isinstance(exc, QuotaExhausted):  # a month's or a day's quota spent
        return "quota_exhausted"
    if isinstance(exc, RateLimited):  # an eth_subscribe answered "slow down"
        return "rate_limited"
    if isinstance(exc, MonitorError):
        return type(exc).__name__.lower()
    return f"error_{type(exc).__name__}"


@dataclass(slots=True)
class _Sub:
    stable_id: str
    params: list[Any]
    on_message: OnMessage
    node_id: str | None = None
    #: a ``newHeads`` subscription (its params are the caller's copy, never changed):
    #: set once, not worked out again for every notification
    is_heads: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_heads = bool(self.params) and self.params[0] == "newHeads"


@dataclass(slots=True)
class _Pending:
    method: str
    future: asyncio.Future[Any]
    sub: _Sub | None = None  # an eth_subscribe: map the node id when the answer arrives
    conn_gen: int = 0


@dataclass(slots=True)
class _Link:
    """One open WebSocket connection and what belongs to it."""

    ws: Any
    gen: int
    reader: asyncio.Task[str] | None = None
    by_node: dict[str, _Sub] = field(default_factory=dict)
    #: node id -> (result, bytes) of notifications that came while an ``eth_subscribe``
    #: of this link was unanswered, for an id no subscription has yet (see
    #: ``_notification``); ``early_count`` and ``early_bytes`` are their totals
    early: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    early_count: int = 0
    early_bytes: int = 0
    #: node ids this side unsubscribed on this link (or whose subscribe answer came after
    #: the unsubscribe): their late notifications are ignored, neither unknown nor held as
    #: early. A node's subscription ids are of one connection: they go with the link (a
    #: set of the manager grew by every unsubscribe for the life of the process), oldest
    #: first past :data:`MAX_RETIRED_IDS`
    retired: dict[str, None] = field(default_factory=dict)

    def retire(self, node_id: str) -> None:
        self.retired.pop(node_id, None)
        self.retired[node_id] = None
        while len(self.retired) > MAX_RETIRED_IDS:
            del self.retired[next(iter(self.retired))]
    #: why this side dropped the connection (its reader returns it as the close cause)
    cause: str | None = None
    #: a ``newHeads`` notification held while frames parsed after it wait unread, with
    #: its frame's stamps (see ``WebSocketManager._notification``)
    held: tuple[_Sub, Any, FrameStamps | None] | None = None


def _buffered(ws: Any) -> bool:
    """Frames the connection parsed already wait for ``recv()`` (False where that
    cannot be told)."""
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    try:
        return frames is not None and len(frames) > 0
    except TypeError:
        return False


def _looks_like_header(result: Any) -> bool:
    """A ``newHeads`` notification's result that may be a header: an object whose
    ``number``, ``hash`` and ``parentHash`` are strings, or whose ``number`` is a JSON
    integer (cheap: the owner checks the values, and reads such a number as a head, as
    :func:`monitor.bounds.quantity` does: refused here, a feed delivering every head was
    called stale and re-made each watchdog limit). Only these feed the staleness
    watchdog."""
    if not isinstance(result, dict):
        return False
    number = result.get("number")
    return ((isinstance(number, str) or (type(number) is int and number >= 0))
            and isinstance(result.get("hash"), str)
            and isinstance(result.get("parentHash"), str))


async def _call(cb: Callable[..., Any], *args: Any) -> None:
    result = cb(*args)
    # None (a plain callback: the live queue's put_nowait) is never awaitable, and
    # isawaitable's ABC check cost ~1,000 instructions a notification
    if result is not None and inspect.isawaitable(result):
        await result


class WebSocketManager:
    """Keeps one JSON-RPC WebSocket to ``url`` up, with stable subscriptions.

    Use::

        mgr = WebSocketManager(url, settings=WsSettings(), clock=SystemClock(),
                               history=history, alerts=alerter, conn_id="ws0")
        mgr.on_connected.append(backfill)        # (reconnect: bool) after resubscribe
        mgr.on_disconnected.append(mark_unhealthy)  # (cause: str)
        heads = await mgr.subscribe(["newHeads"], on_head)
        logs = await mgr.subscribe(["logs", {"topics": [...]}], on_log)
        await mgr.start()
        ...
        await mgr.stop()

    ``subscribe`` may be called before or after ``start``. ``session_factory`` replaces
    ``websockets.asyncio.client.connect`` (same keyword arguments ``open_timeout``,
    ``max_size``) for tests or custom transports.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: WsSettings,
        clock: Clock,
        history: History,
        alerts: Alerter | None = None,
        conn_id: str = "ws0",
        session_factory: SessionFactory | None = None,
        stamp_frames: bool = False,
    ) -> None:
        """``stamp_frames``: read the clock when each frame is received and parsed, and
        expose it as :attr:`frame_stamps` to the notification callbacks (latency budget)."""
        self.url = url
        self.settings = settings
        self.conn_id = conn_id
        self._clock = clock
        self._history = history
        self._alerts = alerts
        self._factory: SessionFactory = session_factory or _default_factory
        now = clock.now()
        self._sm = StateMachine(ConnState.DISCONNECTED, now=now)
        self._policy = ReconnectPolicy(settings)
        self._heartbeat = Heartbeat(settings)
        self._watchdog = Watchdog(settings)
        self._alert_policy = AlertPolicy(conn=conn_id, window=settings.real(settings.alert_window),
                                         speed=settings.speed)
        self.metrics = WsMetrics(speed=settings.speed)
        self.metrics.start(now)
        #: callbacks ``(reconnect: bool)`` run after every (re)subscribe completed
        self.on_connected: list[OnConnected] = []
        #: callbacks ``(cause: str)`` run when the feed goes down or gives up
        self.on_disconnected: list[OnDisconnected] = []
        #: plain callbacks ``(transition)`` run at once on every state change (keep them
        #: quick: they run inside the connection loop)
        self.on_state: list[Callable[[Transition], None]] = []
        self._subs: dict[str, _Sub] = {}
        self._sub_seq = itertools.count(1)
        self._req_seq = itertools.count(1)
        self._gen_seq = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()  # alerts being sent
        self._bg_callbacks: set[asyncio.Task[Any]] = set()  # on_connected callbacks
        self._changed: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._ever_connected = False
        #: the HTTP status (401/403) of the handshakes refusing the key, from the first of
        #: them until one succeeds; None otherwise
        self.key_refused: int | None = None
        #: a spent quota was said (one ``quota_exhausted`` alert) since the last connection
        #: that opened: a month's quota refuses for days, and the alert came again every
        #: ``alert_window`` (~290 a day at 5 minutes) while the attempts went on
        self._quota_alerted = False
        self._forced: str | None = None  # cause given to force_reconnect()
        self.connected_at: float | None = None  # clock time the current connection opened
        self._outage_attempts = 0
        self._external_heads = False
        self.last_cause: str | None = None
        self.crashes = 0  # times the connection loop crashed and was restarted
        self.bad_frames: Counter[str] = Counter()  # malformed input by kind
        #: staleness checks that found frames waiting unread instead (the reader behind)
        self.reader_behind = 0
        self._behind_logged = False
        self._stamp = stamp_frames
        #: ``(recv_ns, parsed_ns)`` of the frame whose notifications are being handled:
        #: valid inside a notification callback (they run in the reader, in order); None
        #: unless ``stamp_frames``. See :mod:`monitor.stages`.
        self.frame_stamps: FrameStamps | None = None

    # ----------------------------------------------------------------- public API
    @property
    def state(self) -> ConnState:
        return self._sm.state

    @property
    def ever_connected(self) -> bool:
        """A connection has opened since the manager was made."""
        return self._ever_connected

    @property
    def running(self) -> bool:
        """The connection loop is alive (started, not stopped, not given up)."""
        return self._task is not None and not self._task.done()

    @property
    def transitions(self) -> list[Transition]:
        """Every state change so far (a copy)."""
        return list(self._sm.history)

    @property
    def subscriptions(self) -> dict[str, list[Any]]:
        """Stable id -> params of every live subscription."""
        return {s.stable_id: list(s.params) for s in self._subs.values()}

    async def start(self) -> None:
        """Begin connecting in the background; returns at once. Idempotent while running."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._policy.reset()
        self._fire(ConnEvent.START, "start")
        self._task = asyncio.create_task(self._run(), name=f"ws-manager-{self.conn_id}")

    async def stop(self) -> None:
        """Close the connection cleanly, cancel timers, flush pending alerts. Idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.ws.close(), self._timeout(self.settings.open_timeout))
        if task is not None:
            # a cancel can be lost: Python 3.11's asyncio.wait_for returns the result of
            # an awaitable that finished in the cancel's loop turn (a handshake or an
            # eth_subscribe answered just then), and the loop went on to serve the new
            # connection: stop() waited for it as long as it lived. Cancelled again until
            # it ends; the link it opened is dropped below
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._drop_link(ConnectionLost("manager stopped"))
        for cb_task in list(self._bg_callbacks):
            cb_task.cancel()
        if self._bg_callbacks:
            await asyncio.wait(set(self._bg_callbacks), timeout=5.0)
        if self._sm.can(ConnEvent.STOP):
            self._fire(ConnEvent.STOP, "stop")
        if self._bg:  # flush alerts (a down alert must not be lost on shutdown)
            await asyncio.wait(set(self._bg), timeout=5.0)

    async def wait_state(self, state: ConnState, timeout: float) -> bool:
        """Wait (clock seconds) until the state is ``state``; False on timeout."""
        return await self.wait_until(lambda: self.state is state, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` is true (clock seconds; False on timeout).

        Re-checked on every state change, failed attempt, message and pong: use it for
        predicates on the manager and what its callbacks record.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            ev = self._changed_event()
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    async def subscribe(self, params: list[Any], on_message: OnMessage) -> str:
        """Subscribe with ``eth_subscribe(*params)``; return a stable id (``sub-N``).

        ``on_message`` gets each notification's ``result`` (a header, a log). The
        subscription is re-made after every reconnect under the same stable id. If the
        connection is up, returns once the node acknowledged (unanswered within
        ``open_timeout``, or answered with a rate limit: the connection is re-made, the
        subscription with it); otherwise returns at once and the subscription is made on
        connect. Raises :class:`RpcError` if the node rejects the params (the
        subscription is then forgotten).
        """
        if not isinstance(params, list) or not params:
            raise ValueError("subscribe params must be a non-empty list, e.g. ['newHeads']")
        sub = _Sub(f"sub-{next(self._sub_seq)}", list(params), on_message)
        self._subs[sub.stable_id] = sub
        link = self._link
        if sub.is_heads and self.state is ConnState.CONNECTED and not self._heads_watched(sub):
            self._watchdog.arm(self._clock.now())
        if link is not None and self.state is ConnState.CONNECTED:
            try:
                await self._subscribe_on(link, sub)
            except RpcError:
                self._subs.pop(sub.stable_id, None)
                raise
            except (ConnectionLost, Timeout, RateLimited, BadResponse) as exc:
                log.info("[%s] %s will be made on reconnect (%s)", self.conn_id, sub.stable_id,
                         exc)
                if self._link is link and sub.node_id is None:
                    # unanswered on a connection that stays up: nothing else would ever
                    # reconnect it, and the subscription would never exist
                    self.force_reconnect(f"subscribe_timeout: {sub.stable_id}")
        return sub.stable_id

    async def unsubscribe(self, stable_id: str) -> None:
        """Forget a subscription; ``eth_unsubscribe`` it if the connection is up."""
        sub = self._subs.pop(stable_id, None)
        if sub is None:
            raise KeyError(f"no subscription {stable_id!r}")
        link = self._link
        node_id, sub.node_id = sub.node_id, None
        if link is None or node_id is None:
            return
        link.by_node.pop(node_id, None)
        link.retire(node_id)
        if self.state is ConnState.CONNECTED:
            try:
                await self._rpc(link, "eth_unsubscribe", [node_id],
                                self._timeout(self.settings.open_timeout))
            except MonitorError as exc:
                log.info("[%s] eth_unsubscribe %s failed: %s", self.conn_id, stable_id, exc)

    async def request(self, method: str, params: list[Any], timeout: float = 10.0) -> Any:
        """A JSON-RPC call over the socket; returns ``result``.

        Raises :class:`NotConnected` unless CONNECTED, :class:`Timeout` after ``timeout``
        clock seconds, :class:`RpcError` for an error answer (:class:`RateLimited` for a
        rate limit), :class:`ConnectionLost` if the connection breaks first. Counted as
        ``api_call`` kind ``rpc_ws``.
        """
        link = self._link
        if link is None or self.state is not ConnState.CONNECTED:
            raise NotConnected(f"[{self.conn_id}] {method}: not connected ({self.state.value})")
        return await self._rpc(link, method, params, timeout)

    def force_reconnect(self, cause: str) -> None:
        """End the current connection now and reconnect (e.g. the caller saw the node's
        head run ahead of the subscription). No-op unless CONNECTED."""
        if self.state is ConnState.CONNECTED:
            self._forced = cause
            self._notify()
            if self._wake is not None:
                self._wake.set()

    def note_head(self, now: float | None = None) -> None:
        """Tell the watchdog a new head was seen (for owners that learn heads elsewhere)."""
        self._external_heads = True
        self._watchdog.note_head(self._clock.now() if now is None else now)

    def metrics_dict(self) -> dict[str, Any]:
        """The metrics as a JSON-ready dict, for the ``stop`` row."""
        return self.metrics.to_dict(self._clock.now())

    # ----------------------------------------------------------------- internals
    def _timeout(self, simulated: float) -> float:
        """A scaled timeout with a floor: processing time is not compressed by speed."""
        return max(self.settings.real(simulated), self.settings.min_timeout)

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _heads_watched(self, exclude: _Sub | None = None) -> bool:
        return self._external_heads or any(
            s.is_heads for s in self._subs.values() if s is not exclude
        )

    def _fire(self, event: ConnEvent, cause: str) -> Transition:
        now = self._clock.now()
        t = self._sm.fire(event, now, cause)
        if t.changed:
            self.last_cause = cause
            self.metrics.state(t.to_state, now)
            self._history.record("state", **t.to_row(self.conn_id))
            log.info("[%s] %s -> %s (%s)", self.conn_id, t.from_state.value, t.to_state.value,
                     redact(cause))
            self._notify()
            for cb in self.on_state:
                cb(t)
        return t

    def _alert(self, alert: Alert | None) -> None:
        if alert is None:
            return
        self._history.record("alert", kind=alert.kind, text=alert.text)
        if self._alerts is None:
            log.warning("[%s] ALERT %s: %s", self.conn_id, alert.kind, redact(alert.text))
            return
        task = asyncio.create_task(self._send_alert(self._alerts, alert),
                                   name=f"ws-alert-{self.conn_id}")
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _send_alert(self, alerter: Alerter, alert: Alert) -> None:
        try:
            await alerter.send(alert.kind, alert.text)
        except Exception as exc:  # an Alerter must not raise; be safe anyway
            self.metrics.error("alert")
            log.warning("[%s] alert %s failed: %s", self.conn_id, alert.kind,
                        redact(f"{type(exc).__name__}: {exc}"))

    async def _callbacks(self, cbs: list[Any], *args: Any) -> None:
        for cb in list(cbs):
            try:
                await _call(cb, *args)
            except Exception as exc:
                self.metrics.error("callback")
                log.exception("[%s] callback %r failed: %s", self.conn_id, cb, redact(str(exc)))

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def _run(self) -> None:
        """The connection loop, supervised: an unexpected exception is logged, counted,
        written to the history, alerted, and the loop restarts after the backoff (the
        connection is dropped and re-made, subscriptions included)."""
        while True:
            try:
                await self._loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a hostile input we did not foresee
                if self._stopping:
                    return
                self.crashes += 1
                self.metrics.error("internal")
                reason = redact(f"{type(exc).__name__}: {exc}")[:300]
                log.error("[%s] connection loop crashed (%s); restarting", self.conn_id,
                          reason, exc_info=exc)
                self._history.record("task_crash", task=f"ws-manager-{self.conn_id}",
                                     error=type(exc).__name__, reason=reason,
                                     restarts=self.crashes)
                link = self._link
                if link is not None:
                    await self._close_link(link)
                now = self._clock.now()
                if self.state is ConnState.CONNECTED:
                    self._policy.lost(now)
                    self._fire(ConnEvent.LOST, "internal_error")
                    await self._callbacks(self.on_disconnected, "internal_error")
                self._alert(self._alert_policy.disconnected(now, "internal_error"))
                await self._sleep(self._policy.next_delay())

    async def _loop(self) -> None:
        while not self._stopping:
            if self.state is ConnState.RECONNECTING:
                self.metrics.reconnect_attempts += 1
                self._outage_attempts += 1
            try:
                link = await self._open()
                if self._stopping:  # stop() came as it opened (its cancel may be lost)
                    await self._close_link(link)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                cause = classify_connect_error(exc)
                self.metrics.connect_failures += 1
                log.info("[%s] connect attempt failed: %s (%s)", self.conn_id, cause,
                         redact(f"{type(exc).__name__}: {exc}"))
                # the refused handshake's status and body read once (a 64-KB body was
                # decoded and classified up to three times an attempt)
                limit = handshake_limit(exc)
                status = refused_key_status(exc, limit=limit)
                if status is not None:
                    if not await self._key_refused(cause, status):
                        return
                    continue
                asked = retry_after(exc, limit=limit)
                quota = exc if isinstance(exc, QuotaExhausted) else limit
                if isinstance(quota, QuotaExhausted):  # a human must act: said once an
                    # episode (until a connection opens, as a refused key); without a wait
                    # of its own, the attempts wait backoff_max
                    if not self._quota_alerted:
                        self._quota_alerted = True
                        self._alert(self._alert_policy.quota_exhausted(
                            self._clock.now(), quota.message[:200],
                            self.settings.backoff_max))
                    asked = self.settings.backoff_max if asked is None else asked
                if not await self._attempt_failed(cause, asked,
                                                  counts=not isinstance(quota, QuotaExhausted)):
                    return
                continue
            cause = await self._serve(link)
            if self._stopping:
                return
            # counted by kind: a forced reconnect's cause carries its detail after a colon
            # (`lagging: node head N, ...`), one metric key an event (the state row keeps it)
            self.metrics.disconnects[cause.split(":", 1)[0]] += 1
            now = self._clock.now()
            self._policy.lost(now)
            self._fire(ConnEvent.LOST, cause)
            self._alert(self._alert_policy.disconnected(now, cause))
            await self._callbacks(self.on_disconnected, cause)
            await self._sleep(self._policy.next_delay())

    async def _attempt_failed(self, cause: str, asked: float | None = None, *,
                              counts: bool = True) -> bool:
        """Book a failed attempt; sleep the backoff (at least what the server ``asked``,
        up to ``backoff_max``). False when the manager gave up. ``counts`` False: an
        attempt refused for a spent quota, in the total but not toward
        ``max_reconnect_attempts`` (:meth:`ReconnectPolicy.attempt_refused`): a month's
        quota refused every attempt until they ran out, and the manager gave up for good
        (FAILED, its loop ended: no feed after the quota came back, until a restart)."""
        before = self.state
        if counts:
            give_up = self._policy.attempt_failed()
        else:
            self._policy.attempt_refused()
            give_up = False
        self._fire(ConnEvent.ATTEMPT_FAILED, cause)
        self._notify()
        now = self._clock.now()
        if before is ConnState.CONNECTING:
            self._alert(self._alert_policy.disconnected(now, cause))
            await self._callbacks(self.on_disconnected, cause)
        if give_up:
            self._fire(ConnEvent.GIVE_UP, f"max_attempts: {cause}")
            self._alert(self._alert_policy.failed(now, self._policy.total_attempts, cause))
            await self._callbacks(self.on_disconnected, "failed")
            return False
        await self._sleep(self._policy.next_delay(asked))
        return not self._stopping

    async def _key_refused(self, cause: str, status: int) -> bool:
        """The handshake was refused because of the key (HTTP ``status``): a setting to
        fix, not an outage. FAILED at once (one ``failed`` alert and ``on_disconnected
        ("failed")`` an episode, at its first refusal), then the next attempt after
        ``backoff_max`` (through CONNECTING: a key restored comes back without a restart;
        a refusal again is FAILED again, quietly). False when stopping."""
        first = self.key_refused is None
        self.key_refused = status
        # counted, but not toward max_reconnect_attempts: the refusals retry for ever, and
        # an ordinary failure after them (a 503 as the key is restored) must not be the
        # one that gives up for good on an outage they filled
        self._policy.attempt_refused()
        self._outage_attempts += 1
        self._fire(ConnEvent.GIVE_UP, f"key_refused: {cause}")
        self._notify()
        retry = self.settings.backoff_max
        if first:
            log.error("[%s] the provider refused the key at the WebSocket handshake (HTTP "
                      "%d): FAILED; the fallback polls; tried again every %s s",
                      self.conn_id, status, seconds_text(retry))
            self._alert(self._alert_policy.key_refused(self._clock.now(), status, retry))
            await self._callbacks(self.on_disconnected, "failed")
        await self._sleep(self.settings.real(retry))
        if self._stopping:
            return False
        self._fire(ConnEvent.START, "retry: key refused")
        return True

    async def _open(self) -> _Link:
        """Connect and re-make every subscription. Raises on any failure (link dropped)."""
        ws = await asyncio.wait_for(
            self._factory(self.url, open_timeout=self._timeout(self.settings.open_timeout),
                          max_size=self.settings.max_message_bytes),
            self._timeout(self.settings.open_timeout) + 1.0,
        )
        link = _Link(ws, next(self._gen_seq))
        self._link = link
        for sub in self._subs.values():
            sub.node_id = None
        link.reader = asyncio.create_task(self._reader(link), name=f"ws-reader-{self.conn_id}")
        try:
            # Subscriptions added meanwhile are picked up: loop until none is missing.
            while True:
                missing = [s for s in self._subs.values() if s.node_id is None]
                if not missing:
                    break
                for sub in missing:
                    if sub.stable_id in self._subs:
                        await self._subscribe_on(link, sub)
        except BaseException as exc:
            reader = link.reader
            await self._close_link(link)
            if isinstance(exc, ConnectionLost) and link.cause is not None:
                raise _OpenFailed(link.cause) from exc
            if isinstance(exc, ConnectionLost) and reader.done() and not reader.cancelled():
                raise _OpenFailed(reader.result()) from exc
            raise
        return link

    async def _serve(self, link: _Link) -> str:
        """Run one open connection until it must end; return the cause."""
        now = self._clock.now()
        reconnect = self._ever_connected
        self._ever_connected = True
        self.key_refused = None
        self._quota_alerted = False
        self._forced = None
        self.connected_at = now
        self._policy.opened(now)
        self._heartbeat.connected(now)
        self._watchdog.arm(now)
        self.metrics.connects += 1
        self._fire(ConnEvent.OPENED, "reconnected" if reconnect else "connected")
        self._alert(self._alert_policy.recovered(now, self._outage_attempts))
        self._outage_attempts = 0
        if self.on_connected:
            # In the background: a long backfill must not hold up the heartbeat.
            task = asyncio.create_task(self._callbacks(self.on_connected, reconnect),
                                       name=f"ws-on-connected-{self.conn_id}")
            self._bg_callbacks.add(task)
            task.add_done_callback(self._bg_callbacks.discard)
        try:
            return await self._supervise(link)
        finally:
            await self._close_link(link)

    async def _supervise(self, link: _Link) -> str:
        assert link.reader is not None
        wake = asyncio.Event()
        self._wake = wake
        while True:
            if link.reader.done():
                return link.reader.result() if not link.reader.cancelled() else "cancelled"
            if self._forced is not None:
                cause, self._forced = self._forced, None
                self.metrics.error("forced")
                return cause
            now = self._clock.now()
            action = self._heartbeat.decide(now)
            if action is HeartbeatAction.TIMEOUT:
                self.metrics.error("ping_timeout")
                return "ping_timeout"
            if action is HeartbeatAction.SEND_PING:
                try:  # ping() waits while the peer does not read: bounded like its pong
                    waiter = await asyncio.wait_for(
                        link.ws.ping(), self._timeout(self.settings.heartbeat_timeout))
                except TimeoutError:
                    self.metrics.error("ping_timeout")
                    return "ping_timeout"
                except Exception as exc:
                    return classify_close(exc)
                self._heartbeat.ping_sent(now)
                pong = asyncio.ensure_future(waiter)
                pong.add_done_callback(self._on_pong)
            behind = False
            if self._heads_watched() and self._watchdog.is_stale(now):
                behind = self._reader_behind(link)
                if not behind:
                    self.metrics.error("stale")
                    return "stale"
            deadline = self._heartbeat.next_deadline()
            if behind:  # look again once the reader has had a turn: the watchdog's
                # deadline has passed, and waited for it spun this loop every millisecond
                # (a FIONREAD each time) while the reader was behind, taking the CPU the
                # reader lacked
                deadline = min(deadline, now + self.settings.real(self.settings.block_interval))
            elif self._heads_watched():
                wd = self._watchdog.deadline()
                if wd is not None:
                    deadline = min(deadline, wd)
            wake.clear()
            waiter_task = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({link.reader, waiter_task},
                                   timeout=max(0.0, deadline - self._clock.now()) + 1e-3,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter_task.cancel()

    def _reader_behind(self, link: _Link) -> bool:
        """Heads look stale but frames wait unread: the reader is behind, not the feed
        (reconnecting would drop what is waiting and alert a healthy feed down). Counted
        and logged, once an episode."""
        waiting = _unread(link.ws)
        if not waiting:
            return False
        self.reader_behind += 1
        if not self._behind_logged:
            self._behind_logged = True
            log.warning("[%s] heads look late but %d frames/bytes wait unread: this process "
                        "reads its feed slower than it comes (a notification callback that "
                        "awaits something slow? a starved CPU?); not reconnecting",
                        self.conn_id, waiting)
            self._history.record("reader_behind", conn=self.conn_id, unread=waiting)
        return True

    def _on_pong(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        self.metrics.pong(self._heartbeat.pong_received(self._clock.now()))
        if self._wake is not None:
            self._wake.set()
        self._notify()

    async def _close_link(self, link: _Link) -> None:
        if self._link is link:
            self._link = None
        transport = getattr(link.ws, "transport", None)
        if transport is not None:
            transport.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.ws.close(), self.settings.min_timeout)
        if link.reader is not None and not link.reader.done():
            link.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.reader
        self._fail_pending(link.gen, ConnectionLost("connection closed"))
        self._watchdog.disarm()

    def _drop_link(self, exc: MonitorError) -> None:
        link, self._link = self._link, None
        if link is not None:
            transport = getattr(link.ws, "transport", None)
            if transport is not None:
                transport.abort()
            self._fail_pending(link.gen, exc)

    def _fail_pending(self, gen: int, exc: MonitorError) -> None:
        for rid, p in list(self._pending.items()):
            if p.conn_gen == gen:
                del self._pending[rid]
                if not p.future.done():
                    p.future.set_exception(exc)

    async def _subscribe_on(self, link: _Link, sub: _Sub) -> None:
        node_id = await self._rpc(link, "eth_subscribe", sub.params,
                                  self._timeout(self.settings.open_timeout), sub=sub)
        if not isinstance(node_id, str):  # a bad answer, not a refusal of the params: an
            # RpcError made subscribe() forget the subscription for good
            self._bad("bad_subscription_id", node_id)
            raise BadResponse(f"eth_subscribe answered a non-string id {brief(node_id)}",
                              kind="bad_subscription_id")

    async def _rpc(self, link: _Link, method: str, params: list[Any], timeout: float,
                   *, sub: _Sub | None = None) -> Any:
        rid = next(self._req_seq)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(method, fut, sub, link.gen)
        frame = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        ok = False
        try:
            try:  # send() waits while the peer does not read: part of the call's time
                await asyncio.wait_for(link.ws.send(frame), timeout)
            except ConnectionClosed as exc:
                raise ConnectionLost(f"{method}: {classify_close(exc)}") from None
            except TimeoutError:
                raise Timeout(f"{method}: not sent in {timeout:.3g} s (the peer does not "
                              f"read)") from None
            try:
                result = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise Timeout(f"{method}: no answer in {timeout:.3g} s") from None
            ok = True
            return result
        finally:
            self._pending.pop(rid, None)
            if fut.done() and not fut.cancelled():
                # the reader failed it (the connection closed) while the send still waited:
                # read, or asyncio logs "Future exception was never retrieved" at ERROR
                fut.exception()
            else:
                fut.cancel()
            self.metrics.api_calls.call(method, ok)
            self._history.record("api_call", kind="rpc_ws", method=method, ok=ok)

    async def _reader(self, link: _Link) -> str:
        """Receive frames until the connection closes; return the close cause."""
        while True:
            if link.held is not None and not _buffered(link.ws) and link.cause is None:
                # the frames that came with the held head are handled: let the tasks they
                # woke run (the owner's live delivery), then hand the head over
                await asyncio.sleep(0)
                await self._release_head(link)
            try:
                data = await link.ws.recv()
            except Exception as exc:
                if link.held is not None and link.cause is None:
                    await self._release_head(link)  # received before the close: handed over
                if not isinstance(exc, ConnectionClosed):
                    self.metrics.error("recv")
                cause = classify_close(exc)
                for flag in ("not_reading", "ping_flood"):  # see _BoundedConnection
                    if getattr(link.ws, flag, False):
                        cause = f"peer_{flag}"
                        self.metrics.error(cause)
                if link.cause is not None:  # this side dropped it, and said why
                    cause = link.cause
                # Requests on this connection will never be answered: fail them now.
                self._fail_pending(link.gen, ConnectionLost(f"connection closed: {cause}"))
                return cause
            recv_ns = self._clock.now_ns() if self._stamp else 0
            try:
                await self._handle_frame(link, data, recv_ns)
            except Exception as exc:  # one frame never ends the reader
                self._bad("handler_error", f"{type(exc).__name__}: {exc}")
            self._notify()

    async def _handle_frame(self, link: _Link, data: str | bytes, recv_ns: int = 0) -> None:
        size = (len(data) if isinstance(data, bytes) or data.isascii()
                else len(data.encode("utf-8")))
        self.metrics.received(size)
        if link.cause is not None:  # dropped by this side: what is still queued is not read
            return
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                self._bad("binary", data[:40])
                return
        if not nesting_ok(data):  # before parsing: deep JSON must never reach the C parser
            self._bad("too_deep", data, 80)
            return
        if not values_ok(data, MAX_FRAME_VALUES):  # before parsing, as deep JSON
            self._bad("too_many_values", f"a frame of {len(data):,} characters with more "
                                         f"than {MAX_FRAME_VALUES:,} values")
            return
        try:
            msg = json.loads(data)
        except RecursionError:
            self._bad("too_deep", data, 80)
            return
        except ValueError:  # not JSON, or a number of more than 4300 digits
            self._bad("not_json", data, 80)
            return
        if recv_ns:
            self.frame_stamps = (recv_ns, self._clock.now_ns())
        items = msg if isinstance(msg, list) else [msg]
        if len(items) > _MAX_BATCH:
            self._bad("too_many", f"a batch of {len(items)} items")
            return
        share = size // len(items) if items else size  # a batch frame's bytes, an item
        for item in items:
            if not isinstance(item, dict):
                self._bad("bad_shape", item, 80)
                continue
            if item.get("method") == "eth_subscription":
                await self._notification(link, item, share)
            elif (("id" in item and ("result" in item or "error" in item))
                  or ("error" in item and "method" not in item)):  # no id: see _response
                sub = self._response(link, item)
                if sub is not None:  # notifications that came before this answer
                    if sub.is_heads and link.held is not None:  # heads in order
                        await self._release_head(link)
                    for result in self._take_early(link, sub):
                        await self._dispatch(sub, result)
            else:
                self._bad("bad_shape", data, 80)

    def _bad(self, kind: str, sample: Any, limit: int = 120) -> None:
        """Count a malformed frame by kind; log the first ones (the feed goes on).
        ``sample`` (a frame's text, whole, or what it holds) is said in ``limit``
        characters, its secrets masked before the cut (:func:`~polyvocab.bounds.brief`):
        a frame echoing the URL, cut first, showed the head of the key the cut halved."""
        self.metrics.error(kind)
        self.bad_frames[kind] += 1
        n = self.bad_frames[kind]
        if n > 100 and n % 1000 != 0:
            return
        text = brief(sample, limit)
        if n <= 3 or n % 1000 == 0:
            log.warning("[%s] malformed frame (%s, %d so far): %s", self.conn_id, kind, n,
                        text)
        self._history.record("bad_input", kind=f"ws_{kind}", source=self.conn_id, count=n,
                             reason=text)

    def _response(self, link: _Link, item: dict[str, Any]) -> _Sub | None:
        """Resolve the request ``item`` answers; return the subscription it just mapped
        (an ``eth_subscribe`` answered with an id), if any."""
        rid = item.get("id")
        if rid is None and item.get("error") is not None and "method" not in item:
            self._unaddressed_error(link, item["error"])
            return None
        pending = self._pending.get(rid) if type(rid) is int else None
        if pending is None or pending.conn_gen != link.gen:
            self._bad("unknown_response_id", rid)
            return None
        if pending.future.done():
            return None
        err = item.get("error")
        if err is not None:
            meant = error_of(err, pending.method)  # the HTTP client's one reading
            if isinstance(meant, RateLimited):  # "slow down" (Alchemy's 429 "exceeded its
                # compute units per second capacity", Infura's -32005): not wrong
                pending.future.set_exception(meant)
                return None
            if isinstance(meant, BadResponse):
                # no JSON-RPC error object ("error": "rate limited", a code "429" or none):
                # what it refuses cannot be told, the request is not known to be wrong.
                # An RpcError made eth_subscribe forget its subscription for good
                self._bad("bad_error", err)
                pending.future.set_exception(BadResponse(
                    f"{pending.method}: an error answer that is no JSON-RPC error object: "
                    f"{brief(err, 120)}", kind="bad_error"))
                return None
            code, message = err["code"], brief(err.get("message", err))
            if isinstance(meant, Timeout):  # dRPC's "Request timeout on the free tier"
                # (code 30), geth's -32002 "request timed out": the request is not wrong,
                # an RpcError made eth_subscribe forget its subscription for good
                pending.future.set_exception(Timeout(
                    f"{pending.method}: the provider timed out: {code}: {message}"))
                return None
            pending.future.set_exception(RpcError(code, message))
            return None
        result = item.get("result")
        sub = pending.sub
        mapped = None
        if sub is not None and isinstance(result, str):
            other = link.by_node.get(result)
            if other is not None and other is not sub:
                # mapped anew, the other subscription's notifications went to this one's
                # callback (logs taken for heads, refused as bad heads): none delivered
                self._drop(link, "duplicate_subscription_id",
                           f"eth_subscribe of {sub.stable_id} answered "
                           f"{brief(result, 40)}, the id of {other.stable_id}")
                return None
            # Map before any later notification of this subscription is read.
            if self._subs.get(sub.stable_id) is sub:
                sub.node_id = result
                link.by_node[result] = sub
                mapped = sub
            else:  # unsubscribed while the answer was on its way
                link.retire(result)
        pending.future.set_result(result)
        return mapped

    def _unaddressed_error(self, link: _Link, err: Any) -> None:
        """An error answer without a request id (``"id": null``: a provider's gateway
        refusing a frame before it read its id, -32005 "rate limited", -32700, -32600).

        **Choice:** a rate limit (:func:`polyvocab.jsonrpc_http.rate_limit_of`) fails
        every request waiting on this connection with :class:`RateLimited`: a gateway's
        limit holds for the connection (the key), not one request, and each request is
        asked again after the wait it names (an ``eth_subscribe`` re-makes the connection
        on it, cause ``rate_limited``). Any other such error fails the request when it is
        the only one waiting (:class:`BadResponse`, ``kind="unaddressed_error"``: the node
        could not read it; retried as garbage, a subscription kept); with several waiting
        it cannot be told whose it is: counted as bad input, and the requests run to their
        timeouts (failing all would fail the ones the node is still answering). Either
        way, none of them waited ``open_timeout`` for an answer already given."""
        waiting = [p for p in self._pending.values()
                   if p.conn_gen == link.gen and not p.future.done()]
        # a refusal without the id was given before the request was read: never a range
        # refusal of eth_getLogs, so -32005 "limit exceeded" is a rate limit here (the
        # rule of a method without a range)
        if rate_limit_of(err, "eth_subscribe") is not None:
            for p in waiting:
                p.future.set_exception(rate_limit_of(err, p.method) or RateLimited(
                    f"{p.method}: {brief(err, 120)}"))
            if waiting:
                log.info("[%s] rate limited without a request id (%s): %d requests failed",
                         self.conn_id, redact(brief(err, 120)), len(waiting))
                return
        elif len(waiting) == 1:
            waiting[0].future.set_exception(BadResponse(
                f"{waiting[0].method}: the node answered an error without the request's id "
                f"(it could not read it): {brief(err, 120)}", kind="unaddressed_error"))
        self._bad("unaddressed_error", err)

    def _subscribe_pending(self, link: _Link) -> bool:
        """An ``eth_subscribe`` sent on ``link`` is still unanswered."""
        return any(p.sub is not None and p.conn_gen == link.gen and not p.future.done()
                   for p in self._pending.values())

    def _hold_early(self, link: _Link, node_id: str, result: Any, size: int = 0) -> bool:
        """Keep a notification of an id not known yet while an ``eth_subscribe`` of this
        link is unanswered: a node (a provider's proxy) may send a subscription's first
        notifications before the answer that names it. True if kept (or the connection
        dropped for it: past :data:`MAX_EARLY_NOTIFICATIONS` or :data:`MAX_EARLY_BYTES`
        held, see :meth:`_early_overflow`)."""
        if not self._subscribe_pending(link):
            self._purge_early(link)
            return False
        if (link.early_count >= MAX_EARLY_NOTIFICATIONS
                or link.early_bytes + size > MAX_EARLY_BYTES):
            self._early_overflow(link)
            return True
        link.early.setdefault(node_id, []).append((result, size))
        link.early_count += 1
        link.early_bytes += size
        return True

    def _early_overflow(self, link: _Link) -> None:
        """Too much held for an unanswered ``eth_subscribe``: the connection is dropped
        (cause ``early_overflow``) and re-made with its subscriptions. Dropped in place,
        a held notification could be a trade that no sync asks for again; held on, a node
        sending frames of ``max_message_bytes`` before its answer ran this process out of
        memory."""
        count, size = link.early_count, link.early_bytes
        link.early.clear()
        link.early_count = link.early_bytes = 0
        self._drop(link, "early_overflow",
                   f"{count} notifications ({size} bytes) came for no known subscription "
                   "while an eth_subscribe was unanswered: more than this side holds",
                   count=count, bytes=size)

    def _drop(self, link: _Link, cause: str, text: str, **row: Any) -> None:
        """The node sent what this connection cannot go on with: drop it (its reader
        returns ``cause``, the connection is re-made with its subscriptions), said in the
        log and a ``bad_input`` row. Its pending requests fail now; frames still queued
        are not read."""
        if link.cause is not None:
            return
        link.cause = cause
        self.metrics.error(cause)
        log.warning("[%s] %s; dropping the connection", self.conn_id, redact(text))
        self._history.record("bad_input", kind=f"ws_{cause}", source=self.conn_id,
                             reason=redact(text)[:200], **row)
        transport = getattr(link.ws, "transport", None)
        if transport is not None:
            transport.abort()
        self._fail_pending(link.gen, ConnectionLost(f"connection dropped: {cause}"))

    def _take_early(self, link: _Link, sub: _Sub) -> list[Any]:
        """The notifications held for ``sub``'s node id (now known), in arrival order.
        Once no ``eth_subscribe`` is unanswered, the others held are of no subscription of
        this side: counted as unknown."""
        held = link.early.pop(sub.node_id, []) if sub.node_id is not None else []
        link.early_count -= len(held)
        link.early_bytes -= sum(size for _, size in held)  # those still held stay counted
        if not self._subscribe_pending(link):
            self._purge_early(link)
        return [result for result, _ in held]

    def _purge_early(self, link: _Link) -> None:
        """Held notifications no answer can claim any more: counted as unknown."""
        for node_id, results in link.early.items():
            for _ in results:
                self._bad("unknown_subscription", node_id)
        link.early.clear()
        link.early_count = link.early_bytes = 0

    async def _notification(self, link: _Link, item: dict[str, Any], size: int = 0) -> None:
        params = item.get("params")
        if not isinstance(params, dict) or "subscription" not in params:
            self._bad("bad_shape", item, 80)
            return
        node_id = params.get("subscription")
        sub = link.by_node.get(node_id) if isinstance(node_id, str) else None
        if sub is None:
            if isinstance(node_id, str) and node_id in link.retired:
                self.metrics.error("late_notification")
                return
            if isinstance(node_id, str) and self._hold_early(link, node_id,
                                                             params.get("result"), size):
                return
            self._bad("unknown_subscription", node_id)
            return
        if sub.is_heads:
            if link.held is not None:  # heads in order: the one held before this one
                await self._release_head(link)
            if _buffered(link.ws):
                # **Choice:** a head whose frame has frames parsed after it (a node sends
                # a block's head, then its logs, in one burst) is handed over once those
                # are handled and the tasks they woke have run: the block's logs reach the
                # live delivery without waiting behind the head's handling (the owner's
                # sync checks). An order the owner meets anyway: a node may send a block's
                # logs before its head. One head at most is held, in its place among heads
                link.held = (sub, params.get("result"), self.frame_stamps)
                return
            await self._dispatch(sub, params.get("result"))
            return
        # a logs notification (the feed's bulk): _dispatch's work without its coroutine
        # and _call's, two a notification
        self.metrics.notifications += 1
        on_message: Callable[..., Any] = sub.on_message  # a result of any shape, as _call
        try:
            called = on_message(params.get("result"))
            if called is not None and inspect.isawaitable(called):
                await called
        except Exception as exc:
            self._callback_failed(sub, exc)

    async def _release_head(self, link: _Link) -> None:
        """Hand over the head held on ``link`` (see :meth:`_notification`)."""
        held, link.held = link.held, None
        if held is None:
            return
        sub, result, stamps = held
        if self._subs.get(sub.stable_id) is not sub:
            return  # unsubscribed while held: unsubscribe() promises no more callbacks
        current, self.frame_stamps = self.frame_stamps, stamps
        try:
            await self._dispatch(sub, result)
        finally:
            self.frame_stamps = current

    async def _dispatch(self, sub: _Sub, result: Any) -> None:
        """One notification's ``result`` to its subscription's callback."""
        self.metrics.notifications += 1
        if sub.is_heads:
            if _looks_like_header(result):
                self.metrics.heads += 1
                self._behind_logged = False  # a reader behind again is a new episode
                self._watchdog.note_head(self._clock.now())
            else:  # null, a number, a list: no head, and it must not keep a node that
                # sends only garbage "alive" for the watchdog (the callback still gets
                # it: its owner decides what it does with it)
                self._bad("bad_head", result, 80)
        try:
            await _call(sub.on_message, result)
        except Exception as exc:
            self._callback_failed(sub, exc)

    def _callback_failed(self, sub: _Sub, exc: Exception) -> None:
        """A notification callback raised: counted and logged, the reader goes on."""
        self.metrics.error("callback")
        log.exception("[%s] on_message of %s failed: %s", self.conn_id, sub.stable_id,
                      redact(str(exc)))

