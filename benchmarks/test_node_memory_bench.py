"""Start-up time and peak RSS of ``python -m simulator serve`` on streamed chains.

(1) ``serve --profile busy --blocks 0`` (unbounded, lazy synthesis) and (2) ``serve
--recording FILE`` of a long busy recording, each in its own process at maximum speed:
the time from the process start to the READY line and to the first JSON-RPC answer, then
the peak RSS (``VmHWM``) after ``BENCH_NODE_BLOCKS`` replayed blocks (default 600 = 20
simulated minutes of ``busy``; 43,200 is a simulated day), with an HTTP client reading
the head block as it goes. RSS is sampled along the way to show it stays flat once the
window is full. (3) start-up alone, ``BENCH_NODE_STARTS`` times (default 7): min / median
/ max to READY and to the first answer.

Run: ``.venv/bin/python -m pytest benchmarks/test_node_memory_bench.py -s -p no:cacheprovider
--benchmark-enable``. Targets: start-up < 1 s; peak RSS < 300 MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = int(os.environ.get("BENCH_NODE_BLOCKS", "600"))
FILE_BLOCKS = int(os.environ.get("BENCH_NODE_FILE_BLOCKS", "1200"))
STARTUP_TARGET_S = 1.0
RSS_TARGET_MB = 300.0


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": list(params)}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["result"]


@contextlib.contextmanager
def _serve(args: list[str]) -> Iterator[tuple[subprocess.Popen[str], str, float, float]]:
    """``serve`` started now: (process, HTTP url, start time, seconds to its READY line)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "serve", "--port", "0",
                             "--speed", "100000", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready_s = time.monotonic() - t0
        assert line.startswith("READY "), line + (proc.stderr.read() if proc.stderr else "")
        yield proc, json.loads(line[6:])["http"], t0, ready_s
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _run(args: list[str], blocks: int) -> dict[str, Any]:
    with _serve(args) as (proc, url, t0, ready_s):
        first = int(_rpc(url, "eth_blockNumber"), 16)
        answer_s = time.monotonic() - t0
        samples: list[tuple[int, float]] = []
        head = first
        exhausted = False
        while head < first + blocks:
            head = int(_rpc(url, "eth_blockNumber"), 16)
            block = _rpc(url, "eth_getBlockByNumber", hex(head), False)
            assert block is not None
            if not samples or head - first >= samples[-1][0] + max(blocks // 6, 1):
                samples.append((head - first, _rss_mb(proc.pid, "VmRSS")))
            status = json.loads(urllib.request.urlopen(url + "_sim/status", timeout=60).read())
            if status["exhausted"]:
                head = int(_rpc(url, "eth_blockNumber"), 16)
                exhausted = True
                break
        # an old block, outside the window: regenerated / re-read, not an error
        old = _rpc(url, "eth_getBlockByNumber", hex(first - 10), False)
        assert old is not None and int(old["number"], 16) == first - 10
        return {"ready_s": ready_s, "answer_s": answer_s, "blocks": head - first,
                "peak_mb": _rss_mb(proc.pid, "VmHWM"), "samples": samples,
                "exhausted": exhausted,
                "wall_s": time.monotonic() - t0}


def _report(name: str, r: dict[str, Any]) -> None:
    def ok(flag: bool) -> str:
        return "met" if flag else "NOT MET"

    print(f"\n{name}: {r['blocks']} blocks replayed in {r['wall_s']:.0f} s wall")
    print(f"  start-up to READY     {r['ready_s']:.2f} s   target < {STARTUP_TARGET_S:.0f} s  "
          f"{ok(r['ready_s'] < STARTUP_TARGET_S)}")
    print(f"  start-up to 1st answer {r['answer_s']:.2f} s  target < {STARTUP_TARGET_S:.0f} s  "
          f"{ok(r['answer_s'] < STARTUP_TARGET_S)}")
    print(f"  peak RSS (VmHWM)      {r['peak_mb']:.0f} MB   target < {RSS_TARGET_MB:.0f} MB  "
          f"{ok(r['peak_mb'] < RSS_TARGET_MB)}")
    print("  RSS along the replay  " + ", ".join(f"{n}: {mb:.0f} MB" for n, mb in r["samples"]))


def _startup(args: list[str]) -> tuple[float, float]:
    """Seconds from the process start to the READY line and to the first answer."""
    with _serve(args) as (_proc, url, t0, ready_s):
        _rpc(url, "eth_blockNumber")
        return ready_s, time.monotonic() - t0


@pytest.mark.benchmark(group="node-memory")
def test_serve_profile_startup_rounds(benchmark: Any) -> None:
    """Start-up alone, ``BENCH_NODE_STARTS`` times (default 7): one start on a loaded
    machine says little, so min / median / max, with the load average."""
    rounds = int(os.environ.get("BENCH_NODE_STARTS", "7"))
    args = ["--profile", "busy", "--blocks", "0"]
    times = benchmark.pedantic(lambda: [_startup(args) for _ in range(rounds)],
                               rounds=1, iterations=1)
    print(f"\nserve --profile busy --blocks 0, start-up x{rounds} "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for name, values in (("READY", [r for r, _ in times]),
                         ("1st answer", [a for _, a in times])):
        values.sort()
        median = values[len(values) // 2]
        print(f"  to {name:<11} min {values[0]:.2f} s  median {median:.2f} s  "
              f"max {values[-1]:.2f} s   target < {STARTUP_TARGET_S:.0f} s  "
              f"{'met' if median < STARTUP_TARGET_S else 'NOT MET'} at the median")


@pytest.mark.benchmark(group="node-memory")
def test_serve_profile_busy_unbounded(benchmark: Any) -> None:
    result = benchmark.pedantic(_run, args=(["--profile", "busy", "--blocks", "0"], BLOCKS),
                                rounds=1, iterations=1)
    _report("serve --profile busy --blocks 0", result)
    assert result["blocks"] >= BLOCKS


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = Path(os.environ.get("BENCH_NODE_CACHE", "/tmp"))
    path = cache / f"bench-busy-{FILE_BLOCKS}.jsonl.gz"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "simulator", "synth", "--profile", "busy",
                        "--blocks", str(FILE_BLOCKS), "--seed", "1", "--out", str(path)],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return path


@pytest.mark.benchmark(group="node-memory")
def test_serve_long_recording(benchmark: Any, long_recording: Path) -> None:
    result = benchmark.pedantic(_run, args=(["--recording", str(long_recording)],
                                            FILE_BLOCKS), rounds=1, iterations=1)
    size = long_recording.stat().st_size / 1e6
    _report(f"serve --recording {long_recording.name} ({FILE_BLOCKS} busy blocks, "
            f"{size:.0f} MB gz)", result)
    assert result["exhausted"]  # the whole file was replayed
