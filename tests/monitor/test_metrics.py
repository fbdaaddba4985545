"""Connection metrics: counters and time in each state, serialisable."""

from __future__ import annotations

import json

import pytest

from monitor.connection import ConnState
from monitor.metrics import CallCounter, WsMetrics, merge


def test_time_in_state_from_state_changes_and_now_in_simulated_seconds() -> None:
    m = WsMetrics(speed=10.0)
    m.start(100.0)
    # 100 s: start; 100.5 s connected; 102.5 s lost; 103 s connected again
    m.state(ConnState.CONNECTING, 100.0)
    m.state(ConnState.CONNECTED, 100.5)
    m.state(ConnState.RECONNECTING, 102.5)
    m.state(ConnState.CONNECTED, 103.0)
    t = m.time_in_state(104.0)
    assert t == pytest.approx({"DISCONNECTED": 0.0, "CONNECTING": 5.0, "CONNECTED": 30.0,
                               "RECONNECTING": 5.0, "FAILED": 0.0})
    assert m.uptime(104.0) == pytest.approx(30 / 40)


def test_counters_serialise_to_one_json_ready_dict() -> None:
    m = WsMetrics()
    m.start(0.0)
    m.connects = 2
    m.received(100)
    m.received(50)
    m.error("not_json")
    m.error("not_json")
    m.pong(0.002)
    m.pong(0.001)
    m.api_calls.call("eth_subscribe", True)
    m.api_calls.call("eth_subscribe", False, "Timeout")
    d = m.to_dict(1.0)
    json.dumps(d)  # serialisable as is
    assert d["messages"] == 2 and d["bytes_received"] == 150
    assert d["errors"] == {"not_json": 2}
    assert d["pings"] == 2 and d["rtt_max_s"] == 0.002
    assert d["api_calls"] == {"calls": {"eth_subscribe": 2}, "total": 2,
                              "failures": {"Timeout": 1}, "retries": 0}
    assert d["time_in_state_s"]["DISCONNECTED"] == 1.0


def test_uptime_is_none_before_time_passes() -> None:
    m = WsMetrics()
    m.start(5.0)
    assert m.uptime(5.0) is None


def test_call_counter_totals() -> None:
    c = CallCounter()
    for method in ("eth_getLogs", "eth_getLogs", "eth_blockNumber"):
        c.call(method, True)
    assert c.total == 3 and c.calls["eth_getLogs"] == 2 and not c.failures


def test_merge_adds_counts_and_keeps_the_worst_uptime_and_rtt() -> None:
    a = {"connects": 1, "errors": {"x": 1}, "uptime": 0.9, "rtt_max_s": 0.01}
    b = {"connects": 2, "errors": {"x": 2, "y": 1}, "uptime": 0.5, "rtt_max_s": 0.03}
    assert merge([a, b]) == {"connects": 3, "errors": {"x": 3, "y": 1}, "uptime": 0.5,
                             "rtt_max_s": 0.03}


def test_peak_rss_is_this_process_image_not_an_inherited_maximum() -> None:
    import subprocess
    import sys

    from monitor.metrics import peak_rss_bytes

    # ballast in this (parent) process, then a fresh interpreter: its peak must be its own
    ballast = bytearray(200 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    out = subprocess.run([sys.executable, "-c",
                          "from monitor.metrics import peak_rss_bytes; print(peak_rss_bytes())"],
                         capture_output=True, text=True, check=True, timeout=60)
    child = int(out.stdout)
    assert 0 < child < 150 * 1024 * 1024 < peak_rss_bytes()
    del ballast
