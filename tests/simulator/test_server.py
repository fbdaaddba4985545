"""The node over real loopback sockets: WS + HTTP JSON-RPC, control API, Telegram, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import websockets

from polyvocab import address_topic
from simulator.history import SimHistory, mask_key
from simulator.recording import save_recording
from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 20


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


async def recv_json(ws: Any) -> Any:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    return json.loads(msg.data)


async def rpc(ws: Any, method: str, *params: Any, req_id: Any = 1) -> Any:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method,
                                  "params": list(params)}))
    return await recv_json(ws)


def test_ws_subscriptions_deliver_geth_shaped_notifications_for_every_block() -> None:
    async def main() -> None:
        rec = make_recording(6)
        async with Simulator(rec, speed=50, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            heads = (await rpc(ws, "eth_subscribe", "newHeads"))["result"]
            wallet = address_topic(WALLETS[0])
            logs = (await rpc(ws, "eth_subscribe", "logs",
                              {"topics": [None, None, [wallet]]}, req_id=2))["result"]
            # geth's ids: a quantity of 16 random bytes, no leading zero (1-32 digits)
            assert re.fullmatch(r"0x[1-9a-f][0-9a-f]{0,31}", heads) and re.fullmatch(
                r"0x[1-9a-f][0-9a-f]{0,31}", logs)
            expected_logs = sum(1 for b in rec.blocks for lg in b.logs
                                if lg["topics"][2] == wallet)
            sim.begin()
            got_heads: list[dict[str, Any]] = []
            got_logs: list[dict[str, Any]] = []
            while len(got_heads) < 6 or len(got_logs) < expected_logs:
                msg = await recv_json(ws)
                assert set(msg) == {"jsonrpc", "method", "params"}
                assert msg["method"] == "eth_subscription"
                sub = msg["params"]["subscription"]
                (got_heads if sub == heads else got_logs).append(msg["params"]["result"])
            assert [h["number"] for h in got_heads] == [b.block["number"] for b in rec.blocks]
            assert "transactions" not in got_heads[0] and "uncles" not in got_heads[0]
            assert got_heads[0]["extraData"] == rec.blocks[0].block["extraData"]
            assert got_heads[0]["hash"] == rec.blocks[0].hash
            assert len(got_logs) == expected_logs
            assert all(lg["topics"][2] == wallet and lg["removed"] is False for lg in got_logs)
    run(main)


def test_a_subscription_sees_only_blocks_published_after_it_was_made() -> None:
    async def main() -> None:
        async with Simulator(make_recording(8), speed=4) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await sim.wait_published(1)
            await rpc(ws, "eth_subscribe", "newHeads")
            head_at_subscribe = sim.chain.head_number
            msg = await recv_json(ws)
            assert int(msg["params"]["result"]["number"], 16) > head_at_subscribe
    run(main)


def test_binary_frames_string_and_zero_ids_and_unsubscribe() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            await ws.send(b'{"jsonrpc":"2.0","id":0,"method":"eth_chainId"}')
            assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "id": 0, "result": "0x89"}
            await ws.send('{"jsonrpc":"2.0","id":"a","method":"eth_subscribe",'
                          '"params":["newHeads"]}')
            sub = json.loads(await ws.recv())["result"]
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": None, "method": "eth_unsubscribe",
                                      "params": [sub]}))
            reply = json.loads(await ws.recv())
            while "method" in reply:  # a head may arrive before the answer
                reply = json.loads(await ws.recv())
            assert reply == {"jsonrpc": "2.0", "id": None, "result": True}
            await ws.send('{"jsonrpc":"2.0","id":3,"method":"eth_unsubscribe",'
                          '"params":["0x00000000000000000000000000000000"]}')
            assert json.loads(await ws.recv())["result"] is False
            await ws.send("{oops")
            assert json.loads(await ws.recv())["error"]["code"] == -32700
    run(main)


def test_oversized_frames_are_refused_with_close_1009() -> None:
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(max_frame_bytes=1000))
        async with Simulator(make_recording(2), settings=settings) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * 2000}))
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
            async with http.post(sim.urls["http"], data="x" * 5000) as resp:
                assert resp.status == 413  # geth v1.17 rpc/http.go: before the type
                assert await resp.text() == "content length too large (5000>1000)\n"
    run(main)


def test_a_client_gone_before_its_upgrade_is_answered_is_no_traceback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A monitor that times out its handshake (a loaded node) leaves before the upgrade is
    written: one info line, no 'Unhandled exception', and the node keeps serving."""
    from aiohttp import web

    real_prepare = web.WebSocketResponse.prepare
    gone = {"n": 1}

    async def prepare(self: web.WebSocketResponse, request: web.Request) -> Any:
        if gone["n"]:
            gone["n"] -= 1
            raise ConnectionResetError("Cannot write to closing transport")
        return await real_prepare(self, request)

    monkeypatch.setattr(web.WebSocketResponse, "prepare", prepare)

    async def main() -> None:
        async with Simulator(make_recording(3), speed=50, autostart=False) as sim, \
                aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(sim.urls["ws"])
            async with http.ws_connect(sim.urls["ws"]) as ws:
                assert (await rpc(ws, "eth_chainId"))["result"] == "0x89"
    with caplog.at_level("INFO"):
        run(main)
    assert "client gone before the handshake" in caplog.text
    assert "Unhandled exception" not in caplog.text and "Error handling" not in caplog.text


def test_http_json_rpc_single_batch_and_no_subscriptions() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1) as sim, aiohttp.ClientSession() as h:
            await sim.wait_published(1)
            async with h.post(sim.urls["http"], json={"jsonrpc": "2.0", "id": 1,
                                                      "method": "eth_blockNumber"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["result"] == hex(sim.chain.head_number)
            batch = [{"jsonrpc": "2.0", "id": i, "method": "net_version"} for i in range(3)]
            async with h.post(sim.urls["http"], json=batch) as resp:
                assert [r["result"] for r in await resp.json()] == ["137"] * 3
            async with h.post(sim.urls["http"], json={"jsonrpc": "2.0", "id": 1,
                                                      "method": "eth_subscribe",
                                                      "params": ["newHeads"]}) as resp:
                assert (await resp.json())["error"]["code"] == -32601
            async with h.get(sim.urls["http"]) as resp:  # geth: a health check, 200 empty
                assert resp.status == 200 and await resp.read() == b""
            status = sim.status()
            assert status["requests"]["rpc_http"]["net_version"] == 3
            assert sim.history.events("request")[0]["api"] == "rpc_http"
    run(main)


def test_status_and_control_endpoints_reject_bad_input() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=2) as sim, aiohttp.ClientSession() as h, \
                h.ws_connect(sim.urls["ws"]) as ws:
            await rpc(ws, "eth_subscribe", "newHeads")
            async with h.get(sim.urls["status"]) as resp:
                status = await resp.json()
            assert status["clients"] == 1 and status["subscriptions"] == 1
            assert status["speed"] == 2 and status["requests"]["rpc_ws"]["eth_subscribe"] == 1
            async with h.get(sim.urls["status"] + "?verbose=1") as resp:
                assert resp.status == 400 and "verbose" in (await resp.json())["error"]
            async with h.post(sim.urls["faults"], data="{nope") as resp:
                assert resp.status == 400 and "JSON" in (await resp.json())["error"]
            async with h.post(sim.urls["faults"], json=["ws_drop"]) as resp:
                assert resp.status == 400
            async with h.post(sim.urls["faults"], json={"name": "ws_melt"}) as resp:
                assert resp.status == 400 and "unknown fault" in (await resp.json())["error"]
            async with h.post(sim.urls["faults"], json={"name": "ws_loss",
                                                        "params": {"share": 2}}) as resp:
                assert resp.status == 400 and "share" in (await resp.json())["error"]
            async with h.post(sim.urls["faults"], json={"name": "ws_loss",
                                                        "duration": "long"}) as resp:
                assert resp.status == 400 and "duration" in (await resp.json())["error"]
            async with h.post(sim.urls["faults"], json={"name": "ws_silent",
                                                        "colour": "red"}) as resp:
                assert resp.status == 400
            async with h.delete(sim.urls["faults"] + "/f99") as resp:
                assert resp.status == 404
            async with h.post(sim.urls["faults"], json={"name": "ws_silent"}) as resp:
                fault_id = (await resp.json())["id"]
            async with h.get(sim.urls["faults"]) as resp:
                assert [f["id"] for f in (await resp.json())["faults"]] == [fault_id]
            base = sim.urls["http"].rstrip("/")
            async with h.post(base + "/_sim/reset") as resp:
                assert resp.status == 200
            assert sim.board.active == {}
            assert [r["event"] for r in sim.history.rows or []
                    if r["event"].startswith("fault")] == ["fault_start", "fault_stop"]
    run(main)


def test_telegram_stand_in_answers_like_telegram_and_never_records_the_token() -> None:
    token = "123456:SECRET-token_value"

    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as h:
            url = f"{sim.urls['telegram']}/bot{token}/sendMessage"
            async with h.post(url, json={"chat_id": 42, "text": "trade missed"}) as resp:
                body = await resp.json()
            assert resp.status == 200 and body["ok"] is True
            assert body["result"]["chat"]["id"] == 42 and body["result"]["text"] == "trade missed"
            async with h.post(url, data={"chat_id": "-100", "text": "form"}) as resp:
                assert (await resp.json())["result"]["chat"]["id"] == -100
            async with h.post(url, json={"text": "x"}) as resp:
                assert resp.status == 400
                assert await resp.json() == {"ok": False, "error_code": 400,
                                             "description": "Bad Request: chat_id is empty"}
            async with h.post(url, json={"chat_id": 1}) as resp:
                assert (await resp.json())["description"] == "Bad Request: message text is empty"
            async with h.post(url, data="{bad", headers={"Content-Type": "application/json"}) \
                    as resp:
                assert resp.status == 400
            async with h.post(f"{sim.urls['telegram']}/botnope/sendMessage",
                              json={"chat_id": 1, "text": "x"}) as resp:
                assert resp.status == 401
            alerts = sim.history.events("alert")
            assert [(a["chat_id"], a["text"]) for a in alerts] == [(42, "trade missed"),
                                                                    (-100, "form")]
            assert token not in json.dumps(sim.history.rows)
    run(main)


def test_history_records_start_publications_indexing_and_stop(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"

    async def main() -> None:
        history = SimHistory(path)
        async with Simulator(make_recording(4), speed=100, history=history) as sim:
            await sim.wait_published(4)
        history.close()

    run(main)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    events = [r["event"] for r in rows]
    assert events[0] == "start" and events[-1] == "stop"
    assert rows[0]["speed"] == 100 and rows[0]["first_block"] == 1000
    published = [r for r in rows if r["event"] == "block_published"]
    assert [r["number"] for r in published] == [1000, 1001, 1002, 1003]
    assert published[0]["order_filled"][0][1] in WALLETS
    assert all(r["t_ns"] >= rows[0]["t0_ns"] for r in published)


def _serve(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    rec = tmp_path / "rec.jsonl.gz"
    save_recording(make_recording(5), rec)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--recording", str(rec), "--port", "0",
         "--speed", "10", "--history", str(tmp_path / "sim.jsonl"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_serve_prints_ready_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = _serve(tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
        urls = json.loads(line[6:])
        assert urls["ws"].startswith("ws://127.0.0.1:") and not urls["ws"].endswith(":0/")
        assert urls["explorer"].endswith("/v2/api") and urls["status"].endswith("/_sim/status")

        async def check() -> None:
            async with aiohttp.ClientSession() as h, h.get(urls["status"]) as resp:
                assert resp.status == 200 and (await resp.json())["speed"] == 10
        run(check)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    rows = [json.loads(x) for x in (tmp_path / "sim.jsonl").read_text().splitlines()]
    assert rows[0]["event"] == "start" and rows[-1]["event"] == "stop"


def test_cli_serve_paused_holds_the_chain_until_sim_start(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--paused")
    t0: list[int] = []
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline()[6:])
        base = urls["status"].removesuffix("/_sim/status")

        async def check() -> None:
            async with aiohttp.ClientSession() as h:
                async with h.post(urls["http"], json={"jsonrpc": "2.0", "id": 1,
                                                      "method": "eth_blockNumber"}) as resp:
                    before = int((await resp.json())["result"], 16)
                async with h.post(base + "/_sim/start") as resp:
                    started = await resp.json()
                assert started["ok"] and not started["already_started"]
                t0.append(started["t0_ns"])
                async with h.post(base + "/_sim/start") as resp:
                    assert (await resp.json())["already_started"]
                async with h.ws_connect(urls["ws"]) as ws:
                    head = before
                    while head <= before:  # until the first block is out (run() times out)
                        head = int((await rpc(ws, "eth_blockNumber"))["result"], 16)
        run(check)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    rows = [json.loads(x) for x in (tmp_path / "sim.jsonl").read_text().splitlines()]
    start = [r for r in rows if r["event"] == "start"]  # written when the replay starts
    assert len(start) == 1 and start[0]["t0_ns"] == t0[0]
    first = next(r for r in rows if r["event"] == "block_published")
    assert first["t_ns"] >= t0[0], "a block was published before the replay started"


@pytest.mark.parametrize(("toml", "needle"), [("[node]\nlogs_max_rang = 5\n", "logs_max_rang"),
                                           ("[explorer]\nrate_per_sec = 3\n", "rate_per_sec")])
def test_cli_serve_bad_config_is_one_clear_line(tmp_path: Path, toml: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    proc = _serve(tmp_path, "--config", str(cfg))
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert err.startswith("error: ") and needle in err and "Traceback" not in err


@pytest.mark.parametrize("toml", ['[[faults]]\nname = "ws_drop"\n',
                                  '[[faults]]\nname = "nope"\nat = 1\n'])
def test_cli_serve_bad_fault_schedule_is_refused(tmp_path: Path, toml: str) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(toml)
    proc = _serve(tmp_path, "--config", str(cfg))
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "faults[0]" in err and "Traceback" not in err


def test_cli_serve_profile_synthesises_in_memory_and_stops_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--profile", "steady", "--seed", "3",
         "--blocks", "5", "--port", "0", "--speed", "100",
         "--history", str(tmp_path / "sim.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    rows = [json.loads(x) for x in (tmp_path / "sim.jsonl").read_text().splitlines()]
    assert rows[0]["event"] == "start" and rows[0]["recording"]["source"]["seed"] == 3
    assert rows[-1]["event"] == "stop"


def test_cli_serve_unknown_profile_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "serve", "--profile", "nope", "--port", "0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --profile nope: unknown profile 'nope'")


def test_explorer_is_mounted_on_v2_and_v1_paths_and_sees_indexed_blocks_only() -> None:
    async def main() -> None:
        async with Simulator(make_recording(4), speed=100) as sim, aiohttp.ClientSession() as h:
            await sim.wait_published(4)
            q = "?chainid=137&module=proxy&action=eth_blockNumber&apikey=ABCDEFGHIJ"
            base = sim.urls["http"].rstrip("/")
            async with h.get(base + "/api" + q) as resp:
                assert "deprecated V1 endpoint" in await resp.text()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            while not sim.history.events("explorer_indexed") and loop.time() < deadline:
                await asyncio.sleep(0.01)  # index lag: ~4 simulated s = ~40 ms here
            indexed = sim.history.events("explorer_indexed")
            assert indexed and indexed[0]["number"] == 1000
            async with h.get(sim.urls["explorer"] + q) as resp:
                body = await resp.json()
            assert int(body["result"], 16) <= sim.chain.head_number
            # both calls (V1 path and V2) are counted under the masked key
            counted = sim.status()["requests"]["explorer"]
            assert counted[mask_key("ABCDEFGHIJ") + "/proxy.eth_blockNumber"] == 2
    run(main)


def test_cli_serve_on_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rec = tmp_path / "rec.jsonl.gz"
        save_recording(make_recording(2), rec)
        proc = subprocess.run(
            [sys.executable, "-m", "simulator", "serve", "--recording", str(rec),
             "--port", str(port)], capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr


def _virtual(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``coro_fn`` on a looptime loop: the clock jumps to the next timer when idle."""
    import looptime

    loop = looptime.new_event_loop(noop_cycles=4, _enabled=True)
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


class _CountingEvent(asyncio.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return await super().wait()


def test_the_replay_sleeps_until_its_next_block_not_once_a_second_nor_per_index_time(
        tmp_path: Path) -> None:
    """Virtual time: each sleep of the replay is a jump of the loop's clock, so the replay
    wakes only for its next block (or fault): it woke every simulated second to flush its
    history, and at every index time to write an ``explorer_indexed`` row, which carries
    its own time and is written at the next block's turn (once no block is to come, the
    replay wakes for the index times left, then sleeps until a fault is started)."""
    from monitor.clock import LoopClock

    async def main() -> tuple[int, Simulator]:
        clock = LoopClock()
        sim = Simulator(make_recording(8, interval=20), speed=1.0,
                        history=SimHistory(keep=True, clock_ns=clock.now_ns),
                        clock_ns=clock.now_ns)
        counter = _CountingEvent()
        sim._wake = counter
        async with sim:
            # 0 s: block 1000; a block every 20 s (140 s: the last), each indexed some
            # seconds after it; 200 s: nothing left to do for 30 s
            await sim.wait_published(8, timeout=600)
            await asyncio.sleep(90.0)
            waits = counter.waits
        return waits, sim

    waits, sim = _virtual(main)
    assert sim.chain.published == 8
    # one sleep before each block, one for the last index time(s): 158 sleeps at d62b04e
    assert waits <= 8 + 3, waits
    indexed = sim.history.events("explorer_indexed")
    assert [r["number"] for r in indexed] == list(range(1000, 1008))
    assert [r["t_ns"] for r in indexed] == [sim.chain.blocks[i].indexed_ns for i in range(8)]


def test_request_rows_reach_the_history_file_within_a_second_between_blocks(
        tmp_path: Path) -> None:
    from monitor.clock import LoopClock

    path = tmp_path / "h.jsonl"

    async def main() -> tuple[int, int]:
        clock = LoopClock()
        sim = Simulator(make_recording(3, interval=60), speed=1.0,
                        history=SimHistory(path, clock_ns=clock.now_ns),
                        clock_ns=clock.now_ns)
        async with sim, aiohttp.ClientSession() as http:
            await sim.wait_published(1, timeout=60)
            await asyncio.sleep(15.0)  # 15 s: block 1000 out and indexed; next at 60 s
            async with http.post(sim.urls["http"], json={
                    "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}) as resp:
                assert resp.status == 200
            at_once = path.read_text().count('"event":"request"')
            await asyncio.sleep(1.1)  # no block due: the flush timer writes the row
            later = path.read_text().count('"event":"request"')
        return at_once, later

    at_once, later = _virtual(main)
    assert (at_once, later) == (0, 1)


def _minute_blocks_on_the_loop_clock() -> tuple[Simulator, Any]:
    """A node of 3 blocks a minute apart whose clock and history follow the loop's time."""
    from monitor.clock import LoopClock

    clock = LoopClock()
    return Simulator(make_recording(3, interval=60), speed=1.0,
                     history=SimHistory(keep=True, clock_ns=clock.now_ns),
                     clock_ns=clock.now_ns), clock


def test_index_times_passed_since_the_last_block_are_written_at_stop() -> None:
    """The replay writes ``explorer_indexed`` rows at its next block's turn; a node stopped
    before that turn still writes the rows of the index times that passed."""
    async def main() -> tuple[Simulator, int]:
        sim, clock = _minute_blocks_on_the_loop_clock()
        async with sim:
            await sim.wait_published(2, timeout=120)
            await asyncio.sleep(30.0)  # 60 s: block 1001; indexed a few s later; 90 s: stop
        return sim, clock.now_ns()

    sim, stopped_ns = _virtual(main)
    indexed = sim.history.events("explorer_indexed")
    assert [r["number"] for r in indexed] == [1000, 1001]
    assert indexed[-1]["t_ns"] == sim.chain.blocks[1].indexed_ns < stopped_ns
    assert sim.history.rows is not None and sim.history.rows[-1]["event"] == "stop"


def test_a_block_indexed_then_orphaned_before_the_next_block_keeps_its_index_row() -> None:
    """The orphaned block was visible to the explorer from its index time until the
    reorg: its ``explorer_indexed`` row is written before the reorg replaces it."""
    async def main() -> Simulator:
        sim, _clock = _minute_blocks_on_the_loop_clock()
        async with sim:
            await sim.wait_published(2, timeout=120)
            await asyncio.sleep(30.0)  # 60 s: block 1001, indexed a few s later
            sim.start_fault("reorg", params={"depth": 1})  # 90 s: 1001 orphaned
            await sim.wait_published(3, timeout=120)
        return sim

    sim = _virtual(main)
    reorg = sim.history.events("reorg")[0]
    indexed = sim.history.events("explorer_indexed")
    orphan = [r["t_ns"] for r in indexed if r["hash"] == reorg["old_hashes"][0]]
    assert len(orphan) == 1 and orphan[0] < reorg["t_ns"]


class _Recorder:
    """A connection stand-in for the fan-out: its subscriptions, the payloads it got."""

    def __init__(self, subs: dict[str, Any]) -> None:
        self.subs = subs
        self.got: list[tuple[str, str]] = []

    def notify(self, sub: Any, payload: str) -> None:
        self.got.append((sub.kind, payload))


def test_a_block_prepared_while_the_replay_waits_fans_out_the_same_text() -> None:
    """The replay builds the next block's JSON and filter index while it waits for it
    (``_prepare``): its notifications are the text the fan-out of an unprepared block
    sends, and the replay did prepare every block after the first before publishing it."""
    from simulator.chain import ChainBlock
    from simulator.filters import LogFilter
    from simulator.server import _Sub

    rec = make_recording(6)
    subs = {"h": _Sub("newHeads", None, ""),
            "l": _Sub("logs", LogFilter.parse(
                {"topics": [None, None, [address_topic(w) for w in WALLETS[:2]]]}), ""),
            "a": _Sub("logs", LogFilter.parse({}), "")}
    sim = Simulator(rec, speed=50, autostart=False)
    for rb in rec.blocks:
        prepared, fresh = ChainBlock(rb), ChainBlock(rb)
        a, b = _Recorder(subs), _Recorder(subs)
        sim.conns = {"a": a}  # type: ignore[dict-item]
        sim._prepare(prepared)
        sim._fan_out(prepared)
        sim.conns = {"b": b}  # type: ignore[dict-item]
        sim._fan_out(fresh)
        assert a.got == b.got and len(a.got) == 1 + 2 * len(rb.logs) - sum(
            1 for lg in rb.logs if lg["topics"][2] not in {address_topic(w)
                                                           for w in WALLETS[:2]})

    prepared: list[int] = []

    async def main() -> None:
        async with Simulator(rec, speed=50, autostart=False) as sim2, \
                aiohttp.ClientSession() as http, http.ws_connect(sim2.urls["ws"]) as ws:
            await rpc(ws, "eth_subscribe", "newHeads")
            real = sim2._prepare

            def spy(block: ChainBlock) -> None:
                if block.number > sim2.chain.head_number:  # not published yet
                    prepared.append(block.number)
                real(block)
            sim2._prepare = spy  # type: ignore[method-assign]
            sim2.begin()
            await sim2.wait_published(len(rec.blocks), timeout=TIMEOUT)

    run(main)
    assert sorted(set(prepared)) == [b.number for b in rec.blocks[1:]]


def test_a_blocks_frames_leave_before_its_history_row_is_written() -> None:
    """The replay writes a block's due frames itself right after its fan-out (no task
    switch to the connection's writer first, no history row in front of them): when the
    ``block_published`` row is written the queue is empty, and the client got every
    notification, in order."""
    async def main() -> None:
        rec = make_recording(5)
        sim = Simulator(rec, speed=50, autostart=False, history=SimHistory(keep=True))
        queued_at_row: list[int] = []
        real = sim.history.record

        def spy(event: str, **fields: Any) -> dict[str, Any]:
            if event == "block_published":
                queued_at_row.append(sum(len(c.queue) for c in sim.conns.values()))
            return real(event, **fields)
        sim.history.record = spy  # type: ignore[method-assign]
        async with sim, aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"]) as ws:
            await rpc(ws, "eth_subscribe", "newHeads")
            await rpc(ws, "eth_subscribe", "logs", {}, req_id=2)
            sim.begin()
            await sim.wait_published(len(rec.blocks), timeout=TIMEOUT)
            got = [await recv_json(ws) for _ in range(sum(1 + len(b.logs)
                                                           for b in rec.blocks))]
        assert queued_at_row == [0] * len(rec.blocks)
        numbers = [int(m["params"]["result"].get("blockNumber") or
                       m["params"]["result"]["number"], 16) for m in got]
        assert numbers == sorted(numbers)

    run(main)
