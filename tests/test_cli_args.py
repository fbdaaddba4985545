"""polyvocab.cli_args: every tool's argument mistakes are one redacted line, exit code 2."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def _tools() -> dict[str, Callable[[list[str]], int]]:
    from experiments.cli import main as experiments
    from monitor.cli import main as monitor
    from reports.cli import main as reports
    from simulator.cli import main as simulator

    return {"simulator": simulator, "experiments": experiments, "reports": reports,
            "monitor": monitor}


@pytest.mark.parametrize(("tool", "argv", "line"), [
    # the simulator printed argparse's whole usage block before its error
    ("simulator", ["synth", "--profile", "default", "--blocks", "x", "--out", "o"],
     "error: argument --blocks: not an integer: 'x'"),
    ("simulator", ["serve", "--bogus"], "error: unrecognized arguments: --bogus"),
    ("experiments", ["run", "--jobs", "0"], "error: argument --jobs: must be at least 1"),
    ("reports", ["build"], "python -m reports build: error: the following arguments are"),
    ("monitor", ["run", "--bogus"], "python -m monitor: error: unrecognized arguments"),
    # a key in a mistaken value is masked like everywhere else
    ("simulator", ["record", "--from", "https://h/v2/K3yInAWrongPlace99", "--to", "2",
                   "--out", "o"], "error: argument --from: "),
])
def test_an_argument_mistake_is_one_line_and_exit_2(
        tool: str, argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _tools()[tool](argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith(line), err
    assert "usage:" not in err and "K3yInAWrongPlace99" not in err


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    # `simulator inspect X | head -1` said "error: Broken pipe" and exited 2
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "inspect",
                             str(root / "simulator" / "data" / "today.jsonl.gz")], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child writes a line (it is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err


@pytest.mark.parametrize(("module", "argv"), [
    ("experiments", ["list"]), ("experiments", ["run", "--quick"]),
    ("reports", ["build", "results/latest"])])
def test_a_monitor_only_install_gets_one_line_not_an_import_traceback(
        module: str, argv: list[str]) -> None:
    """``pip install .`` (the monitor and the pilot, as docs/pilot.md installs them) has
    no pandas: ``python -m experiments`` and ``python -m reports`` (the pilot's reconcile
    and report) ended in a ModuleNotFoundError traceback. One line says what to install."""
    import subprocess
    import sys
    from pathlib import Path

    code = (f"import sys; sys.modules['pandas'] = None\n"
            f"from {module}.cli import main\nraise SystemExit(main({argv!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip() == (
        f"python -m {module}: error: pandas is not installed: the experiments and reports "
        "need the harness extra (pip install '.[harness]'); the monitor and the pilot run "
        "without it")
