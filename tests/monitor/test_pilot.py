"""The live shadow pilot end to end, with the simulator standing in for the provider and
the explorer (URLs only): faults through /_sim/faults, a SIGKILL and restart, then
reconcile against the chain, then the report. Reconcile's classification of every trade
equals the experiment checker's classification of the same run from the simulator's own
history."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from monitor_sim import PY, ROOT, Proc, read_jsonl, spawn, start_sim, top_wallets, wait_for

KEY = "pilot-explorer-key-0123456789abcdef"
GRACE_S = 8.0


def test_pilot_modules_never_import_the_simulator() -> None:
    code = ("import sys, monitor, monitor.pilot, monitor.pilot_cli, monitor.ops_server, "
            "monitor.cli; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('simulator', 'experiments', 'reports', 'pandas')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    res = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_status_of_a_missing_store_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run([PY, "-m", "monitor", "pilot", "status", "--store",
                          str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["a file", "under a file", "beat nan", "beat 1e-9",
                                  "rotate 1e-9", "keep 1e9"])
def test_a_store_that_cannot_be_one_or_a_bad_beat_is_one_line(case: str, tmp_path: Path
                                                              ) -> None:
    """Was a FileExistsError / FileNotFoundError traceback, and --beat nan was taken (as
    were a beat of a nanosecond, a spin, and a rotation every few bytes)."""
    afile = tmp_path / "a-file"
    afile.write_text("x")
    store, extra = {"a file": (afile, []), "under a file": (afile / "store", []),
                    "beat nan": (tmp_path / "s", ["--beat", "nan"]),
                    "beat 1e-9": (tmp_path / "s", ["--beat", "1e-9"]),
                    "rotate 1e-9": (tmp_path / "s", ["--rotate-mb", "1e-9"]),
                    "keep 1e9": (tmp_path / "s", ["--keep", "1000000000"])}[case]
    res = subprocess.run([PY, "-m", "monitor", "pilot", "--store", str(store), *extra,
                          "--ws-url", "ws://127.0.0.1:9/", "--rpc-url", "http://127.0.0.1:9/",
                          "--explorer-url", "http://127.0.0.1:9/api",
                          "--wallet", "0x" + "11" * 20], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    err = res.stderr.strip().splitlines()
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr, res.stderr
    assert err and err[-1].startswith("python -m monitor pilot: error: ")
    assert {"a file": "not a folder", "under a file": "cannot write the pilot's store",
            "beat nan": "--beat must be 0.1 to 3600 seconds",
            "beat 1e-9": "--beat must be 0.1 to 3600 seconds",
            "rotate 1e-9": "--rotate-mb must be 1 to 1e+06",
            "keep 1e9": "--keep must be 0 to 1000"}[case] in err[-1]
    if case.split()[0] in ("beat", "rotate", "keep"):
        assert res.returncode == 2 and not (tmp_path / "s").exists()


def test_a_start_block_the_node_cannot_give_names_the_rpc_url(tmp_path: Path) -> None:
    """An RPC URL that answers 404 said 'HTTP 404 not JSON' without saying which of the
    three endpoints it was."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"404: Not Found"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rpc = f"http://127.0.0.1:{server.server_address[1]}/v2/K3yInThePath0123"
        res = subprocess.run([PY, "-m", "monitor", "pilot", "--store", str(tmp_path / "s"),
                              "--ws-url", "ws://127.0.0.1:9/", "--rpc-url", rpc,
                              "--explorer-url", "http://127.0.0.1:9/api",
                              "--wallet", "0x" + "11" * 20], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    finally:
        server.shutdown()
    err = res.stderr.strip().splitlines()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert err[-1].startswith("python -m monitor pilot: error: --rpc-url http://127.0.0.1:"), \
        err[-1]
    assert "eth_blockNumber for the start block" in err[-1] and "404" in err[-1]
    assert "K3yInThePath0123" not in res.stderr


def test_api_key_on_argv_is_refused(tmp_path: Path) -> None:
    res = subprocess.run([PY, "-m", "monitor", "pilot", "--store", str(tmp_path / "s"),
                          "--api-key", "abc", "--wallet", "0x" + "1" * 40], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "EXPLORER_API_KEY" in res.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(store: Path) -> dict:
    res = subprocess.run([PY, "-m", "monitor", "pilot", "status", "--store", str(store),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def seen(store: Path) -> dict[str, set[str]]:
    db = sqlite3.connect(f"file:{store / 'pilot.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        out: dict[str, set[str]] = {"websocket": set(), "polling": set()}
        for path, tid in db.execute("SELECT path, trade_id FROM sightings WHERE kind='trade'"):
            out[path].add(tid)
        return out
    finally:
        db.close()


@pytest.mark.slow
def test_pilot_faults_kill_restart_reconcile_report(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rec = tmp_path / "busy.jsonl.gz"
    subprocess.run([PY, "-m", "simulator", "synth", "--profile", "busy", "--blocks", "50",
                    "--seed", "5", "--out", str(rec)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wallets = top_wallets(rec, 40)[30:34]  # moderately active wallets
    sim = start_sim(rec, tmp_path, speed=1.0,
                    config=f'[explorer]\napi_keys = ["{KEY}"]\n')
    store, results = tmp_path / "store", tmp_path / "results"
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("EXPLORER_API_KEY_FILE", str(tmp_path / "key"))
    port = free_port()
    args = [PY, "-m", "monitor", "pilot", "--ws-url", sim.urls["ws"], "--rpc-url",
            sim.urls["http"], "--explorer-url", sim.urls["explorer"], "--store", str(store),
            "--metrics-port", str(port), "--beat", "0.5", "--polling-interval", "3",
            "--fallback-polling-interval", "3", "--fallback-after", "3",
            "--staleness-blocks", "3", "--backoff-initial", "0.5", "--backoff-max", "2",
            "--reconcile-interval", "6",
            *[x for w in wallets for x in ("--wallet", w)]]
    pilot: Proc | None = None
    try:
        pilot = spawn(args, tmp_path / "pilot1.err")
        pilot.wait_ready()
        first = sim.status()["published"]
        # 4 blocks in: the socket drops (one-shot)
        sim.wait_published(first + 4)
        sim.fault("ws_drop")
        # 10 blocks in: the provider is down for 12 s (socket refused, HTTP errors);
        # longer than fallback_after, so the explorer takes over and hands back
        sim.wait_published(first + 10)
        sim.fault("ws_refuse", target="ws", duration=12)
        sim.fault("rpc_errors", target="rpc_http", duration=12)
        wait_for(lambda: not sim.status()["faults"], 60, "the outage ended")
        sim.wait_published(first + 24)
        # SIGKILL in the middle, restart on the same store
        pilot.kill9()
        pilot = spawn(args, tmp_path / "pilot2.err")
        pilot.wait_ready()
        sim.wait_exhausted(180)
        t_end = time.time_ns()
        chain = {tid for row in read_jsonl(sim.history) if row.get("event") ==
                 "block_published" for tid, maker in row["order_filled"]
                 if maker.lower() in {w.lower() for w in wallets}}
        try:  # both paths catch up (a path that never does is what reconcile must show)
            wait_for(lambda: all(len(s & chain) >= len(chain) * 0.5 for s in
                                 seen(store).values()), 60, "both paths caught up")
        except AssertionError:
            pass
        wait_for(lambda: status(store)["last_beat_wall_ns"] > t_end + (GRACE_S + 2) * 1e9,
                 60, "beats past the grace")
        st = status(store)
        assert pilot.terminate() == 0
        pilot = None
    finally:
        if pilot is not None:
            pilot.kill9()
        sim_urls = dict(sim.urls)
    # the simulator keeps serving the chain (head = last block) for reconcile
    try:
        assert st["sessions"] == 2 and st["trades_both"] > 0
        events = [r["event"] for r in read_jsonl(store / "events.jsonl")]
        kinds = [r.get("kind") for r in read_jsonl(store / "events.jsonl")]
        assert "fallback_start" in kinds and "fallback_end" in kinds, events
        sim_rows = read_jsonl(sim.history)
        start_row = next(r for r in sim_rows if r["event"] == "start")
        db = sqlite3.connect(store / "pilot.sqlite")
        wall0, mono0 = db.execute("SELECT started_wall_ns, started_mono_ns FROM sessions "
                                  "ORDER BY id LIMIT 1").fetchone()
        db.close()
        offset_s = (start_row["t0_ns"] + wall0 - mono0) / 1e9 - start_row["ts0"]
        res = subprocess.run(
            [PY, "-m", "experiments", "reconcile", str(store), "--rpc-url", sim_urls["http"],
             "--out", str(results), "--finality-depth", "2", "--grace", str(GRACE_S),
             "--wait", "5", "--rate", "50", "--timestamp-offset-s", repr(offset_s)],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        res = subprocess.run([PY, "-m", "reports", "build", str(results / "latest")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        sim.stop()
    run = (results / "latest").resolve()
    manifest = json.loads((run / "manifest.json").read_text())
    pilot_meta = manifest["pilot"]
    start_block, end_block = pilot_meta["blocks"]
    html = (run / "report.html").read_text()
    assert "Pilot provenance" in html and "1 s resolution" in html
    assert pilot_meta["endpoints"]["explorer"].startswith("http://127.0.0.1:")
    # no secret anywhere in the store or the run
    for f in [*store.rglob("*"), *run.rglob("*")]:
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f

    # the checker's view of the same run, from the simulator's own history
    sys.path.insert(0, str(ROOT))
    from experiments.checker import CheckParams, classify, detections_frame, fault_windows
    from experiments.truth import build_truth

    published = {}
    for r in sim_rows:
        if r.get("event") == "block_published":
            published.setdefault(r["number"], r["t_ns"])
    window = (published[start_block], published[end_block])
    # how late the simulator published each block against its timestamp's schedule: inside
    # reconcile's latency (measured from the block timestamp, as on a live chain), not
    # inside the checker's (measured from the publication); 0.07-0.13 s on a loaded machine
    stamp = {r["number"]: r["timestamp"] for r in sim_rows if r.get("event") ==
             "block_published"}
    publish_delay_s = {n: (t - start_row["t0_ns"]) / 1e9 - (stamp[n] - start_row["ts0"])
                       for n, t in published.items()}
    truth = build_truth(sim_rows, wallets, window=window)
    disagreements, boundary, compared = [], [], 0
    figures = {}
    for path in ("websocket", "polling"):
        rec_out = pd.read_parquet(run / f"pilot_{path}" / "outcomes.parquet")
        det_rows = [dict(r, t_ns=r["mono_ns"]) for r in
                    read_jsonl(run / f"pilot_{path}" / "detections.jsonl")]
        params = CheckParams(speed=1.0, window_start_ns=window[0], window_end_ns=window[1],
                             actionable_window_s=5.0, wallets=tuple(wallets), mode=path)
        chk = classify(truth, detections_frame(det_rows),
                       fault_windows(sim_rows, window[1]), params)
        a = dict(zip(rec_out["trade_id"], rec_out["outcome"], strict=True))
        b = dict(zip(chk["trade_id"], chk["outcome"], strict=True))
        lat = dict(zip(chk["trade_id"], chk["latency_s"], strict=True))
        rlat = dict(zip(rec_out["trade_id"], rec_out["latency_s"], strict=True))
        block_of = dict(zip(chk["trade_id"], chk["block_number"], strict=True))
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for tid in a:
            compared += 1
            if a[tid] != b[tid]:
                near = (a[tid] in ("detected", "late") and b[tid] in ("detected", "late")
                        and abs(float(lat[tid]) - 5.0) < 0.02)
                (boundary if near else disagreements).append((path, tid, a[tid], b[tid]))
            if pd.notna(lat[tid]):  # the two clocks agree on latency
                late = publish_delay_s[int(block_of[tid])]
                assert abs(float(rlat[tid]) - float(lat[tid]) - late) < 0.05, (
                    tid, rlat[tid], lat[tid], late)
        figures[path] = rec_out["outcome"].value_counts().to_dict()
    print("pilot figures:", figures, "status:", {p: {k: d[k] for k in (
        "uptime", "trades", "only_this_path", "latency_s")} for p, d in st["paths"].items()})
    assert compared > 0
    assert not disagreements, disagreements[:5]
    assert len(boundary) <= 1, boundary


@pytest.mark.parametrize("content", [b"\x00\xff" * 2500, b"SQLite format 3\x00" + b"\x00" * 4000,
                                     "another app's database"])
def test_a_store_file_that_is_not_a_pilot_store_is_one_line(content: bytes | str,
                                                           tmp_path: Path) -> None:
    """``pilot status`` and ``experiments reconcile`` on a corrupt pilot.sqlite were
    ``sqlite3.DatabaseError`` tracebacks."""
    db = tmp_path / "pilot.sqlite"
    if isinstance(content, bytes):
        db.write_bytes(content)
    else:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE notes (x)")
        con.commit()
        con.close()
    for args in (["-m", "monitor", "pilot", "status", "--store", str(tmp_path)],
                 ["-m", "experiments", "reconcile", str(tmp_path), "--out",
                  str(tmp_path / "out")]):
        res = subprocess.run([PY, *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env={"RPC_URL": "http://127.0.0.1:9/", "PATH": ""})
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "not a pilot store" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def _made_store(directory: Path) -> None:
    from monitor.pilot import PilotStore

    s = PilotStore(directory)
    s.set_meta("start_block", 1)
    s.set_meta("wallets", ["0x" + "11" * 20])
    s.new_session(1, 1)
    s.close()


@pytest.mark.parametrize("name", ["a?b", "c#d", "e%3Ff"])
def test_status_of_a_store_whose_folder_has_uri_characters(name: str, tmp_path: Path) -> None:
    """The read-only URI was not escaped: "a?b" lost its mode=ro and SQLite created an
    empty 0644 file "a"; the store was "not a pilot store"."""
    store = tmp_path / name
    _made_store(store)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = subprocess.run([PY, "-m", "monitor", "pilot", "status", "--store", str(store),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["start_block"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


@pytest.mark.parametrize("damage", ["columns", "meta"])
def test_a_damaged_pilot_store_is_one_line_in_status_run_and_reconcile(
        damage: str, tmp_path: Path) -> None:
    """Tables of the right names with other columns, or a meta value that is not JSON:
    sqlite3.OperationalError / JSONDecodeError tracebacks."""
    store = tmp_path / "store"
    if damage == "meta":
        _made_store(store)
        with contextlib.closing(sqlite3.connect(store / "pilot.sqlite")) as c:
            c.execute("UPDATE meta SET value = '{x' WHERE key = 'wallets'")
            c.commit()
        needle = "meta 'wallets' is not JSON"
    else:
        store.mkdir()
        with contextlib.closing(sqlite3.connect(store / "pilot.sqlite")) as c:
            for t in ("meta", "sessions", "sightings", "paths", "heads"):
                c.execute(f"CREATE TABLE {t} (x)")
            c.commit()
        needle = "has columns x"
    runs = (["-m", "monitor", "pilot", "status", "--store", str(store)],
            ["-m", "monitor", "pilot", "--store", str(store), "--ws-url", "ws://127.0.0.1:9/",
             "--rpc-url", "http://127.0.0.1:9/", "--explorer-url", "http://127.0.0.1:9/api",
             "--wallet", "0x" + "11" * 20, "--start-block", "1"],
            ["-m", "experiments", "reconcile", str(store), "--out", str(tmp_path / "out")])
    for args in runs:
        res = subprocess.run([PY, *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env={"RPC_URL": "http://127.0.0.1:9/", "PATH": ""})
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        last = res.stderr.strip().splitlines()[-1]
        assert "not a pilot store" in last and needle in last, (args, last)


_HOLD_PILOT = """
import sys
from monitor.pilot import PilotStore
s = PilotStore(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
"""


def test_a_second_pilot_on_one_store_is_refused_naming_the_first(tmp_path: Path) -> None:
    """Two pilots on one --store both ran; status then showed an uptime of 166 %."""
    store = tmp_path / "store"
    holder = subprocess.Popen([PY, "-c", _HOLD_PILOT, str(store)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        res = subprocess.run([PY, "-m", "monitor", "pilot", "--store", str(store),
                              "--ws-url", "ws://127.0.0.1:9/", "--rpc-url",
                              "http://127.0.0.1:9/", "--explorer-url",
                              "http://127.0.0.1:9/api", "--wallet", "0x" + "11" * 20,
                              "--start-block", "1"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 2 and "READY" not in res.stdout, res.stderr
        assert res.stderr.strip().splitlines()[-1] == (
            f"python -m monitor pilot: error: pilot store {store} is in use by another "
            f"pilot (pid {holder.pid})")
        assert status(store)["sessions"] == 0  # the refused one recorded nothing
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_status_never_shows_an_uptime_above_100_percent(tmp_path: Path) -> None:
    from monitor.pilot import PilotStore, pilot_status

    store = tmp_path / "store"
    s = PilotStore(store)
    session = s.new_session(0, 0)
    s.beat(session, "websocket", dt_s=0, healthy=True, fallback=False, state="CONNECTED",
           head=1, cursor=1, wall_ns=0, mono_ns=0)
    # two processes' beats on one session: 200 s healthy in a 100 s span
    for path in ("websocket", "polling"):
        s.beat(session, path, dt_s=200.0, healthy=True, fallback=False, state="CONNECTED",
               head=2, cursor=2, wall_ns=100 * 10**9, mono_ns=100 * 10**9)
    s.close()
    st = pilot_status(store, now_wall_ns=100 * 10**9)
    assert st["span_s"] == 100.0
    assert st["paths"]["websocket"]["uptime"] == st["paths"]["polling"]["uptime"] == 1.0
