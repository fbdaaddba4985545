"""Integration harness: the simulator and the monitor as real processes on loopback.

Synchronisation is on files, READY lines and the simulator's status endpoint, always with
generous deadlines; never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _reader(stream: IO[str], q: queue.Queue[str]) -> None:
    for line in stream:
        q.put(line)


@dataclass
class Proc:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    stderr_path: Path
    ready: str = ""

    def wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"process exited {self.proc.returncode}: "
                                         f"{self.stderr_path.read_text()[-2000:]}") from None
                continue
            if line.startswith("READY"):
                self.ready = line.strip()
                return self.ready
        raise AssertionError(f"no READY within {timeout}s: {self.stderr_path.read_text()[-2000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("process did not stop on SIGTERM") from None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def spawn(args: list[str], stderr_path: Path) -> Proc:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for k in list(env):  # monitor settings come from flags only
        if k in ("WALLETS", "WEBSOCKET_ENABLED", "WEBSOCKET_URL", "MODE", "SPEED"):
            env.pop(k)
    err = open(stderr_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                            env=env)
    q: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
    return Proc(proc, q, stderr_path)


@dataclass
class Sim:
    proc: Proc
    urls: dict[str, str]
    history: Path

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.urls["status"], timeout=10) as r:
            return json.loads(r.read())

    def fault(self, name: str, target: str | None = None, params: dict | None = None,
              duration: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if target is not None:
            body["target"] = target
        if params is not None:
            body["params"] = params
        if duration is not None:
            body["duration"] = duration
        req = urllib.request.Request(self.urls["faults"], data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def start_replay(self) -> None:
        """Start a replay served ``paused`` (``POST /_sim/start``)."""
        url = self.urls["status"].rsplit("/", 1)[0] + "/start"
        req = urllib.request.Request(url, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def _status_or_none(self) -> dict[str, Any] | None:
        """The status, or None while a busy node is slow to answer (the caller's deadline,
        not one slow answer, decides)."""
        try:
            return self.status()
        except (TimeoutError, OSError):
            return None

    def wait_published(self, n: int, timeout: float = 60.0) -> None:
        wait_for(lambda: (self._status_or_none() or {}).get("published", -1) >= n, timeout,
                 f"{n} blocks published")

    def wait_exhausted(self, timeout: float = 120.0) -> None:
        wait_for(lambda: bool((self._status_or_none() or {}).get("exhausted")), timeout,
                 "replay finished")

    def stop(self) -> None:
        self.proc.terminate()


#: monitor flags for runs at speed 10 (heads every 0.2 s): stale after 5 blocks = 1 s wall
FAST = ["--staleness-blocks", "5", "--heartbeat-interval", "10", "--heartbeat-timeout", "4",
        "--backoff-initial", "1", "--backoff-max", "5", "--reconcile-interval", "10"]


def synth_busy(out_dir: Path, blocks: int, seed: int, timeout: float = 120) -> Path:
    """A ``busy`` recording of ``blocks`` blocks (``simulator synth``) in ``out_dir``."""
    out = out_dir / "busy.jsonl.gz"
    subprocess.run([PY, "-m", "simulator", "synth", "--profile", "busy", "--blocks",
                    str(blocks), "--seed", str(seed), "--out", str(out)], cwd=ROOT,
                   check=True, capture_output=True, timeout=timeout)
    return out


def start_sim(recording: Path, tmp: Path, *, speed: float, config: str | None = None,
              paused: bool = False) -> Sim:
    """``paused``: the replay waits for :meth:`Sim.start_replay`."""
    hist = tmp / "sim_history.jsonl"
    args = [PY, "-m", "simulator", "serve", "--recording", str(recording), "--port", "0",
            "--speed", str(speed), "--history", str(hist),
            "--history-blocks", "0"]  # these tests replay the recording from its first block
    if paused:
        args.append("--paused")
    if config is not None:
        cfg = tmp / "sim.toml"
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    p = spawn(args, tmp / "sim.err")
    line = p.wait_ready()
    urls = json.loads(line.split(" ", 1)[1])
    return Sim(p, urls, hist)


@dataclass
class Monitor:
    proc: Proc
    tmp: Path
    detections: Path
    history: Path
    db: Path
    args: list[str] = field(default_factory=list)


def start_monitor(sim: Sim, tmp: Path, wallets: Iterable[str], *, speed: float,
                  mode: str = "websocket", extra: list[str] | None = None,
                  tag: str = "mon") -> Monitor:
    wfile = tmp / "wallets.txt"
    wfile.write_text("\n".join(wallets) + "\n")
    det, hist, db = tmp / "detections.jsonl", tmp / "monitor_history.jsonl", tmp / "state.db"
    args = [PY, "-m", "monitor", "run", "--mode", mode, "--ws-url", sim.urls["ws"],
            "--rpc-url", sim.urls["http"], "--explorer-url", sim.urls["explorer"],
            "--api-key", "k1", "--wallets-file", str(wfile), "--db", str(db),
            "--detections", str(det), "--history", str(hist), "--speed", str(speed),
            *(extra or [])]
    p = spawn(args, tmp / f"{tag}.err")
    p.wait_ready()
    return Monitor(p, tmp, det, hist, db, args)


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)  # polling interval of a condition with a deadline, not a sync sleep
    if not pred():
        raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def truth(sim_history: Path, wallets: Iterable[str]) -> set[str]:
    """Trade ids of ``wallets`` in the final canonical chain (last block per height)."""
    ws = {w.lower() for w in wallets}
    by_height: dict[int, list[list[str]]] = {}
    for row in read_jsonl(sim_history):
        if row.get("event") == "block_published":
            by_height[row["number"]] = row.get("order_filled") or []
    return {tid for fills in by_height.values() for tid, maker in fills if maker.lower() in ws}


def standing(detections: list[dict[str, Any]]) -> tuple[set[str], list[str]]:
    """(ids standing at the end, ids delivered twice without a retraction in between)."""
    state: dict[str, bool] = {}
    dups: list[str] = []
    for row in detections:
        if row["kind"] == "trade":
            tid = row["trade"]["id"]
            if state.get(tid):
                dups.append(tid)
            state[tid] = True
        else:
            state[row["trade_id"]] = False
    return {t for t, s in state.items() if s}, dups


class StandingTail:
    """The standing trade ids of a detections file, read incrementally: each call parses
    only the lines appended since the last one (a 12,000-line file re-read every 50 ms
    would take a core from the processes under test)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.state: dict[str, bool] = {}

    def update(self) -> set[str]:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # complete lines only
            self.offset += end
            rows = []
            for line in chunk[:end].splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
            for row in rows:
                tid = row["trade"]["id"] if row["kind"] == "trade" else row["trade_id"]
                self.state[tid] = row["kind"] == "trade"
        return {t for t, s in self.state.items() if s}


def wait_all_detected(mon: Monitor, sim: Sim, wallets: Iterable[str], timeout: float = 90.0
                      ) -> set[str]:
    sim.wait_exhausted(timeout)
    want = truth(sim.history, wallets)
    tail = StandingTail(mon.detections)
    deadline = time.monotonic() + timeout
    # until the standing trades ARE the truth: every trade there, and every trade of an
    # orphaned block retracted. Stopping once they merely covered it raced the monitor's
    # re-check (new chain's trades delivered, the orphans' retractions a moment later):
    # under load the 20-kill crash loop saw 79-144 "phantoms" of a reorg 0.4 s before
    # the last kill. A retraction that never comes still fails, after the timeout.
    while time.monotonic() < deadline:
        if tail.update() == want:
            return want
        time.sleep(0.25)  # polling interval of a condition with a deadline, not a sync sleep
    missing = sorted(want - tail.update())
    if not missing:
        return want  # extras left: assert_exactly_once names them
    events = Counter(r.get("event") for r in read_jsonl(mon.history))
    err = mon.proc.stderr_path.read_text()[-1500:] if mon.proc.stderr_path.exists() else ""
    raise AssertionError(
        f"timed out after {timeout}s waiting for all {len(want)} truth trades: "
        f"{len(missing)} missing, e.g. {missing[:3]}; monitor alive: "
        f"{mon.proc.proc.poll() is None}; history events: {dict(events)}; "
        f"monitor stderr tail: {err}")


def assert_exactly_once(mon: Monitor, want: set[str]) -> list[dict[str, Any]]:
    rows = read_jsonl(mon.detections)
    stand, dups = standing(rows)
    assert not dups, f"{len(dups)} duplicate deliveries, e.g. {dups[:3]}"
    missed = want - stand
    phantom = stand - want
    assert not missed, f"{len(missed)} missed, e.g. {sorted(missed)[:3]}"
    assert not phantom, f"{len(phantom)} phantom (delivered, not canonical, not retracted)"
    return rows


def history_events(path: Path) -> Counter[str]:
    return Counter(r.get("event") for r in read_jsonl(path))


def top_wallets(recording: Path, n: int) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from polyvocab import ORDER_FILLED_TOPICS
    from simulator.recording import load_recording

    rec = load_recording(recording)
    c: Counter[str] = Counter()
    for b in rec.blocks:
        for lg in b.logs:
            t = lg.get("topics") or []
            if t and t[0] in ORDER_FILLED_TOPICS:
                c["0x" + t[2][-40:]] += 1
    return [w for w, _ in c.most_common(n)]
