"""Clients that do not play along (never read, flood requests or subscriptions) cost the
node a bounded amount and hurt only themselves: the others keep being served and the
replay keeps its pace. Every case runs a real :class:`Simulator` on loopback; the hostile
clients are raw sockets that stop reading after their handshake."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from simulator import server
from simulator.server import QuietAcceptErrors, Simulator, WsConn
from simulator.settings import NodeSettings, SimSettings
from simulator.source import RecordingSource
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 20


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


class DeafClient:
    """A WebSocket client that sends and never reads after its handshake: a 4 KB receive
    buffer and a stream reader that stops taking data at 8 KB, so the node's side backs up
    as soon as it sends a few KB."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str) -> DeafClient:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head[:80]
        return cls(reader, writer)

    def send(self, obj: Any) -> None:
        """One masked text frame (client to server, RFC 6455)."""
        payload = json.dumps(obj).encode()
        n = len(payload)
        if n < 126:
            header = bytes((0x81, 0x80 | n))
        elif n < 65536:
            header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def close(self) -> None:
        self.writer.transport.abort()


def call(method: str, *params: Any, req_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "method": method, "params": list(params)}


def queued_chars(conn: WsConn | None) -> int:
    """Characters waiting in a connection's queue (not yet handed to its transport)."""
    return 0 if conn is None else sum(len(item[1]) for item in conn.queue)


async def new_conn(sim: Simulator, before: set[str]) -> str:
    """The id of the connection opened since ``before`` (its handler registers it on the
    loop turn after the handshake)."""
    for _ in range(1000):
        opened = set(sim.conns) - before
        if opened:
            return opened.pop()
        await asyncio.sleep(0.005)
    raise AssertionError("the connection never registered")


async def round_trip(ws: Any, req_id: int) -> float:
    """Seconds one eth_blockNumber takes on ``ws`` (notifications in between skipped)."""
    t = time.monotonic()
    await ws.send_str(json.dumps(call("eth_blockNumber", req_id=req_id)))
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if json.loads(msg.data).get("id") == req_id:
            return time.monotonic() - t


# -- D1: a client that does not read -----------------------------------------------------
def test_a_client_that_sends_requests_and_never_reads_holds_about_one_answer() -> None:
    """40 eth_getLogs of ~2.8 MB each, never read: the node stops reading that client's
    requests while its answers wait (it read all 40 and held them all, ~110 MB), and
    another client's calls are answered meanwhile."""
    async def main() -> None:
        cap = 4 << 20  # answers wait up to cap / 4 = 1 MiB before reading pauses
        settings = SimSettings(node=NodeSettings(notify_buffer_bytes=cap),
                               history_blocks=150)
        rec = make_recording(200, trades_per_block=10)
        async with Simulator(rec, settings=settings, speed=2) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            deaf = await DeafClient.connect(sim.urls["ws"])
            try:
                for i in range(40):
                    deaf.send(call("eth_getLogs", {"fromBlock": "earliest"}, req_id=i))
                most = 0
                for i in range(30):  # the other client is served all along
                    assert await round_trip(ws, 1000 + i) < 2.0
                    most = max(most, *(queued_chars(c) for c in sim.conns.values()))
                    if sim.counts["rpc_ws"].get("eth_getLogs", 0) >= 40:
                        break
                handled = sim.counts["rpc_ws"].get("eth_getLogs", 0)
                assert 1 <= handled < 10, handled
                answer = 150 * 20 * 720  # one answer: 150 blocks of 20 logs, ~720 B a log
                assert most <= cap // 4 + answer, most
            finally:
                deaf.close()
    run(main)


def test_a_subscriber_that_never_reads_is_dropped_past_its_byte_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Notifications for a client that does not read are dropped with the connection once
    they pass ``notify_buffer_bytes`` (they were bounded by 10,000 messages only: ~7 MB
    here, and a busy chain's eth_getLogs-sized messages made gigabytes); a reading
    subscriber gets every head all along."""
    async def main() -> None:
        cap = 1 << 20
        settings = SimSettings(node=NodeSettings(notify_buffer_bytes=cap))
        n_blocks = 60
        rec = make_recording(n_blocks, trades_per_block=50)  # 100 logs a block
        dropped = asyncio.Event()
        abort = WsConn.abort

        def noting_abort(conn: WsConn) -> None:
            abort(conn)
            dropped.set()

        monkeypatch.setattr(WsConn, "abort", noting_abort)

        async with Simulator(rec, settings=settings, speed=20, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(json.dumps(call("eth_subscribe", "newHeads")))
            await asyncio.wait_for(ws.receive(), TIMEOUT)
            before = set(sim.conns)
            deaf = await DeafClient.connect(sim.urls["ws"])
            deaf_id = await new_conn(sim, before)
            for i in range(5):
                deaf.send(call("eth_subscribe", "logs", {}, req_id=i))
            while len(sim.conns[deaf_id].subs) < 5:
                await asyncio.sleep(0.005)
            try:
                sim.begin()
                heads: list[int] = []
                most = 0
                while len(heads) < n_blocks:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
                    heads.append(int(msg["params"]["result"]["number"], 16))
                    most = max(most, queued_chars(sim.conns.get(deaf_id)))
                assert heads == list(range(1000, 1000 + n_blocks))  # every head, in order
                assert dropped.is_set() and deaf_id not in sim.conns
                assert most <= cap, most
            finally:
                deaf.close()
    run(main)


# -- D3: the replay's pace ---------------------------------------------------------------
def test_subscribers_that_never_read_do_not_make_the_blocks_of_the_others_late(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight clients whose queues stay long (they never read) and a block every 0.25 s: a
    reading subscriber still gets each head within a fraction of a second of its due time.
    The replay waited up to 0.5 s for each such client after every block: heads came ~4 s
    late, in bursts (a streamed chain, one block a turn, fell further behind each block)."""
    monkeypatch.setattr(server, "_HIGH_WATER", 50)  # long queues within a few blocks

    async def main() -> None:
        n_heads = 16
        settings = SimSettings(history_blocks=100)
        rec = make_recording(100 + n_heads, trades_per_block=10)  # 20 logs a block
        async with Simulator(rec, settings=settings, speed=8, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            deaf = []
            for _ in range(8):
                before = set(sim.conns)
                client = await DeafClient.connect(sim.urls["ws"])
                deaf.append(client)
                conn_id = await new_conn(sim, before)
                # ~8 MB of answers left unread fill the socket; then notifications queue
                for i in range(6):
                    client.send(call("eth_getLogs", {"fromBlock": "earliest"}, req_id=i))
                client.send(call("eth_subscribe", "logs", {}, req_id=9))
                while not sim.conns[conn_id].subs:
                    await asyncio.sleep(0.005)
            await ws.send_str(json.dumps(call("eth_subscribe", "newHeads")))
            await asyncio.wait_for(ws.receive(), TIMEOUT)
            try:
                sim.begin()
                late_s: list[float] = []
                while len(late_s) < n_heads:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
                    arrived = time.monotonic_ns()  # the simulator's clock
                    pos = int(msg["params"]["result"]["number"], 16) - sim.chain.first_replayed
                    late_s.append((arrived - sim.chain.schedule.due_ns(pos)) / 1e9)
                assert max(len(c.queue) for c in sim.conns.values()) > server._HIGH_WATER
                # the start may lag on a loaded machine (the first head 1.1 s late, caught
                # up by the fifth), and a loaded machine may hold any one head ~1 s (the CI
                # met one at 1.009 s, the others within 7 ms); before, the lateness grew
                # block by block to ~4 s, so the later half's median was seconds
                later = sorted(late_s[n_heads // 2:])
                assert max(late_s) < 2.5 and later[len(later) // 2] < 0.5, \
                    [round(x, 2) for x in late_s]
            finally:
                for client in deaf:
                    client.close()
    run(main)


# -- D2: eth_getLogs far back ------------------------------------------------------------
class SlowOldBlocks(RecordingSource):
    """A recording streamed through a window whose blocks cost ``cost_s`` each to give
    again once they left it (a busy synthetic block's render: ~26 ms). The cost is
    synchronous work, as a render is: it holds the event loop."""

    def __init__(self, recording: Any, cost_s: float) -> None:
        super().__init__(recording)
        self.cost_s = cost_s
        self.given_again = 0

    def block_at(self, i: int) -> Any:
        self.given_again += 1
        time.sleep(self.cost_s)
        return super().block_at(i)


def _old_chain(n_history: int, n_replayed: int, cost_s: float) -> SlowOldBlocks:
    return SlowOldBlocks(make_recording(n_history + n_replayed), cost_s)


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body) as resp:
        return await resp.json()


def test_a_query_over_old_blocks_does_not_stop_the_blocks_of_the_others() -> None:
    """eth_getLogs over ~280 blocks that left the window (10 ms each to give again): a
    reading subscriber still gets each head on time while it runs, and the answer is
    whole. It was rebuilt in one go on the event loop: ~2.8 s without a block for anyone
    (51 s for 2,000 busy blocks)."""
    async def main() -> None:
        source = _old_chain(300, 40, cost_s=0.0)
        settings = SimSettings(history_blocks=300, window_blocks=16)
        async with Simulator(source, settings=settings, speed=8, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(json.dumps(call("eth_subscribe", "newHeads")))
            await asyncio.wait_for(ws.receive(), TIMEOUT)
            sim.begin()
            await asyncio.wait_for(ws.receive(), TIMEOUT)  # the replay runs
            source.cost_s = 0.01
            source.given_again = 0
            query = asyncio.ensure_future(_post(http, sim.urls["http"], call(
                "eth_getLogs", {"fromBlock": "earliest", "toBlock": hex(1000 + 299)})))
            late_s: list[float] = []
            while not query.done() or len(late_s) < 3:
                msg = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
                arrived = time.monotonic_ns()
                pos = int(msg["params"]["result"]["number"], 16) - sim.chain.first_replayed
                late_s.append((arrived - sim.chain.schedule.due_ns(pos)) / 1e9)
            answer = query.result()
            assert len(answer["result"]) == 300 * 4  # every log of the range
            assert source.given_again >= 250  # the blocks were rebuilt meanwhile
            # before: 2.8 s late while the rebuild held the loop (generous for a loaded box)
            assert len(late_s) >= 6 and max(late_s) < 1.5, [round(x, 2) for x in late_s]
    run(main)


@pytest.mark.parametrize(("profile", "code", "needle"), [
    ("alchemy", -32602, "this block range should work: [0x3e8, 0x419]"),
    ("geth", -32005, "query returned more than 10000 results"),
    ("quicknode", -32614, "eth_getLogs is limited to a 50 range"),
])
def test_a_query_reaching_too_far_back_is_refused_with_the_profiles_range_error(
        profile: str, code: int, needle: str) -> None:
    """Past ``max_rebuilt_blocks`` old blocks in one body the node answers at once with
    the profile's error (clients split the range on it), rebuilding nothing; a batch
    shares the allowance; a range within it is answered."""
    async def main() -> None:
        source = _old_chain(300, 4, cost_s=0.0)
        settings = SimSettings(node=NodeSettings(profile=profile, max_rebuilt_blocks=50),
                               history_blocks=300, window_blocks=16)
        async with Simulator(source, settings=settings, autostart=False) as sim, \
                aiohttp.ClientSession() as http:
            url = sim.urls["http"]
            wide = await _post(http, url, call("eth_getLogs", {"fromBlock": "earliest"}))
            assert wide["error"]["code"] == code and needle in wide["error"]["message"]
            assert source.given_again == 0
            narrow = {"fromBlock": hex(1000), "toBlock": hex(1000 + 39)}
            assert len((await _post(http, url, call("eth_getLogs", narrow)))["result"]) == 160
            both = await _post(http, url, [call("eth_getLogs", narrow, req_id=i)
                                           for i in (1, 2)])
            assert "result" in both[0] and both[1]["error"]["code"] == code
    run(main)


# -- D5: subscriptions and filters -------------------------------------------------------
def _addresses(n: int, start: int = 0) -> list[str]:
    return ["0x" + f"{start + i:040x}" for i in range(n)]


def _topics(n: int) -> list[str]:
    return ["0x" + f"{i:064x}" for i in range(n)]


async def _ws_call(ws: Any, body: Any) -> Any:
    await ws.send_str(json.dumps(body))
    return json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)


def test_a_filter_past_geths_bounds_is_refused_for_queries_and_subscriptions() -> None:
    """Past 1,000 addresses (-32000) or 1,000 alternatives at one topic position (-32602)
    with geth v1.17's codes and texts, over HTTP (eth_getLogs) and WebSocket
    (eth_subscribe); 1,000 pass."""
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await sim.wait_published(2)
            # addresses: geth v1.16.4+'s LogQueryLimit, -32000 once the filter decoded
            limit = "exceed max addresses or topics per search position"
            for flt, code, text0, text1 in (
                    ({"address": _addresses(1001)}, -32000, limit, limit),
                    ({"topics": [None, _topics(1001)]}, -32602,
                     "invalid argument 0: exceed max topics",
                     "invalid argument 1: exceed max topics")):
                reply = await _post(http, sim.urls["http"], call("eth_getLogs", flt))
                assert reply["error"] == {"code": code, "message": text0}
                reply = await _ws_call(ws, call("eth_subscribe", "logs", flt))
                assert reply["error"] == {"code": code, "message": text1}
            for flt in ({"address": _addresses(1000)}, {"topics": [None, _topics(1000)]}):
                assert "result" in await _post(http, sim.urls["http"],
                                               call("eth_getLogs", flt))
                assert "result" in await _ws_call(ws, call("eth_subscribe", "logs", flt))
    run(main)


def test_subscriptions_and_their_filters_are_bounded_per_connection() -> None:
    """By default a connection holds at most 1,000 subscriptions (no provider documents a
    number; it was unlimited: 100,000 took 72 MB and ~400 ms a block) and filters of at
    most 20,000 addresses and topics together; an unsubscribe gives its share back, and
    another connection has its own."""
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(profile="geth"))  # WS batches of 1,000
        assert settings.node.max_subscriptions == 1000
        assert NodeSettings().max_subscriptions == 1000  # alchemy: none documented
        assert NodeSettings(max_subscriptions=None).max_subscriptions is None
        async with Simulator(make_recording(2), settings=settings) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            heads = [call("eth_subscribe", "newHeads", req_id=i) for i in range(500)]
            for _ in range(2):
                replies = await _ws_call(ws, heads)
                assert all("result" in r for r in replies)
            reply = await _ws_call(ws, call("eth_subscribe", "newHeads"))
            assert reply["error"] == {"code": -32005, "message": (
                "too many subscriptions: limit of 1000 per connection reached")}
            async with http.ws_connect(sim.urls["ws"]) as other:
                ids = []
                for i in range(20):  # 20 x 1,000 addresses: the connection's whole share
                    reply = await _ws_call(other, call(
                        "eth_subscribe", "logs", {"address": _addresses(1000, i * 1000)}))
                    ids.append(reply["result"])
                reply = await _ws_call(other, call("eth_subscribe", "logs",
                                                   {"address": _addresses(1)}))
                assert reply["error"] == {"code": -32005, "message": (
                    "filters too large: 20001 addresses and topics on this connection, "
                    "limit of 20000")}
                assert (await _ws_call(other, call("eth_unsubscribe", ids[0])))["result"]
                reply = await _ws_call(other, call("eth_subscribe", "logs",
                                                   {"address": _addresses(1)}))
                assert "result" in reply
    run(main)


# -- D7: slow requests ---------------------------------------------------------------------
async def _closed_within(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         trickle: bytes, limit_s: float) -> tuple[bytes, float]:
    """Send ``trickle`` a byte every 0.2 s (a slowloris) until the node closes the
    connection; what it answered and after how long (AssertionError past ``limit_s``)."""
    t0 = time.monotonic()
    got = b""
    for byte in trickle * 100:
        try:
            got += await asyncio.wait_for(reader.read(4096), 0.2)
        except TimeoutError:
            pass
        except ConnectionError:
            break
        if reader.at_eof():
            break
        assert time.monotonic() - t0 < limit_s, "the node kept the connection open"
        with contextlib.suppress(ConnectionError):
            writer.write(bytes([byte]))
    return got, time.monotonic() - t0


def test_requests_sent_a_byte_at_a_time_are_closed_after_the_read_timeout() -> None:
    """Headers, or a body, that trickle in (and a connection that sends nothing) are cut
    after ``http_read_timeout_s`` (aiohttp kept them for an hour, the headers for ever);
    a WebSocket idle for longer is a subscriber, not a slow request: it stays."""
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(http_read_timeout_s=1.0))
        async with Simulator(make_recording(2), settings=settings) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            port = sim.port
            cases = [(b"POST / HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1"),
                     (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n", b"[" * 10),
                     (b"", b"")]
            for head, trickle in cases:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head)
                got, took = await _closed_within(reader, writer, trickle or b"\0", 6.0)
                assert took < 4.0
                if b"Content-Length: 1000" in head:
                    assert got.startswith(b"HTTP/1.1 408 "), got[:40]
                writer.close()
            # the WebSocket was idle for the whole of it, past the timeout: still served
            assert (await _ws_call(ws, call("eth_chainId")))["result"] == "0x89"
    run(main)


# -- D6: connections ---------------------------------------------------------------------
def test_connections_past_max_connections_are_answered_503_and_closed() -> None:
    """Past ``max_connections`` open connections a new one gets a 503 and is closed (idle
    sockets held until the process ran out of descriptors); the open ones are served, and
    a connection closed makes room."""
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(max_connections=3))
        async with Simulator(make_recording(2), settings=settings) as sim, \
                aiohttp.ClientSession() as http:
            held = [await asyncio.open_connection("127.0.0.1", sim.port) for _ in range(3)]
            while len(sim._runner.server.connections) < 3:  # type: ignore[union-attr]
                await asyncio.sleep(0.005)
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # then closed
            assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(
                b"too many connections\n")
            assert sim.refused_connections == 1
            writer.close()
            r0, w0 = held[0]
            body = json.dumps(call("eth_chainId")).encode()
            w0.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert b'"result":"0x89"' in await asyncio.wait_for(r0.read(4096), TIMEOUT)
            held[1][1].close()
            for _ in range(1000):  # until the node has seen it go
                async with http.post(sim.urls["http"], json=call("eth_chainId")) as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.01)
            assert resp.status == 200
            for _, w in held:
                w.close()
    run(main)


def test_accept_errors_are_one_line_per_interval_not_a_traceback_each(
        caplog: pytest.LogCaptureFixture) -> None:
    """The serve process's loop handler: 5,000 "out of system resource" accept errors in
    the same interval are one warning line (each was a traceback), the next interval
    another saying how many; other loop errors still reach the default handler."""
    now = [0.0]
    handler = QuietAcceptErrors(every_s=10.0, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(handler)
        context = {"message": QuietAcceptErrors.MESSAGE,
                   "exception": OSError(24, "Too many open files")}
        with caplog.at_level("WARNING", logger="simulator.server"):
            for _ in range(5000):
                loop.call_exception_handler(context)
            now[0] = 11.0
            loop.call_exception_handler(context)
        lines = [r.getMessage() for r in caplog.records if r.name == "simulator.server"]
        assert len(lines) == 2 and "(1 time(s)" in lines[0] and "(5000 time(s)" in lines[1]
        caplog.clear()
        with caplog.at_level("ERROR", logger="asyncio"):
            loop.call_exception_handler({"message": "something else"})
        assert any("something else" in r.getMessage() for r in caplog.records)
    finally:
        loop.close()
