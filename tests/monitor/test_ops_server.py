"""/metrics, /healthz and /readyz: Prometheus text that moves with the run."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from monitor_sim import PY, ROOT, start_sim, top_wallets
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_settings
from monitor.ops_server import LatencyHistogram
from monitor.wallet_monitor import WalletMonitor


def test_latency_histogram_is_cumulative_per_source() -> None:
    h = LatencyHistogram(buckets=(1.0, 5.0))
    for s in (0.5, 2.0, 9.0):
        h.observe("ws", s)
    h.observe("poll", 20.0)
    series = {src: (b, total) for src, b, total in h.series()}
    assert series["ws"] == ([("1.0", 1.0), ("5.0", 2.0), ("+Inf", 3.0)], 11.5)
    assert series["poll"][0][-1] == ("+Inf", 1.0)
    assert h.count() == 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(sm: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return sum(v for (n, lab), v in sm.items()
               if n == name and all(dict(lab).get(k) == x for k, x in labels.items()))


@pytest.mark.slow
def test_metrics_move_with_a_run(tmp_path: Path) -> None:
    rec = tmp_path / "busy.jsonl.gz"
    subprocess.run([PY, "-m", "simulator", "synth", "--profile", "busy", "--blocks", "60",
                    "--seed", "5", "--out", str(rec)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wallets = top_wallets(rec, 20)
    sim = start_sim(rec, tmp_path, speed=10.0)
    port = free_port()
    try:
        settings = load_settings({
            "websocket_url": sim.urls["ws"], "rpc_url": sim.urls["http"],
            "explorer_url": sim.urls["explorer"], "explorer_api_key": "k1",
            "wallets": wallets, "speed": 10.0, "state_db": str(tmp_path / "state.db"),
            "staleness_blocks": 5, "backoff_initial": 1, "backoff_max": 5,
            "metrics_port": port}, environ={})
        asyncio.run(_scenario(settings, sim, port))
    finally:
        sim.stop()


async def _scenario(settings: Any, sim: Any, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            async with http.get(base + "/metrics") as r:
                assert r.status == 200
                return samples(await r.text())

        async def wait(pred: Any, what: str, timeout: float = 60.0) -> Any:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                sm = await scrape()
                if pred(sm):
                    return sm
                await asyncio.sleep(0.1)  # poll interval of a condition with a deadline
            raise AssertionError(f"timed out waiting for {what}")

        async with WalletMonitor(settings) as mon:
            assert mon.ops is not None and mon.ops.port == port
            async with http.get(base + "/healthz") as r:
                assert r.status == 200
            first = await wait(lambda sm: total(sm, "monitor_connection_state",
                                                state="CONNECTED") == 1, "CONNECTED")
            async with http.get(base + "/readyz") as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["ready"] is True
            moved = await wait(lambda sm: total(sm, "monitor_trades_delivered_total") > 0
                               and total(sm, "monitor_detection_latency_seconds_count") > 0,
                               "a delivered trade")
            # a WebSocket drop: reconnects move, the state comes back to CONNECTED
            await asyncio.to_thread(sim.fault, "ws_drop")
            after = await wait(lambda sm: total(sm, "monitor_reconnects_total") >= 1
                               and total(sm, "monitor_connection_state",
                                         state="CONNECTED") == 1
                               and total(sm, "monitor_api_calls_total", kind="rpc_http") >= 1,
                               "a reconnect and its backfill")
            assert total(after, "monitor_api_calls_total", kind="rpc_ws") > \
                total(first, "monitor_api_calls_total", kind="rpc_ws")
            assert total(after, "monitor_trades_delivered_total") >= \
                total(moved, "monitor_trades_delivered_total")
            assert total(after, "monitor_ready") == 1
            assert ("monitor_outbox_pending", ()) in after
            assert total(after, "monitor_task_restarts_total") == 0
            assert total(after, "monitor_task_alive") >= 3
        # stopped: the server is gone
        with pytest.raises(aiohttp.ClientError):
            async with http.get(base + "/healthz"):
                pass


def test_no_server_without_a_port(tmp_path: Path) -> None:
    settings = load_settings({"wallets": ["0x" + "1" * 40], "mode": "polling",
                              "state_db": str(tmp_path / "s.db")}, environ={})
    assert settings.metrics_port is None and settings.metrics_host == "127.0.0.1"


_HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # the header never ends


async def _until(pred: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)  # polling a condition with a deadline


def test_connections_past_the_cap_are_answered_503_and_closed() -> None:
    """1,500 connections that each sent half a request header were all held (1,512 file
    descriptors): a local client could starve the monitor's own sockets and files."""
    from monitor.ops_server import OpsServer

    async def main() -> None:
        ops = OpsServer([], max_connections=3)
        await ops.start()
        assert ops._runner is not None and ops._runner.server is not None
        server = ops._runner.server
        try:
            held = [await asyncio.open_connection("127.0.0.1", ops.port) for _ in range(3)]
            for _, w in held:
                w.write(_HALF_SENT)
            await _until(lambda: len(server.connections) == 3, "3 connections held")
            r, w = await asyncio.open_connection("127.0.0.1", ops.port)
            answer = await asyncio.wait_for(r.read(), 10)
            assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
            w.close()
            assert ops.refused_connections == 1
            held[0][1].close()  # room again: a new client is served
            await _until(lambda: len(server.connections) == 2, "a held connection gone")
            r, w = await asyncio.open_connection("127.0.0.1", ops.port)
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await asyncio.wait_for(r.read(), 10)).startswith(b"HTTP/1.1 200")
            w.close()
            for _, hw in held[1:]:
                hw.close()
        finally:
            await ops.stop()

    asyncio.run(main())


def test_a_request_header_never_finished_is_closed_after_the_idle_timeout() -> None:
    """Nothing closed a half-sent request (aiohttp's keep-alive default is an hour)."""
    from monitor.ops_server import IDLE_TIMEOUT_S, OpsServer

    assert IDLE_TIMEOUT_S <= 30

    async def main() -> None:
        ops = OpsServer([], idle_timeout_s=0.5)
        await ops.start()
        try:
            r, w = await asyncio.open_connection("127.0.0.1", ops.port)
            w.write(_HALF_SENT)
            assert await asyncio.wait_for(r.read(), 10) == b""  # closed by the server
            w.close()
        finally:
            await ops.stop()

    asyncio.run(main())
