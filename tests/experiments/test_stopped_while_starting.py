"""A process stopped (SIGTERM) while it starts a ``spawn`` child: the child still gets
what it is to run, and nothing prints a traceback. Before, the child read a closed pipe
and printed ``EOFError: Ran out of input`` from ``multiprocessing.spawn`` on the shared
terminal: a fresh-clone CI saw it after a Ctrl-C of ``experiments run`` stopped a pool
worker just as its render-ahead helper was starting.

The stop is made to land in that window every time: the script's parent kills itself
with SIGTERM just after the child's interpreter is started and before its data is
written (``multiprocessing.util.spawnv_passfds`` wrapped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli_checks import ROOT

# the child imports this file again as __mp_main__ (spawn): all of it under the guard
_STOPPED_AT_START = textwrap.dedent("""
    import os, signal, sys, time
    from multiprocessing import resource_tracker, util
    from pathlib import Path

    def started_then_stopped(*args, **kwargs):
        pid = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the stop, before the child's data is sent
        return pid

    if __name__ == "__main__":
        resource_tracker.ensure_running()  # started first, not under test
        real = util.spawnv_passfds
        util.spawnv_passfds = started_then_stopped
""")

_RENDER_AHEAD = """
    from simulator.render_ahead import AheadSynthSource
    AheadSynthSource("default", seed=3, blocks=50)
"""

_SECOND_PROCESS = """
    from experiments.analysis import _SecondProcess
    _SecondProcess(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.parametrize("body", [_RENDER_AHEAD, _SECOND_PROCESS],
                         ids=["render_ahead_helper", "analysis_second_process"])
def test_a_child_started_as_its_parent_is_stopped_starts_whole(tmp_path: Path,
                                                               body: str) -> None:
    monitor_rows, detections = tmp_path / "monitor_history.jsonl", tmp_path / "det.jsonl"
    monitor_rows.write_text("")
    detections.write_text("")
    script = tmp_path / "stopped.py"
    script.write_text(_STOPPED_AT_START + body + "    time.sleep(60)\n")
    proc = subprocess.run(  # stderr closes when the children have ended too
        [sys.executable, str(script), str(monitor_rows), str(detections)], cwd=ROOT,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "Ran out of input" not in proc.stderr
