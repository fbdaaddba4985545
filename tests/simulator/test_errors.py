"""Commands at the edge: libraries raise their own errors, only simulator.cli prints them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.errors import RecordError, SimulatorError
from simulator.import_trades import TradesCsvError
from simulator.nemesis import FaultError
from simulator.settings import SettingsError

PACKAGE = Path(__file__).resolve().parents[2] / "simulator"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_simulator_module_imports_the_command_module() -> None:
    offenders = [p.name for p in PACKAGE.glob("*.py")
                 if p.name not in ("cli.py", "__main__.py")
                 and {"simulator.cli", "simulator.cli.CliError"} & imported_modules(p)]
    assert offenders == []


def test_no_library_module_defines_a_command() -> None:
    offenders = [p.name for p in PACKAGE.glob("*.py") if p.name != "cli.py"
                 and "def main_" in p.read_text(encoding="utf-8")]
    assert offenders == []


@pytest.mark.parametrize("error", [SettingsError, FaultError, TradesCsvError, RecordError])
def test_every_library_error_is_a_simulator_error(error: type[Exception]) -> None:
    assert issubclass(error, SimulatorError)


def test_a_library_error_is_one_line_and_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "trades.csv"
    bad.write_text("not,a,trades,export\n1,2,3,4\n")
    assert main(["import-trades", str(bad), "--out", str(tmp_path / "x.jsonl.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("args", "says"), [
    (["--port", "99999"], "must be a TCP port, 0-65535"),  # was OverflowError from bind()
    (["--port", "-1"], "must be >= 0"),
    (["--speed", "nan"], "must be a positive number"),
    (["--blocks", "-3"], "must be >= 0"),
])
def test_bad_serve_arguments_are_one_line_and_exit_2(
        args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--profile", "default", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
