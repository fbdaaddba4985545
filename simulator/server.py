"""The mock node's asyncio shell: one aiohttp app on one port, like anvil.

Routes::

    GET  /            WebSocket JSON-RPC (upgrade)     POST /   JSON-RPC over HTTP
    GET  /v2/api      explorer (Etherscan V2)          GET  /api  deprecated V1 path
    GET  /_sim/status                                  POST /_sim/reset
    GET  /_sim/faults   POST /_sim/faults   DELETE /_sim/faults/{id}
    POST /bot<TOKEN>/sendMessage   Telegram Bot API stand-in

:class:`Simulator` owns the chain, the replay loop, the faults and the connections; all
decisions are made by the sans-I/O cores (``chain``, ``schedule``, ``jsonrpc``,
``faults``, ``telegram``). What an active fault does is asked of the ``nemesis`` at each
hook (start, upgrade, mute, subscribe, notify, http, http_reply, http_lag, explorer,
explorer_reply); this module only applies the answers and never names a fault.
``python -m simulator serve`` (in :mod:`simulator.cli`) runs it until a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import resource
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import IO, Any

from aiohttp import WSMsgType, web
from aiohttp.web_protocol import RequestHandler

from polyvocab.connection_cap import ConnectionCap
from polyvocab.http_log import BadRequestLog
from simulator.chain import Chain, ChainBlock, ReorgResult, Steps
from simulator.faults import (
    ActiveFault,
    FaultBoard,
    FaultError,
    FaultPlan,
    check_duration,
    make_spec,
)
from simulator.filters import LogFilter
from simulator.hexutil import geth_id
from simulator.history import SimHistory
from simulator.jsonrpc import (
    Call,
    JsonInputError,
    JsonRpc,
    Reply,
    RpcError,
    WsRead,
    parse_json,
    read_http_body,
    read_ws_message,
)
from simulator.nemesis import (
    KINDS,
    Abort,
    Close,
    HttpAnswer,
    Injection,
    Nemesis,
    NotifyCtx,
    Reorg,
    ReplyCtx,
)
from simulator.recording import Recording
from simulator.settings import SettingsError, SimSettings
from simulator.source import BlockSource
from simulator.telegram import TelegramBot

__all__ = ["QuietAcceptErrors", "Simulator", "default_max_connections"]

log = logging.getLogger("simulator.server")
_NS = 1_000_000_000
_PUBLISH_BATCH = 32  # blocks published per loop turn before yielding to the writers
_HIGH_WATER = 2000  # queued messages on a connection that make the replay wait a little
#: seconds the replay waits after a block for the writers of long queues, all of them
#: together (and no later than the next block's due time while it is on schedule)
_PACE_S = 0.5
_WRITE_HIGH_WATER = 1 << 20  # bytes buffered in a transport before the writer waits
_WRITE_BATCH = 1 << 20  # characters framed and handed to the transport in one write
_MAX_COUNT_LABELS = 1000  # distinct request-counter labels per api (then "other")
#: calls of one WebSocket connection answered concurrently once they yield (rebuilt blocks)
_WS_CALLS = 4
#: seconds to send the close frame to a client that did not answer a ping
_CLOSE_FRAME_S = 1.0
#: how long a connection geth's reader stops at waits for its queued answers before it closes
_READ_FAILED_FLUSH_S = 5.0
#: ... and for the calls still running then (geth waits for them without a bound; each is
#: bounded here by max_rebuilt_blocks)
_READ_FAILED_CALLS_S = 60.0
_FLUSH_S = 1.0  # loop seconds before a row written between replay turns is flushed
#: simulated seconds of fault schedule laid out for a streamed chain (its end is not known)
_STREAMED_HORIZON_S = 7 * 86_400.0


_REFUSAL_LOG_S = 10.0  # at most one "out of descriptors" line this often


def default_max_connections() -> int:
    """Three quarters of the file-descriptor limit: the rest for files, pipes and (in one
    process with the monitor) the clients' own sockets. Past the limit, accept() failed
    and asyncio logged a traceback per retry, ~2,000 a second and rising."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65_536
    return max(soft * 3 // 4, 8)


class QuietAcceptErrors:
    """A loop exception handler for the ``serve`` process: asyncio's "socket.accept() out
    of system resource" (file descriptors ran out) becomes one line every ``every_s`` with
    a count, instead of a traceback per retry (asyncio 3.11 retries each pending
    connection: ~2,000 tracebacks a second and rising, 4.9 MB of stderr in 8 s). Anything
    else goes to the loop's default handler."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, every_s: float = _REFUSAL_LOG_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.unlogged = 0
        self._logged_at: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            loop.default_exception_handler(context)
            return
        self.unlogged += 1
        now = self.clock()
        if self._logged_at is not None and now - self._logged_at < self.every_s:
            return
        self._logged_at = now
        log.warning("cannot accept connections: %s (%d time(s) since the last line); "
                    "lower max_connections or raise the descriptor limit (ulimit -n)",
                    context.get("exception"), self.unlogged)
        self.unlogged = 0


def _text_frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (server to client, RFC 6455)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


@dataclass(slots=True)
class _Sub:
    kind: str
    flt: LogFilter | None
    prefix: str
    #: a logs subscription's fromBlock/toBlock heights (geth delivers only the logs of
    #: blocks between them); None: open
    lo: int | None = None
    hi: int | None = None
    #: notifications of a subscription whose call is not answered yet, sent after the
    #: answer (geth activates a subscription once its reply is written); one list for
    #: all the subscriptions of the call, in the order they were made; None: answered
    held: list[tuple[_Sub, str]] | None = None

    def skips(self, number: int) -> bool:
        """Whether a block of height ``number`` is outside the subscription's range."""
        return (self.lo is not None and number < self.lo) or (self.hi is not None
                                                               and number > self.hi)


def _is_heads(sub: _Sub) -> bool:
    return sub.kind == "newHeads"


def _note_chars(sub: _Sub, payload: str) -> int:
    """Characters of the notification text of ``payload`` for ``sub``."""
    return len(sub.prefix) + len(payload) + 2


class _CallHost:
    """One call's view of its connection (:class:`jsonrpc.SubscriptionHost`): the
    subscriptions it makes hold their notifications until :meth:`activate`, once the
    call's answer is queued (a batch ``[eth_subscribe, eth_getLogs of old blocks]`` let
    a block's notification out before the batch's answer, where geth answers first)."""

    __slots__ = ("conn", "held", "made")

    def __init__(self, conn: WsConn) -> None:
        self.conn = conn
        self.made: list[tuple[str, _Sub]] = []
        #: what the new subscriptions held, all of them in one list: sent in the order
        #: made (a list each, sent list after list, put every block of the first
        #: subscription before the second's first block)
        self.held: list[tuple[_Sub, str]] = []

    def subscribe(self, kind: str, flt: LogFilter | None, *, lo: int | None = None,
                  hi: int | None = None) -> str:
        sub_id = self.conn.subscribe(kind, flt, lo=lo, hi=hi)
        sub = self.conn.subs[sub_id]
        sub.held = self.held
        self.made.append((sub_id, sub))
        if kind == "syncing":  # a node in sync: geth's one notification, after the answer
            self.conn.notify(sub, "false")
        return sub_id

    def unsubscribe(self, sub_id: str) -> bool:
        return self.conn.unsubscribe(sub_id)

    def activate(self) -> None:
        """The answer is queued: send what the new subscriptions held, in order."""
        subs = self.conn.subs
        live = {id(sub) for sub_id, sub in self.made
                if subs.get(sub_id) is sub}  # not unsubscribed meanwhile
        for _, sub in self.made:
            sub.held = None
        held, self.held = self.held, []
        self.made.clear()
        self.conn.held_chars = max(0, self.conn.held_chars - sum(
            _note_chars(sub, payload) for sub, payload in held))
        for sub, payload in held:
            if id(sub) in live:
                self.conn.notify(sub, payload)


class WsConn:
    """One WebSocket client: its subscriptions and an ordered outgoing queue.

    What waits for the client is bounded, like geth bounds a client that does not read:
    notifications past ``notify_buffer`` messages or ``notify_buffer_bytes`` (queued, and
    held for calls not answered yet, together) drop the connection; the client's next
    request is read only once its unsent answers are under a quarter of
    ``notify_buffer_bytes`` (:meth:`wait_for_room`), so a client that sends requests and
    reads nothing costs one answer, not one per request.
    """

    def __init__(self, sim: Simulator, conn_id: str, ws: web.WebSocketResponse,
                 request: web.Request) -> None:
        self.sim = sim
        self.id = conn_id
        self.ws = ws
        self.request = request
        self.subs: dict[str, _Sub] = {}
        self.filter_values = 0  # addresses and topics of its subscriptions' filters
        #: (due ns, text, is a notification), in send order
        self.queue: deque[tuple[int, str, bool]] = deque()
        self.note_chars = 0  # characters of the notifications in the queue
        #: characters of the notifications held for calls not answered yet (:class:`_CallHost`)
        self.held_chars = 0
        self.reply_chars = 0  # characters of the answers in the queue
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.room = asyncio.Event()  # set by the writer: the reader may check again
        self.last_due = 0
        self.closed = False
        self.writer: asyncio.Task[None] | None = None
        #: calls that went on past their first step (old blocks rebuilt), each answered
        #: when done as geth answers concurrent calls: a slow eth_getLogs no longer
        #: holds the eth_blockNumber behind it. At most :data:`_WS_CALLS` at once; past
        #: it the next request is read when one ends
        self.calls = asyncio.Semaphore(_WS_CALLS)
        self.call_tasks: set[asyncio.Task[None]] = set()
        #: the event loop's time of the next ping (put off by every write) and by when the
        #: pong of the last ping is due (None: none awaited); see :meth:`ping_loop`
        self.next_ping = 0.0
        self.pong_due: float | None = None
        self.ping_interval_s = sim.settings.node.ws_ping_interval_s
        self.pinger: asyncio.Task[None] | None = None

    # -- SubscriptionHost ----------------------------------------------------------------
    def subscribe(self, kind: str, flt: LogFilter | None, *, lo: int | None = None,
                  hi: int | None = None) -> str:
        node = self.sim.settings.node
        limit = self.sim.nemesis.subscribe(self.id, node.max_subscriptions)
        if limit is not None and len(self.subs) >= limit:
            raise RpcError(-32005, f"too many subscriptions: limit of {limit} per "
                                   f"connection reached")
        size = 0 if flt is None else flt.size
        if self.filter_values + size > node.max_filter_values:
            raise RpcError(-32005, f"filters too large: {self.filter_values + size} "
                                   f"addresses and topics on this connection, limit of "
                                   f"{node.max_filter_values}")
        self.filter_values += size
        sub_id = geth_id()
        prefix = ('{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
                  + sub_id + '","result":')
        self.subs[sub_id] = _Sub(kind, flt, prefix, lo, hi)
        return sub_id

    def unsubscribe(self, sub_id: str) -> bool:
        sub = self.subs.pop(sub_id, None)  # as sent: geth's ids are case-sensitive
        if sub is None:
            return False
        self.filter_values -= 0 if sub.flt is None else sub.flt.size
        return True

    # -- output ----------------------------------------------------------------------------
    def stalled(self) -> bool:
        """Half-open (a fault mutes the connection): nothing read, answered or sent."""
        return bool(self.sim.board.active) and self.sim.nemesis.mute(self.id)

    def send(self, text: str) -> None:
        """Queue a response (kept in order behind any delayed notification)."""
        if self.closed or self.stalled():
            return
        self._push(max(self.last_due, 0), text, False)

    def notify(self, sub: _Sub, payload: str) -> None:
        """Queue a notification of ``sub`` as the nemesis says (drop, copies, delay, extra
        malformed frames after it)."""
        if self.closed:
            return
        if sub.held is not None:  # its call is not answered yet
            node = self.sim.settings.node
            chars = _note_chars(sub, payload)
            if len(sub.held) >= node.notify_buffer:
                log.warning("conn %s: notification buffer full, dropping the connection",
                            self.id)
                self.abort()
                return
            if self.note_chars + self.held_chars + chars > node.notify_buffer_bytes:
                # held notifications were counted, not measured: a call rebuilding old
                # blocks for a minute held every busy block's logs for its subscription
                log.warning("conn %s: %d bytes of notifications unsent, dropping the "
                            "connection (held for a call not answered yet)", self.id,
                            self.note_chars + self.held_chars)
                self.abort()
                return
            sub.held.append((sub, payload))
            self.held_chars += chars
            return
        text = sub.prefix + payload + "}}"
        if not self.sim.board.active:
            self._push(0, text, True)
            return
        plan = self.sim.nemesis.notify(NotifyCtx(self.id, sub.kind, sub.prefix, payload))
        due = 0
        if plan.delay_ms is not None:
            due = max(self.last_due, self.sim.now_ns()
                      + int(plan.delay_ms * 1e6 / self.sim.chain.speed))
        for _ in range(plan.copies):
            self._push(due, text, True)
        for injection, frame in plan.extra:
            self.sim.record_malformed(injection, "rpc_ws", conn=self.id)
            self._push(due, frame, True)

    def _push(self, due: int, text: str, note: bool) -> None:
        node = self.sim.settings.node
        if len(self.queue) >= node.notify_buffer:
            log.warning("conn %s: notification buffer full, dropping the connection", self.id)
            self.abort()
            return
        if note and self.note_chars + self.held_chars + len(text) > node.notify_buffer_bytes:
            # it counted messages only: 10,000 of a busy block's logs, or of eth_getLogs
            # answers (~28 MB each), held gigabytes for a client that never read
            log.warning("conn %s: %d bytes of notifications unsent, dropping the connection "
                        "(the client does not read)", self.id, self.note_chars)
            self.abort()
            return
        self.last_due = max(self.last_due, due)
        self.queue.append((due, text, note))
        if note:
            self.note_chars += len(text)
        else:
            self.reply_chars += len(text)
        self.drained.clear()
        self.wake.set()

    def reading_paused(self) -> bool:
        """Whether the client's unsent answers (queued, or in the transport) are past a
        quarter of ``notify_buffer_bytes``: its next request waits for them to leave."""
        transport = self.request.transport
        if transport is None or transport.is_closing():
            return False  # reading finds the close
        return (self.reply_chars + transport.get_write_buffer_size()
                > self.sim.settings.node.notify_buffer_bytes // 4)

    async def wait_for_room(self) -> None:
        """Return once the client's next request may be read (or the connection is
        closed). Each pass of the writer wakes this to check again."""
        while not self.closed and self.reading_paused():
            self.room.clear()
            await self.room.wait()

    def _due_frames(self, now: int) -> list[bytes]:
        """The messages due by ``now`` at the head of the queue (at most 512, and about
        :data:`_WRITE_BATCH` characters), taken and framed."""
        queue = self.queue
        frames: list[bytes] = []
        size = 0
        while queue and queue[0][0] <= now and len(frames) < 512 and size < _WRITE_BATCH:
            _, text, note = queue.popleft()
            if note:
                self.note_chars -= len(text)
            else:
                self.reply_chars -= len(text)
            size += len(text)
            frames.append(_text_frame(text))
        return frames

    def discard_queue(self) -> None:
        """Forget every message not yet handed to the transport (the connection closes)."""
        self.queue.clear()
        self.note_chars = self.reply_chars = 0
        self.room.set()

    def write_due(self) -> None:
        """Write the due messages now, from the replay right after a block's fan-out: one
        pass of :meth:`write_loop` without the task switch to it (the order is the queue's
        either way). Left to the writer when the transport is closing or backed up."""
        transport = self.request.transport
        if self.closed or not self.queue or transport is None or transport.is_closing() \
                or transport.get_write_buffer_size() > _WRITE_HIGH_WATER or self.stalled():
            return
        frames = self._due_frames(self.sim.now_ns())
        if frames:
            try:
                transport.write(b"".join(frames))
            except (ConnectionError, RuntimeError) as exc:
                log.info("conn %s: write failed (%s)", self.id, type(exc).__name__)

    async def write_loop(self) -> None:
        """Send queued messages in order; due ones are framed and written in one go."""
        queue = self.queue
        transport = self.request.transport
        try:
            while not self.closed and transport is not None:
                if not queue:
                    self.drained.set()
                    self.room.set()
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                if self.stalled():  # half-open: what is queued waits for the fault's end
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                now = self.sim.now_ns()
                frames = self._due_frames(now)
                if frames:
                    if transport.is_closing():
                        break
                    transport.write(b"".join(frames))
                    if self.ping_interval_s is not None:  # geth's writeAndResetPing
                        self.next_ping = asyncio.get_running_loop().time() + \
                            self.ping_interval_s
                    while transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                        if transport.is_closing():
                            return
                        await asyncio.sleep(0.002)  # flow control: the peer is slow
                    self.room.set()
                    # let others run before the next pass, even when drained: without this
                    # pass the replay and the HTTP handlers of the same turn ran first, and
                    # a busy block's frames left up to ~200 ms later (the 100,000-wallet
                    # bench's p99 went 104 -> 230 ms when it was taken out)
                    await asyncio.sleep(0)
                    continue
                wait = (queue[0][0] - now) / _NS
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait)
        except (ConnectionError, RuntimeError) as exc:
            log.info("conn %s: write failed (%s)", self.id, type(exc).__name__)
        finally:
            self.drained.set()
            self.room.set()

    async def ping_loop(self, interval_s: float) -> None:
        """geth v1.17 rpc/websocket.go pingLoop: a connection the node has not written to
        for ``interval_s`` is pinged, and its pong is due within ``interval_s``
        (SetReadDeadline; a pong clears it: :meth:`pong`); past it the read fails and
        the connection is closed as geth closes it (a close frame 1000, then the TCP
        connection). A half-open (muted) connection is neither pinged nor timed."""
        loop = asyncio.get_running_loop()
        self.next_ping = loop.time() + interval_s
        try:
            while not self.closed:
                wake = self.next_ping if self.pong_due is None else min(self.next_ping,
                                                                        self.pong_due)
                await asyncio.sleep(max(0.0, wake - loop.time()))
                now = loop.time()
                if self.closed:
                    return
                if self.stalled():
                    self.next_ping, self.pong_due = now + interval_s, None
                    continue
                if self.pong_due is not None and now >= self.pong_due:
                    log.info("conn %s: no pong within %g s of a ping, closing as geth does",
                             self.id, interval_s)
                    await self._close_unanswered()
                    return
                if now >= self.next_ping:
                    await self.ws.ping(b"")
                    self.pong_due = now + interval_s
                    self.next_ping = now + interval_s
        except (ConnectionError, RuntimeError) as exc:
            log.info("conn %s: ping failed (%s)", self.id, type(exc).__name__)

    def pong(self) -> None:
        """A pong came: the read deadline of the last ping is lifted (geth's pong handler)."""
        self.pong_due = None

    async def _close_unanswered(self) -> None:
        """geth's websocketCodec.close after a failed read: a close frame 1000, then the
        connection (not the close handshake's wait: the client is not answering)."""
        self.closed = True
        self.wake.set()
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(self.ws.close(code=1000, message=b""), _CLOSE_FRAME_S)
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed = True
        self.discard_queue()
        self.held_chars = 0
        self.drained.set()
        self.wake.set()
        transport = self.request.transport
        if transport is not None:
            transport.abort()


def _first_request_due(handler: RequestHandler) -> None:
    """Close an HTTP connection whose first request's headers have not all come within
    the read timeout (``Simulator._new_connection``); one that had a request is left to
    aiohttp's keep-alive timeout. aiohttp counts a connection's requests as it parses
    their headers (``_request_count``; without it, nothing is closed here)."""
    if getattr(handler, "_request_count", 1) == 0:
        handler.force_close()


def _spread(xs: Iterable[int]) -> dict[str, int]:
    """``{"blocks", "p50", "p99", "max"}`` of some ns durations (zeros when none)."""
    v = sorted(xs)
    if not v:
        return {"blocks": 0, "p50": 0, "p99": 0, "max": 0}
    return {"blocks": len(v), "p50": v[len(v) // 2], "p99": v[min(len(v) - 1, int(0.99 * len(v)))],
            "max": v[-1]}


def _history_block_fields(block: ChainBlock) -> dict[str, Any]:
    """A history block's ``block_published`` fields (after ``t_ns`` and ``event``)."""
    return {"number": block.number, "hash": block.hash, "parent_hash": block.rb.parent_hash,
            "timestamp": block.rb.timestamp, "order_filled": block.order_filled()}


def _is_websocket(request: web.Request) -> bool:
    """geth v1.17 node/rpcstack.go isWebsocket: ``Upgrade: websocket`` (any case) and a
    ``Connection`` header holding ``upgrade``."""
    return (request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


def _go_content_length(request: web.Request) -> int:
    """``r.ContentLength`` as Go's net/http gives it: -1 for a chunked body, else the
    Content-Length header's value, 0 without one."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return -1
    return request.content_length or 0


def _go_http_error(status: int, text: str) -> web.Response:
    """An answer as Go's net/http ``http.Error`` writes it."""
    return web.Response(status=status, body=(text + "\n").encode(),
                        headers={"Content-Type": "text/plain; charset=utf-8",
                                 "X-Content-Type-Options": "nosniff"})


#: Go's net/http holds this much of an answer that has no Content-Length (bufio, 2048
#: bytes: bufferBeforeChunkingSize): an answer done within it is sent with a Content-Length,
#: a longer one chunked
_GO_CHUNKING_BYTES = 2048
#: every answer is compressed at level 1: Go's default, 6, costs ~2-3x the CPU on the
#: answers a monitor asks for (8-130 kB of JSON: 40-970 us against 23-290 us), on the
#: event loop the replay shares (a simulated day of the soak: ~1.7 s of it at 6), for
#: ~15 % more bytes on the wire; no client sees the level (the same JSON decoded)
_GZIP_LEVEL = 1


def _go_accepts_gzip(request: web.Request) -> bool:
    """geth v1.17 node/rpcstack.go newGzipHandler: ``strings.Contains(r.Header.Get(
    "Accept-Encoding"), "gzip")``: the first Accept-Encoding header holds ``gzip``, case
    and q-values as they are (``gzip;q=0`` is gzip, ``GZIP`` is not)."""
    return "gzip" in request.headers.get("Accept-Encoding", "")


async def _go_gzipped(request: web.Request, status: int, body: bytes,
                      headers: dict[str, str]) -> web.StreamResponse:
    """An answer of the HTTP handler stack as geth's gzipResponseWriter sends it to a
    client that accepts gzip: ``Content-Encoding: gzip``, the Content-Length dropped, the
    body compressed whatever its size (an empty body too: the stream's header and
    footer); Go's net/http then gives a compressed body of at most 2048 bytes a
    Content-Length and sends a longer one chunked."""
    data = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    headers["Content-Encoding"] = "gzip"
    if len(data) <= _GO_CHUNKING_BYTES or request.method == "HEAD":
        # (an answer to HEAD has no body: aiohttp writes none for a Response, but would
        # write a StreamResponse's, on a connection the client may keep)
        return web.Response(status=status, body=data, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(data)
    await response.write_eof()
    return response


#: geth v1.17 rpc/http.go acceptedContentTypes (JSON-RPC over HTTP's historical types)
_JSON_TYPES = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


def _go_token(v: str) -> tuple[str, str]:
    """Go mime consumeToken: the RFC 2045 token at the start of ``v`` and the rest."""
    i = 0
    while i < len(v) and " " < v[i] < "\x7f" and v[i] not in _TSPECIALS:
        i += 1
    return v[:i], v[i:]


def _go_value(v: str) -> tuple[str, str]:
    """Go mime consumeValue: a token or a quoted string (unquoted), and the rest; ``("",
    v)`` when there is neither."""
    if not v.startswith('"'):
        return _go_token(v)
    out: list[str] = []
    literal = False
    for i, ch in enumerate(v[1:], 1):
        if literal:
            out.append(ch)
            literal = False
        elif ch == '"':
            return "".join(out), v[i + 1:]
        elif ch == "\\":
            literal = True
        elif ch in "\r\n":
            break
        else:
            out.append(ch)
    return "", v


def _go_media_type(value: str) -> str | None:
    """The media type of a Content-Type value as Go's ``mime.ParseMediaType`` reads it
    (lower case, no parameters), None where it returns an error (no type, a bad token
    after the slash, a malformed or repeated parameter)."""
    base, sep, params = value.partition(";")
    media = base.lower().strip()
    kind, rest = _go_token(media)
    if not kind:
        return None
    if rest:
        if not rest.startswith("/"):
            return None
        sub, rest = _go_token(rest[1:])
        if not sub or rest:
            return None
    v, seen = sep + params, set()
    while v:
        v = v.lstrip()
        if not v:
            break
        # consumeMediaParam: "; key = value"
        rest = v.lstrip()
        key = ""
        if rest.startswith(";"):
            key, rest = _go_token(rest[1:].lstrip())
            key = key.lower()
            rest = rest.lstrip()
        if key and rest.startswith("="):
            rest = rest[1:].lstrip()
            param, after = _go_value(rest)
            if param == "" and after == rest:
                key = ""
            rest = after
        else:
            key = ""
        if not key:
            if v.strip() == ";":
                break  # a trailing semicolon is no error
            return None
        if key in seen:
            return None  # "mime: duplicate parameter name"
        seen.add(key)
        v = rest
    return media


def _geth_http_refusal(request: web.Request, body_limit: int) -> web.Response | None:
    """geth v1.17 rpc/http.go Server.validateRequest, in its order: PUT and DELETE are 405
    "method not allowed" (aiohttp's own 405 page here before); a Content-Length past
    ``body_limit`` is 413 "content length too large (N>M)" whatever the type (a chunked
    body is cut at the limit instead: :meth:`Simulator._read_rpc_body`); an OPTIONS
    preflight (no CORS configured) passes whatever its type and is served as an empty body (answered
    with nothing); any other request whose Content-Type is not one of ``application/json``,
    ``application/json-rpc``, ``application/jsonrequest`` (Go's mime.ParseMediaType: any
    case, parameters allowed; a missing or malformed type is refused too) is 415 "invalid
    content type, only application/json is supported"."""
    if request.method in ("PUT", "DELETE"):
        return _go_http_error(405, "method not allowed")
    length = _go_content_length(request)
    if length > body_limit:
        return _go_http_error(413, f"content length too large ({length}>{body_limit})")
    if request.method == "OPTIONS":
        return None
    if _go_media_type(request.headers.get("Content-Type", "")) not in _JSON_TYPES:
        return _go_http_error(415, "invalid content type, only application/json is "
                                   "supported")
    return None


class Simulator:
    """A running mock node. ``async with Simulator(rec) as sim: ...`` in tests."""

    def __init__(self, recording: Recording | BlockSource, *,
                 settings: SimSettings | None = None,
                 speed: float = 1.0, host: str = "127.0.0.1", port: int = 0,
                 history: SimHistory | None = None, autostart: bool = True,
                 start_delay_s: float = 0.0,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        """``clock_ns``: the one clock of the replay, faults, explorer lag and history (the
        machine-wide monotonic clock; in virtual time, the event loop's)."""
        self.now_ns = clock_ns
        self.settings = settings or SimSettings()
        self.recording = recording
        # a streamed chain reads its history after the server listens (start-up at once)
        self.chain = Chain(recording, settings=self.settings, speed=speed, t0_ns=0,
                           defer_history=True)
        self.rpc = JsonRpc(self.chain, self.settings.node, clock_ns=clock_ns)
        self.history = history or SimHistory(keep=True, clock_ns=clock_ns)
        self.board = FaultBoard()
        self.nemesis = Nemesis(self.board)
        self.malformed: dict[str, dict[str, int]] = {}  # fault name -> kind -> items sent
        # each fault that gives no seed gets one of the run's seed ([chain] seed) and its
        # index (simulator.faults: Seeds); they all drew from seed 0 before
        self.plan = FaultPlan.parse(list(self.settings.faults)).seeded(self.settings.lag.seed)
        # the scheduled windows, made (and bounded: FaultError) now, not when the replay
        # starts (a task, or a /_sim/start request, where the error had no one to tell)
        self._windows = self.plan.windows(self._fault_horizon_s())
        self.telegram = TelegramBot()
        # aiohttp's server log: a request it cannot parse is one INFO line (the first few
        # a minute; the count of the others at the minute's end), not a traceback each
        self.http_log = BadRequestLog(logging.getLogger("aiohttp.server"),
                                      clock=lambda: clock_ns() / _NS)
        self.host = host
        self.port = port
        self.autostart = autostart
        self.start_delay_s = start_delay_s
        self.conns: dict[str, WsConn] = {}
        self.counts: dict[str, dict[str, int]] = {"rpc_http": {}, "rpc_ws": {},
                                                  "explorer": {}}
        self.urls: dict[str, str] = {}
        self.started = False
        self.published = asyncio.Condition()
        self._next_conn = 1
        self._wake = asyncio.Event()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._stream_error_noted = False
        self._loop_task: asyncio.Task[None] | None = None
        # the history blocks' rows, kept aside while the chain is primed (see _prime)
        self._history_rows: IO[str] | None = None
        # rows of reorgs made before the replay began, written after the history blocks'
        self._early_rows: list[tuple[str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._cap = ConnectionCap(
            self.settings.node.max_connections or default_max_connections(),
            lambda: self._runner.server if self._runner is not None else None,
            log=log, what="node (max_connections)", every_s=_REFUSAL_LOG_S)
        self._schedule: list[tuple[int, Any]] = []
        self._stop_tasks: set[asyncio.Task[Any]] = set()
        # ends the faults whose time is up while the replay is not running (a paused node)
        self._paused_expiry: asyncio.TimerHandle | None = None
        # ns each block_published row took to write (the history's cost to the path)
        self._history_write_ns: deque[int] = deque(maxlen=100_000)
        # the block _prepare made ready and, by id(sub), each logs subscription's
        # selection of its logs (the sub kept to check the id is its): _fan_out uses it
        # instead of selecting again (a selection a block per subscription, ~0.5 % of a
        # virtual run's CPU, was made twice)
        self._selected_for: ChainBlock | None = None
        self._selected: dict[int, tuple[_Sub, list[int]]] = {}
        self.explorer: Any = None
        self._make_explorer()

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=self.settings.node.http_body_limit)
        # one route for every method, dispatched as geth's httpServer.ServeHTTP does
        # (node/rpcstack.go): a WebSocket upgrade, else the HTTP JSON-RPC handler
        app.router.add_route("*", "/", self._root)
        app.router.add_get("/_sim/status", self._status)
        app.router.add_get("/_sim/faults", self._faults_list)
        app.router.add_post("/_sim/faults", self._faults_start)
        app.router.add_delete("/_sim/faults/{fault_id}", self._faults_stop)
        app.router.add_post("/_sim/reset", self._reset)
        app.router.add_post("/_sim/start", self._start_replay)
        app.router.add_route("*", "/bot{token}/{method}", self._telegram)
        if self.explorer is not None:
            from simulator.explorer import make_explorer_handler

            handler = make_explorer_handler(self.explorer, now_ns=self.now_ns,
                                            on_request=self._count_explorer,
                                            transform=self._explorer_faults)
            app.router.add_get("/v2/api", handler)
            app.router.add_get("/api", handler)
        # keepalive_timeout: a connection idle this long between requests is let go (geth's
        # IdleTimeout; aiohttp's default was an hour); before its first request it gets
        # the read timeout (_new_connection: nothing else bounded headers sent a byte at a
        # time, or a connection that sends nothing); lingering_time: how long the rest of
        # a body not read (refused, or too slow) is drained before the close;
        # auto_decompress off: geth (Go's net/http) reads a request body as it came, so a
        # body sent with Content-Encoding gzip is no JSON (-32700), and one of br or zstd
        # is not refused with aiohttp's 400 "Please install `Brotli`" (and a traceback)
        read_s = self.settings.node.http_read_timeout_s
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, auto_decompress=False,
                                     logger=self.http_log,
                                     keepalive_timeout=self.settings.node.http_idle_timeout_s,
                                     lingering_time=min(read_s, 10.0))
        await self._runner.setup()
        self._listener = await asyncio.get_running_loop().create_server(
            self._new_connection, self.host, self.port)
        port = self._listener.sockets[0].getsockname()[1]
        host = self.host if ":" not in self.host else f"[{self.host}]"
        base = f"http://{host}:{port}"
        self.port = port
        self.urls = {"ws": f"ws://{host}:{port}/", "http": base + "/",
                     "explorer": base + "/v2/api", "status": base + "/_sim/status",
                     "faults": base + "/_sim/faults", "telegram": base}
        delay_ns = int(self.start_delay_s * _NS)
        if self.chain.window is not None:
            # a streamed chain reads its history now, after listening, before any request
            # is read (the loop runs callbacks in order); the replay clock starts after it
            def prime_and_begin() -> None:
                self._prime()
                if self.autostart:
                    self.begin(self.now_ns() + delay_ns)

            asyncio.get_running_loop().call_soon(prime_and_begin)
        elif self.autostart:
            self.begin(self.now_ns() + delay_ns)

    def _new_connection(self) -> asyncio.Protocol:
        """The protocol of a new connection (the connection cap's): an HTTP one gets
        ``http_read_timeout_s`` for its first request's headers (geth's ReadHeaderTimeout),
        then aiohttp's keep-alive timeout (``http_idle_timeout_s``) bounds each wait for
        the next request."""
        protocol = self._cap.protocol()
        if isinstance(protocol, RequestHandler):
            asyncio.get_running_loop().call_later(
                self.settings.node.http_read_timeout_s, _first_request_due, protocol)
        return protocol

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 past ``max_connections``."""
        return self._cap.refused

    def _fault_horizon_s(self) -> float:
        """Simulated seconds the fault schedule covers: the replay's span (a streamed
        chain's end is not known yet: a week)."""
        span = self.chain.replay_span_s()
        return _STREAMED_HORIZON_S if span is None else span + 1.0

    def begin(self, t0_ns: int | None = None) -> None:
        """Start the replay clock: block 0 is due at ``t0_ns`` (default now)."""
        if self.started:
            return
        self.started = True
        self._disarm_paused_expiry()  # the replay loop ends the faults from now on
        self._prime()
        t0 = self.now_ns() if t0_ns is None else t0_ns
        self.chain.schedule = replace(self.chain.schedule, t0_ns=t0)
        speed = self.chain.speed
        self._schedule = [(t0 + int(w.start_s * _NS / speed), w) for w in self._windows]
        self.history.record("start", speed=speed, t0_ns=t0, first_block=self.chain.first_replayed,
                            ts0=self.chain.schedule.timestamps[0],
                            chain_id=self.chain.chain_id,
                            recording=self.recording.header(), urls=self.urls)
        self._record_history_blocks(t0)
        for event, fields in self._early_rows:  # reorgs of history blocks, in order
            self.history.record(event, t_ns=t0, **fields)
        self._early_rows.clear()
        self.history.flush()
        self._loop_task = asyncio.get_running_loop().create_task(self._replay_loop())
        self._loop_task.add_done_callback(self._replay_ended)

    def _replay_ended(self, task: asyncio.Task[None]) -> None:
        """The replay loop ends only when stopped; if a defect ended it, the node went on
        answering with a chain that no longer moved, and nothing said so until stop()
        raised the error (skipping the rest of the shutdown and the ``stop`` row). Now one
        log line with the traceback, and a ``recording_error`` row: the run replayed less
        than planned, so it cannot pass for whole."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("the replay stopped: %s: %s", type(exc).__name__, exc, exc_info=exc)
        self.history.record("recording_error",
                            error=f"the replay stopped: {type(exc).__name__}: {exc}",
                            blocks=self.chain.published)
        self.history.flush()

    def _prime(self) -> None:
        """Publish a streamed chain's history; each block's history row is written aside
        (a temporary file, not memory: a week's history is large) while the block is in
        hand, for :meth:`_record_history_blocks`. Reading the blocks again there
        regenerated or re-read every one: 1,400 busy blocks of a recording took 135 s
        before the first block was replayed."""
        if self.chain.primed:
            return
        rows = self._history_file()

        def keep(block: ChainBlock) -> None:
            rows.write(json.dumps(_history_block_fields(block), separators=(",", ":")) + "\n")

        try:
            self.chain.prime(on_history=keep)
        except BaseException:
            rows.close()
            raise
        self._history_rows = rows

    @staticmethod
    def _history_file() -> IO[str]:
        return tempfile.TemporaryFile(  # closed once written, or at stop
            "w+", encoding="utf-8", prefix="sim-history-")

    def _keep_history_rows(self) -> None:
        """Before a reorg that comes ahead of :meth:`begin`: the history blocks' rows as
        they are now (an in-memory chain's are otherwise read from its blocks at begin,
        when a reorg has replaced some of them). A streamed chain's are kept already."""
        if self.started or self._history_rows is not None or not self.chain.primed:
            return
        rows = self._history_file()
        for i in range(self.chain.history):
            try:
                block = self.chain.blocks[i]
            except (IndexError, KeyError, ValueError):
                continue
            rows.write(json.dumps(_history_block_fields(block), separators=(",", ":")) + "\n")
        self._history_rows = rows

    def _record_history_blocks(self, t0: int) -> None:
        """The blocks served as already published before the replay are part of the chain
        the node answers for: they go into the history too (``history: true``, visible
        from the start), so a truth built from the history includes their trades."""
        rows, self._history_rows = self._history_rows, None
        if rows is not None:
            with rows:
                rows.seek(0)
                for line in rows:
                    self.history.record("block_published", t_ns=t0, **json.loads(line),
                                        history=True)
            return
        for i in range(self.chain.history):
            try:
                block = self.chain.blocks[i]
            except (IndexError, KeyError, ValueError):
                continue
            self.history.record("block_published", t_ns=t0, **_history_block_fields(block),
                                history=True)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # no new connections
        if self._loop_task is not None:
            self._loop_task.cancel()
            # an error that ended it is logged and in the history already (_replay_ended)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
            self._loop_task = None
        for task in list(self._stop_tasks):
            task.cancel()
        self._disarm_paused_expiry()
        closing = []
        for conn in list(self.conns.values()):
            conn.closed = True
            conn.wake.set()
            closing.append(conn.ws.close(code=1001, message=b"server shutdown"))
        if closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.http_log.close()
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._history_rows is not None:  # primed, never begun
            self._history_rows.close()
            self._history_rows = None
        for fault in list(self.board.active.values()):
            self._stop_fault(fault)
        self._record_indexed(self.now_ns())  # index times passed since the last turn
        self.history.record("stop", head=self.chain.head_number,
                            history_write_ns=_spread(self._history_write_ns))
        self._flush_history()

    def _make_explorer(self) -> None:
        try:
            from simulator.explorer import Explorer, explorer_settings_from
        except ImportError:  # the explorer package is optional for the node itself
            log.warning("simulator.explorer is not available: no explorer API")
            return
        try:
            explorer_settings = explorer_settings_from(
                self.settings.explorer, speed=self.chain.speed, retain_blocks=self.chain.window,
                archive=self.chain.window is not None)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        self.explorer = Explorer(explorer_settings, self.chain,
                                 node_head=lambda: max(self.chain.head_number, 0))

    # -- replay ----------------------------------------------------------------------------
    async def _replay_loop(self) -> None:
        chain = self.chain
        while True:
            now = self.now_ns()
            # scheduled fault starts and stops, and blocks, go in the order of their times
            # even when this turn comes late: the faults due by the next block's due time,
            # then the blocks due before the next fault event
            due = chain.next_publish_ns()
            self._run_fault_schedule(now if due is None else min(now, due))
            upto = now
            event = self._next_fault_event_ns()
            if event is not None:
                upto = min(upto, event - 1)
            # a streamed chain reads (synthesises, ~15 ms a busy block) blocks as it
            # publishes: one per turn, so at maximum speed a request waits one block, not
            # four, at each of the loop turns it needs (the first answer after start-up)
            blocks = chain.advance(upto, limit=_PUBLISH_BATCH if chain.window is None else 1)
            if chain.stream_error is not None and not self._stream_error_noted:
                # the replay goes on with the blocks it has; the run must not pass for whole
                self._stream_error_noted = True
                self.history.record("recording_error", error=chain.stream_error,
                                    blocks=chain.published)
                self._flush_soon()
            fanned: list[tuple[ChainBlock, int, int]] = []
            for block in blocks:
                # t_ns = published (the checker's "visible"); the notifications are built
                # and queued (fanout_ns)
                t_pub = self.now_ns()
                self._fan_out(block)
                fanned.append((block, t_pub, self.now_ns()))
            if blocks:  # the due frames leave now, then the rows are written (timed)
                for conn in list(self.conns.values()):
                    conn.write_due()
            for block, t_pub, t_fan in fanned:
                t_row = self.now_ns()
                self.history.record("block_published", t_ns=t_pub,
                                    **_history_block_fields(block), fanout_ns=t_fan - t_pub)
                self._history_write_ns.append(self.now_ns() - t_row)
            self._record_indexed(now)
            if blocks:
                async with self.published:
                    self.published.notify_all()
                await self._pace()  # let the writers send this block's frames first
                # the rows reach the file after the frames left (a write(2) off the path)
                self._flush_history()
                continue
            # an explorer_indexed row carries its own time: it is written at the turn after
            # it (the next block's); the replay wakes for it only once no block is to come
            next_publish = chain.next_publish_ns()
            upcoming = chain.upcoming() if next_publish is not None else None
            if upcoming is not None:
                # idle until it is due: build its JSON and filter index now, not between
                # publishing it and its frames leaving (the same text, built once either way)
                self._prepare(upcoming)
            wakes = [t for t in (next_publish if next_publish is not None
                                 else chain.next_index_ns(),
                                 self.board.next_stop_ns(),
                                 self._schedule[0][0] if self._schedule else None)
                     if t is not None]
            self._wake.clear()
            # sleep until the next thing to do (nothing: until a fault is started); rows
            # written meanwhile (requests) are flushed by their own timer, _flush_soon
            timeout = None if not wakes else max(min(wakes) - self.now_ns(), 0) / _NS
            if timeout is not None and timeout <= 0:
                await asyncio.sleep(0)
                continue
            self._flush_history()
            # a timer that sets the event, not wait_for: no task to create and cancel (in
            # virtual time every sleep is a jump of the clock: ~1,800 a simulated hour)
            timer = None if timeout is None else \
                asyncio.get_running_loop().call_later(timeout, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def _record_indexed(self, now: int) -> None:
        """``explorer_indexed`` rows of the blocks whose index time passed by ``now``, each
        stamped with its index time (written at the replay's turns, and at stop)."""
        indexed = False
        for block in self.chain.newly_indexed(now):
            indexed = True
            self.history.record("explorer_indexed", number=block.number, hash=block.hash,
                                t_ns=block.indexed_ns)
        if indexed and self.explorer is not None:
            # a streamed chain's explorer indexes each block while the chain holds it (an
            # outage or a quiet hour must not leave blocks it can no longer answer)
            self.explorer.keep_up(now)

    async def _pace(self) -> None:
        """Let the writers catch up when some client has a long queue (a replay faster
        than its clients read, at maximum speed): the replay waits for those queues to
        drain, at most :data:`_PACE_S` for all of them together, and while it is on
        schedule no later than the next block's due time. It waited up to 0.5 s for each
        such client in turn: ten clients that never read made every block 5 s late for
        everyone. A client that never reads is dropped by ``notify_buffer_bytes``."""
        await asyncio.sleep(0)
        backed = [c for c in self.conns.values() if len(c.queue) > _HIGH_WATER and not c.closed]
        if not backed:
            return
        now = self.now_ns()
        wait_ns = _PACE_S * _NS
        due = self.chain.next_publish_ns()
        if due is not None and due > now:
            wait_ns = min(wait_ns, due - now)
        loop = asyncio.get_running_loop()
        waits = [loop.create_task(c.drained.wait()) for c in backed]
        try:
            # asyncio.wait, not wait_for: on 3.11 wait_for swallowed the replay's
            # cancellation when a queue drained in the same turn, and stop() hung
            await asyncio.wait(waits, timeout=wait_ns / _NS)
        finally:
            for task in waits:
                task.cancel()

    def _prepare(self, block: ChainBlock) -> None:
        """Build what publishing ``block`` needs (its caches: the header's JSON, the filter
        index, the JSON of the logs the subscriptions select, the history row's
        ``order_filled``), nothing queued. The next block's, while the replay waits for it
        to be due."""
        block.order_filled()
        if self._selected_for is not block:
            self._selected_for, self._selected = block, {}
        selected = self._selected
        for conn in list(self.conns.values()):
            for sub in list(conn.subs.values()):
                if sub.kind == "newHeads":
                    block.header_json()
                elif sub.flt is not None:
                    kept = selected.get(id(sub))
                    if kept is not None and kept[0] is sub:
                        continue  # selected at an earlier idle turn for this block
                    picked = sub.flt.select(block.index)
                    selected[id(sub)] = (sub, picked)
                    for i in picked:
                        block.log_json(i)

    def _selection(self, block: ChainBlock, sub: _Sub) -> list[int]:
        """The indexes of ``block``'s logs that ``sub``'s filter selects: the list
        :meth:`_prepare` made for it (the same filter over the same block index: the same
        list), else selected now (a subscription made after it, or a reorg's block)."""
        if self._selected_for is block:
            kept = self._selected.get(id(sub))
            if kept is not None and kept[0] is sub:
                return kept[1]
        assert sub.flt is not None
        return sub.flt.select(block.index)

    def _fan_out(self, block: ChainBlock, *, heads: bool = True, logs: bool = True) -> None:
        """The block's notifications: its header to newHeads subscriptions (``heads``),
        its logs to logs subscriptions and poll filters (``logs``)."""
        self.rpc.poll_filters.on_block(block, head=heads, logs=logs)
        head = None
        logs_first = self.settings.node.logs_before_heads
        for conn in list(self.conns.values()):
            subs = list(conn.subs.values())
            if logs_first:  # (a stable sort: the logs subscriptions keep their order)
                subs.sort(key=_is_heads)
            for sub in subs:
                if sub.kind == "newHeads":
                    if not heads:
                        continue
                    if head is None:
                        head = block.header_json()
                    conn.notify(sub, head)
                elif sub.flt is not None and logs:  # logs (newPendingTransactions: none)
                    if (sub.lo is not None or sub.hi is not None) and sub.skips(block.number):
                        continue
                    for i in self._selection(block, sub):
                        conn.notify(sub, block.log_json(i))
        if logs and self._selected_for is block:  # each block is fanned out once
            self._selected_for, self._selected = None, {}

    def _fan_out_removed(self, block: ChainBlock) -> None:
        self.rpc.poll_filters.on_removed(block)
        for conn in list(self.conns.values()):
            for sub in list(conn.subs.values()):
                if sub.kind == "logs":
                    assert sub.flt is not None
                    if sub.skips(block.number):
                        continue
                    for i in sub.flt.select(block.index):
                        conn.notify(sub, block.removed_log_json(i))

    async def wait_published(self, n: int, timeout: float = 30.0) -> None:
        """Wait until at least ``n`` blocks are published (tests)."""
        async def _wait() -> None:
            async with self.published:
                await self.published.wait_for(lambda: self.chain.published >= n)
        await asyncio.wait_for(_wait(), timeout)

    # -- faults ------------------------------------------------------------------------------
    def _run_fault_schedule(self, upto: int) -> None:
        """Start the scheduled faults and stop the expired ones whose times are at most
        ``upto``, in time order, each at its scheduled time (a late turn does not move a
        window: it starts and stops where the schedule puts it among the blocks)."""
        while True:
            start = self._schedule[0][0] if self._schedule else None
            if start is not None and start > upto:
                start = None
            stops = [f for f in self.board.expired(upto)
                     if start is None or f.stop_ns is None or f.stop_ns <= start]
            if stops:
                fault = min(stops, key=lambda f: f.stop_ns or 0)
                self._stop_fault(fault, t_ns=fault.stop_ns)
                continue
            if start is None:
                return
            at, window = self._schedule.pop(0)
            if self.chain.exhausted():  # the replay is over: no new faults on a still chain
                self._schedule.clear()
                continue
            duration = None if window.stop_s is None else window.stop_s - window.start_s
            self.start_fault(window.spec.name, window.spec.target, window.spec.params,
                             duration_s=duration, at_ns=at)

    def _next_fault_event_ns(self) -> int | None:
        """When the next scheduled fault starts or an active one ends (None: neither)."""
        times = [t for t in (self._schedule[0][0] if self._schedule else None,
                             self.board.next_stop_ns()) if t is not None]
        return min(times) if times else None

    def start_fault(self, name: str, target: str | None = None,
                    params: dict[str, Any] | None = None, *,
                    duration_s: float | None = None, at_ns: int | None = None) -> ActiveFault:
        """Start a fault now (raises :class:`FaultError` for a bad request); ``at_ns``: the
        time it was scheduled for (its window counts from there; default now)."""
        spec = make_spec(name, target, params)
        if duration_s is not None:
            check_duration(duration_s, "duration")
        now = self.now_ns() if at_ns is None else at_ns
        one_shot = KINDS[spec.name].one_shot and not duration_s
        duration_ns = None if duration_s is None else int(duration_s * _NS / self.chain.speed)
        fault = self.board.start(spec, now, 0 if one_shot else duration_ns)
        self.history.record("fault_start", t_ns=now, fault_id=fault.id, name=spec.name,
                            target=spec.target, params=spec.params)
        self._apply(fault)
        if one_shot:
            self._stop_fault(fault, t_ns=now)
        elif not self.started:
            self._arm_paused_expiry()
        self.history.flush()
        self._wake.set()
        return fault

    def _arm_paused_expiry(self) -> None:
        """Before the replay runs (``--paused``), end each fault when its duration is up:
        a duration counts from the fault's start on the node's clock, paused or not (the
        replay loop, which ends them once it runs, did not run, so a 10-s fault posted to
        a paused node lasted until the replay started, and then ended at once)."""
        self._disarm_paused_expiry()
        due = self.board.next_stop_ns()
        if due is None or self.started:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: ended at begin or stop
            self._paused_expiry = asyncio.get_running_loop().call_later(
                max(due - self.now_ns(), 0) / _NS, self._expire_paused)

    def _disarm_paused_expiry(self) -> None:
        if self._paused_expiry is not None:
            self._paused_expiry.cancel()
            self._paused_expiry = None

    def _expire_paused(self) -> None:
        self._paused_expiry = None
        if self.started:
            return
        now = self.now_ns()
        for fault in sorted(self.board.expired(now), key=lambda f: f.stop_ns or 0):
            self._stop_fault(fault, t_ns=fault.stop_ns)
        self.history.flush()
        self._arm_paused_expiry()

    def stop_fault(self, fault_id: str) -> bool:
        fault = self.board.active.get(fault_id)
        if fault is None:
            return False
        self._stop_fault(fault)
        return True

    def reset(self) -> None:
        # the history blocks' rows kept aside (primed, not begun) stay: begin writes them
        for fault in list(self.board.active.values()):
            self._stop_fault(fault)
        if self.explorer is not None:
            self.explorer.reset()

    @contextlib.asynccontextmanager
    async def fault(self, name: str, target: str | None = None,
                    params: dict[str, Any] | None = None) -> AsyncIterator[ActiveFault]:
        """``async with sim.fault("ws_stall"): ...``: the fault lasts for the block."""
        fault = self.start_fault(name, target, params)
        try:
            yield fault
        finally:
            self.stop_fault(fault.id)

    def _hit(self, fault: ActiveFault) -> list[WsConn]:
        return [c for c in self.conns.values() if fault.hits(c.id)]

    def _apply(self, fault: ActiveFault) -> None:
        """Carry out what the nemesis says a starting fault does, then re-sync the hooks."""
        for command in self.nemesis.start(fault):
            if isinstance(command, Abort):
                for conn in self._hit(fault):
                    conn.abort()
            elif isinstance(command, Close):
                for conn in self._hit(fault):
                    conn.closed = True
                    conn.discard_queue()
                    task = asyncio.get_running_loop().create_task(
                        conn.ws.close(code=command.code, message=command.reason.encode()))
                    self._stop_tasks.add(task)
                    task.add_done_callback(self._stop_tasks.discard)
            elif isinstance(command, Reorg):
                self._record_indexed(self.now_ns())  # blocks it may orphan were indexed
                self._keep_history_rows()  # a reorg of history blocks before the replay
                result = self.chain.reorg(command.depth, self.now_ns(),
                                          seed=command.seed, move_share=command.move_share,
                                          vanish_share=command.vanish_share)
                if result is not None:
                    self._publish_reorg(result, heads=command.heads,
                                        removed_logs=command.removed_logs)
        self._sync_hooks()

    def _publish_reorg(self, result: ReorgResult, *, heads: str = "each",
                       removed_logs: bool = True) -> None:
        # before the replay began (a paused node), the reorg replaced history blocks whose
        # rows are written at begin: its rows follow them there (visible from the start)
        early = not self.started
        reorg: dict[str, Any] = {"depth": result.depth, "from_number": result.from_number,
                                 "old_hashes": [b.hash for b in result.old],
                                 "new_hashes": [b.hash for b in result.new]}
        if early:
            self._early_rows.append(("reorg", reorg))
        else:
            self.history.record("reorg", **reorg)
        # geth sends the orphans' logs in forward order, the oldest orphan first
        # (core/blockchain.go reorg: "uses forward order ... for legacy reasons"): a client
        # reading the first removed log as the fork point finds the right block.
        # removed_logs False: a provider that drops them (the heads alone show the reorg)
        for block in result.old:
            self.rpc.keep_orphan(block)
            if removed_logs:
                self._fan_out_removed(block)
        # heads "each": a header for every new block, each before its logs (blocks
        # imported one at a time). "top": geth importing a side chain that overtakes at
        # once - reorg() sends the removed logs, then the new branch's logs (all but the
        # top's), and writeBlockAndSetHead the top's logs and ONE head event, the new
        # top's. Assumed order on the wire: removed logs, new logs oldest block first, the
        # top's header last (geth's feeds reach a subscriber through separate channels,
        # so a client cannot rely on a head before or after the logs). Poll filters alike:
        # a block filter gets the top's hash only (geth v1.17: ChainEvent, the block
        # filter's feed, is sent for the new head alone; PollFilters.on_block).
        for i, block in enumerate(result.new):
            if early:
                self._early_rows.append(("block_published", {
                    **_history_block_fields(block), "history": True}))
            else:
                self.history.record("block_published", t_ns=block.visible_ns,
                                    **_history_block_fields(block))
            if heads == "each":
                self._fan_out(block)
            else:
                self._fan_out(block, heads=False)
                if i == len(result.new) - 1:
                    self._fan_out(block, logs=False)

    def _sync_hooks(self) -> None:
        """Explorer and lag hooks follow the active faults."""
        effects = self.nemesis.explorer()
        self.chain.lag_extra_s = effects.lag_extra_s
        if self.explorer is not None:
            self.explorer.faults.rate_limit = effects.rate_limit
            self.explorer.faults.down = effects.down

    def record_malformed(self, injection: Injection, api: str, **fields: Any) -> None:
        """One malformed item put on the wire: a history row and a counter, by kind."""
        kinds = self.malformed.setdefault(injection.name, {})
        kinds[injection.kind] = kinds.get(injection.kind, 0) + 1
        self.history.record("malformed", fault_id=injection.fault_id, name=injection.name,
                            kind=injection.kind, api=api, **fields)
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Rows written between replay turns (requests, malformed items) reach the history
        file within :data:`_FLUSH_S` of loop time: at the replay's next turn, or by a timer
        armed now (one at a time; the replay's flush disarms it)."""
        if self._flush_timer is None and self.history.to_file:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at stop
                self._flush_timer = asyncio.get_running_loop().call_later(
                    _FLUSH_S, self._flush_history)

    def _flush_history(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.history.flush()

    def _stop_fault(self, fault: ActiveFault, t_ns: int | None = None) -> None:
        if self.board.stop(fault.id) is None:
            return
        self.history.record("fault_stop", t_ns=t_ns, fault_id=fault.id, name=fault.spec.name,
                            target=fault.spec.target, params=fault.spec.params)
        self._sync_hooks()
        for conn in self.conns.values():
            conn.wake.set()

    # -- counting ----------------------------------------------------------------------------
    def _count(self, api: str, method: str, key: str, status: str) -> None:
        table = self.counts[api]
        label = f"{key}/{method}" if api == "explorer" else method
        if label not in table and len(table) >= _MAX_COUNT_LABELS:
            label = "other"  # a flood of distinct keys must not grow the table forever
        table[label] = table.get(label, 0) + 1
        self.history.record("request", api=api, method=method, key=key, status=status)
        self._flush_soon()

    def _count_rpc(self, api: str, reply: Reply) -> None:
        for call in reply.calls:
            self._count(api, call.method, "", call.status)

    def _count_explorer(self, reply: Any) -> None:
        status = {"ok": "ok", "empty": "ok", "rate_limited": "rate_limited"}.get(
            reply.outcome, "error")
        self._count("explorer", f"{reply.module or '-'}.{reply.action or '-'}",
                    reply.key_masked, status)

    def _explorer_faults(self, reply: Any) -> Any:
        """The explorer's reply as the active faults change it (malformed answers)."""
        if not self.board.active:
            return reply
        answer = self.nemesis.explorer_reply(ReplyCtx(
            (f"{reply.module or '-'}.{reply.action or '-'}",), reply.http_status,
            reply.content_type, reply.body))
        if answer is None:
            return reply
        for injection in answer.injections:
            self.record_malformed(injection, "explorer")
        return replace(reply, http_status=answer.status, content_type=answer.content_type,
                       body=answer.body)

    # -- handlers -----------------------------------------------------------------------------
    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        node = self.settings.node
        # decode_text off: a text message is read as bytes, as gorilla's reader does (no
        # UTF-8 check: invalid bytes in a string are U+FFFD to Go's decoder, and outside
        # one an invalid character); aiohttp closed such a connection 1007 instead
        ws = web.WebSocketResponse(autoping=False, max_msg_size=node.ws_read_limit,
                                   compress=False, decode_text=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a WebSocket upgrade or a "
                                                 "JSON-RPC POST\n")
        refuse = self.nemesis.upgrade() if self.board.active else None
        if refuse is not None:
            if refuse.mode == "reset" and request.transport is not None:
                request.transport.abort()  # the TCP connection dies before the upgrade
            return web.Response(status=503, text="503 Service Unavailable\n")
        try:
            await ws.prepare(request)
        except ConnectionError:  # the client gave up before the upgrade was answered
            log.info("upgrade from %s: client gone before the handshake", request.remote)
            return web.Response(status=499)  # nobody reads it; aiohttp drops it quietly
        conn_id = f"c{self._next_conn}"
        self._next_conn += 1
        conn = WsConn(self, conn_id, ws, request)
        self.conns[conn_id] = conn
        conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
        if conn.ping_interval_s is not None:
            conn.pinger = asyncio.get_running_loop().create_task(
                conn.ping_loop(conn.ping_interval_s))
        log.info("conn %s: open from %s", conn_id, request.remote)
        try:
            async for msg in ws:
                if conn.closed:
                    break
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if conn.stalled():
                        continue
                    read = read_ws_message(msg.data, max_depth=node.max_json_depth)
                    if read.body is None:
                        await self._ws_read_failed(conn, read.reply)
                        break
                    await self._ws_call(conn, read.body, read)
                    # a client that sends and does not read: its next request waits
                    # (it was read at once, and the answers piled up: +28 MB each)
                    await conn.wait_for_room()
                elif msg.type == WSMsgType.PING:
                    if not conn.stalled():
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    if not conn.stalled():
                        conn.pong()
                elif msg.type == WSMsgType.ERROR:
                    log.info("conn %s: %s", conn_id, msg.data)
                    break
        except (ConnectionError, RuntimeError) as exc:
            log.info("conn %s: read failed (%s)", conn_id, type(exc).__name__)
        finally:
            conn.closed = True
            conn.wake.set()
            self.conns.pop(conn_id, None)
            for task in list(conn.call_tasks):
                task.cancel()
            if conn.pinger is not None and conn.pinger is not asyncio.current_task():
                conn.pinger.cancel()
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.writer
            log.info("conn %s: closed", conn_id)
        return ws

    async def _ws_read_failed(self, conn: WsConn, reply: str | None) -> None:
        """A message geth's reader stops at (rpc/client.go ``read``): a JSON syntax error
        gets its -32700 answer (``reply``), an empty or truncated message none; then read
        returns and the connection closes - geth v1.17.5 websocketCodec.close sends a close
        frame 1000 first. Answers queued before it go out first, and so do those of the
        calls still running: geth's handler.close waits for them (``callWG.Wait()``)
        before the codec closes (they were cancelled: a call sent before the bad message
        never got its answer)."""
        self._count_rpc("rpc_ws", Reply(reply, [Call("?", "error")]))
        if reply is not None:
            conn.send(reply)
        if conn.call_tasks:
            await asyncio.wait(set(conn.call_tasks), timeout=_READ_FAILED_CALLS_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.drained.wait(), _READ_FAILED_FLUSH_S)
        log.info("conn %s: %s, closing as geth does", conn.id,
                 "not JSON" if reply is not None else "message ended before a JSON value")
        conn.closed = True
        conn.wake.set()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.close(code=1000, message=b"")

    async def _ws_call(self, conn: WsConn, body: str | bytes,
                       read: WsRead | None = None) -> None:
        """Answer one WebSocket message: at once when it needs no step (almost every
        call), else in a task of its own (at most :data:`_WS_CALLS` a connection), so
        the calls read after it are answered meanwhile, as geth answers them."""
        host = _CallHost(conn)
        steps = self.rpc.steps(body, host, read)
        try:
            next(steps)
        except StopIteration as done:
            self._ws_answer(conn, host, done.value)
            return
        await conn.calls.acquire()
        if conn.closed:
            conn.calls.release()
            return
        task = asyncio.get_running_loop().create_task(self._ws_finish(conn, host, steps))
        conn.call_tasks.add(task)
        task.add_done_callback(conn.call_tasks.discard)

    async def _ws_finish(self, conn: WsConn, host: _CallHost,
                         steps: Steps) -> None:
        """The rest of a call's steps, letting the loop run between them; then its answer."""
        try:
            while True:
                await asyncio.sleep(0)
                try:
                    next(steps)
                except StopIteration as done:
                    reply: Reply = done.value
                    break
            self._ws_answer(conn, host, reply)
        finally:
            conn.calls.release()

    def _ws_answer(self, conn: WsConn, host: _CallHost, reply: Reply) -> None:
        self._count_rpc("rpc_ws", reply)
        if reply.text is not None:
            conn.send(reply.text)
        host.activate()  # the new subscriptions' notifications follow the answer

    async def _handle_rpc(self, body: str | bytes, host: WsConn | None,
                          rpc: JsonRpc | None = None, read: WsRead | None = None) -> Reply:
        """Answer a JSON-RPC body, letting the loop run between its steps (blocks it had
        rebuilt, far back): the replay and the other clients go on meanwhile. ``rpc``: the
        node that answers (default the node at the head)."""
        steps = (rpc or self.rpc).steps(body, host, read)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                reply: Reply = done.value
                return reply
            await asyncio.sleep(0)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        """``/``: geth v1.17 node/rpcstack.go httpServer.ServeHTTP: a request with
        ``Upgrade: websocket`` and ``Connection: upgrade`` (isWebsocket) goes to the
        WebSocket handler, any other to the HTTP one, whatever its method (geth's
        rpc/http.go then decides: see :func:`_geth_http_refusal`)."""
        if _is_websocket(request):
            return await self._ws_handler(request)
        return await self._http_handler(request)

    async def _http_handler(self, request: web.Request) -> web.StreamResponse:
        if (request.method == "GET" and _go_content_length(request) == 0
                and not request.query_string):
            # geth v1.17 rpc/http.go Server.ServeHTTP: a "dumb empty" GET (no body, no
            # query: a remote health check) is 200 with nothing. Any other GET, and HEAD,
            # goes on as a POST does: validateRequest (no JSON content type: 415), then
            # its body served (none: answered with nothing). Gzip's writer is made at the
            # WriteHeader, so an empty gzip stream is the body for a client asking gzip
            # (aiohttp adds a Content-Type to a body: geth sends none)
            if _go_accepts_gzip(request):
                return await _go_gzipped(request, 200, b"", {})
            return web.Response(status=200)
        answer = self.nemesis.http() if self.board.active else None
        if answer is not None:
            self._count("rpc_http", "?", "", "error")
            return await self._answer(answer)
        limit = self.settings.node.http_body_limit
        refusal = _geth_http_refusal(request, limit)
        if refusal is not None:
            self._count("rpc_http", "?", "", "error")
            if _go_accepts_gzip(request) and isinstance(refusal.body, bytes):
                # http.Error inside geth's handler stack: compressed as any answer
                return await _go_gzipped(request, refusal.status, refusal.body,
                                         dict(refusal.headers))
            return refusal
        try:
            body = await self._read_rpc_body(request, limit)
        except TimeoutError:
            self._count("rpc_http", "?", "", "error")
            response = web.Response(status=408, text="request body not received in time\n")
            response.force_close()
            return response
        if not body.strip(b" \t\r\n"):
            # geth v1.17 rpc/server.go serveSingleRequest: a body with no JSON value
            # (empty, or only JSON's white space: the decoder's io.EOF) is answered with
            # nothing (messageForReadError(io.EOF) is ""), not a parse error; an OPTIONS
            # preflight without CORS configured gets this too
            return web.Response(body=b"", content_type="application/json")
        read = read_http_body(body, max_depth=self.settings.node.max_json_depth)
        if read.body is None:
            reply = Reply(read.reply, [Call("?", "error")], plain=True)  # a parse error
        else:
            lag = self.nemesis.http_lag() if self.board.active else 0
            reply = await self._handle_rpc(read.body, None,
                                           self.rpc.lagging(lag) if lag else None, read)
        self._count_rpc("rpc_http", reply)
        text = (reply.text or "").encode()
        if self.board.active:
            changed = self.nemesis.http_reply(ReplyCtx(
                tuple(c.method for c in reply.calls), 200, "application/json", text))
            if changed is not None:
                return await self._answer(changed, "rpc_http")
        if text and not reply.plain and _go_accepts_gzip(request):
            # geth v1.17 node/rpcstack.go newGzipHandler: every answer of the HTTP handler
            # stack to a client asking gzip, small ones too; an error of the body as a
            # whole (reply.plain: httpWrite's isError sets Transfer-Encoding identity, the
            # gzip writer's passthrough) and an answer with no body are sent as they are
            return await _go_gzipped(request, 200, text,
                                     {"Content-Type": "application/json"})
        return web.Response(body=text, content_type="application/json")

    async def _answer(self, answer: HttpAnswer, api: str = "") -> web.Response:
        """Send an answer a fault made (after its hold time), recording malformed items."""
        for injection in answer.injections:
            self.record_malformed(injection, api)
        if answer.hold_s:
            await asyncio.sleep(answer.hold_s / self.chain.speed)
        return web.Response(status=answer.status, body=answer.body,
                            headers={"Content-Type": answer.content_type})

    def status(self) -> dict[str, Any]:
        head = self.chain.head
        return {
            "head": None if head is None else {"number": head.number, "hash": head.hash},
            "published": self.chain.published,
            "blocks": len(self.chain.blocks),
            "window": self.chain.window,
            "exhausted": self.chain.exhausted(),
            "speed": self.chain.speed,
            "clients": len(self.conns),
            "subscriptions": sum(len(c.subs) for c in self.conns.values()),
            "connections": {c.id: len(c.subs) for c in self.conns.values()},
            "requests": self.counts,
            "faults": [f.to_dict() for f in self.board.active.values()],
            "malformed": self.malformed,
            "explorer_indexed_head": getattr(self.explorer, "indexed_head", None),
            "urls": self.urls,
        }

    @staticmethod
    def _no_query(request: web.Request, allowed: frozenset[str] = frozenset()) -> None:
        bad = [k for k in request.query if k not in allowed]
        if bad:
            raise web.HTTPBadRequest(text=json.dumps(
                {"error": f"unknown query parameter {bad[0]!r}"}),
                content_type="application/json")

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self._no_query(request)
        return web.json_response(self.status())

    async def _faults_list(self, request: web.Request) -> web.StreamResponse:
        self._no_query(request)
        return web.json_response({"faults": [f.to_dict() for f in self.board.active.values()],
                                  "scheduled": len(self._schedule)})

    async def _json_body(self, request: web.Request) -> Any:
        """The request body parsed with the node's bounds; raises :class:`JsonInputError`
        (also for a body over the HTTP body limit)."""
        try:
            raw = await self._read_body(request)
        except web.HTTPRequestEntityTooLarge:
            raise JsonInputError("body too large") from None
        except TimeoutError:
            raise JsonInputError("body not received in time") from None
        return parse_json(raw, max_depth=self.settings.node.max_json_depth)

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, read within ``http_read_timeout_s`` (``TimeoutError`` past it: a
        client that sent its body a byte at a time held the connection for ever)."""
        async with asyncio.timeout(self.settings.node.http_read_timeout_s):
            return await request.read()

    async def _read_rpc_body(self, request: web.Request, limit: int) -> bytes:
        """A JSON-RPC body as geth v1.17 rpc/http.go newHTTPServerConn reads it, through
        ``io.LimitReader``: at most ``limit`` bytes (a chunked body, whose length was not
        refused, is cut there: what is left is mostly no JSON, a parse error), within
        ``http_read_timeout_s``."""
        parts: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.settings.node.http_read_timeout_s):
            while size < limit:
                part = await request.content.read(limit - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        return b"".join(parts)

    async def _faults_start(self, request: web.Request) -> web.StreamResponse:
        self._no_query(request)
        try:
            body = await self._json_body(request)
        except JsonInputError as exc:
            return web.json_response({"error": f"body is not usable JSON: {exc}"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        unknown = set(body) - {"name", "target", "params", "duration"}
        if unknown:
            return web.json_response({"error": f"unknown field {sorted(unknown)[0]!r}"},
                                     status=400)
        name = body.get("name")
        if not isinstance(name, str):
            return web.json_response({"error": "name: expected a fault name"}, status=400)
        try:
            fault = self.start_fault(name, body.get("target"), body.get("params"),
                                     duration_s=body.get("duration"))
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"id": fault.id, "fault": fault.to_dict()})

    async def _faults_stop(self, request: web.Request) -> web.StreamResponse:
        self._no_query(request)
        fault_id = request.match_info["fault_id"]
        if not self.stop_fault(fault_id):
            return web.json_response({"error": f"no active fault {fault_id!r}"}, status=404)
        return web.json_response({"stopped": fault_id})

    async def _start_replay(self, request: web.Request) -> web.StreamResponse:
        """``POST /_sim/start``: start a ``--paused`` replay now (idempotent)."""
        self._no_query(request)
        already = self.started
        self.begin()
        return web.json_response({"ok": True, "already_started": already,
                                  "t0_ns": self.chain.schedule.t0_ns})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self._no_query(request)
        self.reset()
        return web.json_response({"ok": True})

    async def _telegram(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        token = request.match_info["token"]
        if method.lower() != "sendmessage":
            return web.json_response({"ok": False, "error_code": 404,
                                      "description": "Not Found"}, status=404)
        fields: dict[str, Any] | None = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            try:
                if ctype == "application/json":
                    body = await self._json_body(request)
                    fields = {**(fields or {}), **body} if isinstance(body, dict) else None
                else:
                    async with asyncio.timeout(self.settings.node.http_read_timeout_s):
                        form = await request.post()
                    fields = {**(fields or {}), **{k: str(v) for k, v in form.items()}}
            except (JsonInputError, UnicodeDecodeError, ValueError, TimeoutError,
                    web.HTTPRequestEntityTooLarge):
                return web.json_response({"ok": False, "error_code": 400, "description":
                                          "Bad Request: can't parse JSON"}, status=400)
        reply = self.telegram.send_message(token, fields, time.time())
        if reply.alert is not None:
            self.history.record("alert", chat_id=reply.alert.chat_id, text=reply.alert.text)
            self.history.flush()
        return web.json_response(reply.body, status=reply.status)
