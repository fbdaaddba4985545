"""A Ctrl-C of ``python -m experiments`` while it is still starting (importing the
modules of its command, before the command's own handling of KeyboardInterrupt): exit
130 and 'interrupted', no traceback. Before, a Ctrl-C of ``experiments run`` in its
first second printed KeyboardInterrupt's traceback through dataclasses' exec and exited
with SIGINT's status. The SIGINT is sent from inside the import, so it lands there every
time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.cli_checks import ROOT

_CTRL_C_AT_IMPORT = textwrap.dedent("""
    import os, runpy, signal, sys

    TARGET = sys.argv[1]

    class CtrlC:
        def find_spec(self, name, path=None, target=None):
            if name == TARGET:
                os.kill(os.getpid(), signal.SIGINT)  # lands at the next bytecode
            return None

    sys.meta_path.insert(0, CtrlC())
    sys.argv = ["experiments", "validate", "none.toml"]
    runpy.run_module("experiments", run_name="__main__", alter_sys=True)
""")


@pytest.mark.parametrize("module", ["experiments.cli", "experiments.matrix",
                                    "experiments.scenario"])
def test_a_ctrl_c_while_it_starts_is_exit_130_without_a_traceback(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_AT_IMPORT, module], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "interrupted" in proc.stderr
