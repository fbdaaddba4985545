"""docs/pilot.md followed as a new user would: what ``pilot status`` says while a pilot
runs and after it ends, cleanly or not."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from monitor.pilot import format_status, pilot_status

ROOT = Path(__file__).resolve().parents[2]

# a stand-in pilot process: it holds the store (lock, session, one beat) as the pilot does
_HOLDER = """
import sys, time
from monitor.pilot import PilotStore
store = PilotStore(sys.argv[1])
session = store.new_session(time.time_ns(), time.monotonic_ns())
store.beat(session, "websocket", dt_s=0.0, healthy=True, fallback=False, state="CONNECTED",
           head=10, cursor=9, wall_ns=time.time_ns(), mono_ns=time.monotonic_ns())
print("READY", flush=True)
sys.stdin.read()
"""


def _holder(store: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_status_says_not_running_at_once_after_a_sigkill(tmp_path: Path) -> None:
    """After ``kill -9`` status said "running" (and "state CONNECTED") for a minute: the
    last beat was recent. The store's lock tells at once; and it says the pilot ended
    without a clean stop, and that the states shown are the last ones."""
    store = tmp_path / "pilot"
    proc = _holder(store)
    try:
        st = pilot_status(store)
        assert st["running"] and not st.get("ended") and not st.get("stalled")
        assert "running" in format_status(st) and "last state" not in format_status(st)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    st = pilot_status(store)
    assert not st["running"], "a pilot killed a moment ago is shown as running"
    assert st["ended"] == "killed"
    text = format_status(st)
    assert "without a clean stop" in text and "last state CONNECTED" in text


def test_status_says_a_clean_stop(tmp_path: Path) -> None:
    from monitor.pilot import PilotStore

    store = PilotStore(tmp_path)
    session = store.new_session(1, 1)
    store.end_session(session, 2)
    store.close()
    st = pilot_status(tmp_path)
    assert not st["running"] and st.get("ended") == "stopped"
    assert "stopped cleanly" in format_status(st)


def test_status_in_the_pilots_own_process_keeps_its_lock(tmp_path: Path) -> None:
    """Reading the lock file in the process that holds it would drop the lock (POSIX:
    closing any descriptor of the file does): status in-process must not open it."""
    from monitor.pilot import PilotStore

    store = PilotStore(tmp_path)
    try:
        store.new_session(1, 1)
        assert pilot_status(tmp_path)["running"]
        res = subprocess.run([sys.executable, "-c",
                              "import sys\nfrom monitor.pilot import PilotStore\n"
                              "PilotStore(sys.argv[1])", str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert res.returncode != 0 and "in use by another pilot" in res.stderr
    finally:
        store.close()


def test_status_into_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """``pilot status --store DIR | head -1`` printed a BrokenPipeError traceback."""
    from monitor.pilot import PilotStore

    store = PilotStore(tmp_path)
    store.new_session(1, 1)
    store.close()
    for extra in ([], ["--json"]):
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "pilot", "status", "--store",
                                 str(tmp_path), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before the status is written
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert proc.returncode == 0


def test_pilot_help_says_which_listed_flags_the_pilot_refuses() -> None:
    """``pilot --help`` lists ``--api-key KEY  explorer API key`` among ``run``'s flags,
    and the pilot refuses it: the help says so, and where keys go instead."""
    res = subprocess.run([sys.executable, "-m", "monitor", "pilot", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    text = "".join(res.stdout.split())  # argparse wraps lines, even inside a flag's name
    assert res.returncode == 0
    assert "--api-key,--telegram-tokenand--setofeitherarerefused" in text
    assert "EXPLORER_API_KEY_FILE" in text and "MONITOR_RPC_URL_FILE" in text
