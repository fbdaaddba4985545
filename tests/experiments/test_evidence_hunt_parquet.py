"""Evidence hunt: pandas installed, pyarrow missing (a partial harness install). The
commands said nothing useful: ``python -m experiments analyze`` (and ``run``, after its
scenarios) ended in pandas' ImportError traceback, ``python -m reports build`` called every
scenario's outcomes "could not be read (ImportError)", an INCONCLUSIVE verdict blaming the
data. Now both say which package is missing and how to install it, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.checker import require_parquet

# pyarrow made unimportable (as on an install without it), then the command's main
_BLOCKED = ("import sys; sys.modules['pyarrow'] = None; "
            "from {module}.cli import main; sys.exit(main({argv!r}))")


def _run(module: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-c", _BLOCKED.format(module=module, argv=argv)],
                          cwd=root, capture_output=True, text=True, timeout=120, env=env)


def _stored_run(tmp_path: Path) -> Path:
    """A run store with one hand-made scenario analysed (its parquet tables written)."""
    from exp_helpers import make_scenario_dir

    from experiments.analysis import analyze_scenario_dir

    run = tmp_path / "run"
    sdir = make_scenario_dir(run)
    (run / "manifest.json").write_text(json.dumps({"scenarios": [sdir.name]}),
                                       encoding="utf-8")
    assert analyze_scenario_dir(sdir)["status"] == "ok"
    return run


@pytest.mark.parametrize(("module", "command"), [("reports", "build"),
                                                 ("experiments", "analyze")])
def test_a_missing_pyarrow_is_one_line_naming_it_and_the_install(tmp_path, module, command):
    run = _stored_run(tmp_path)
    res = _run(module, [command, str(run)], tmp_path)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    line = res.stderr.strip()
    assert line.count("\n") == 0, line
    assert f"python -m {module}: error: pyarrow is not installed" in line
    assert "pip install '.[harness]'" in line
    assert not (run / "report.html").exists()


def test_require_parquet_names_pyarrow(monkeypatch):
    require_parquet()  # installed here: nothing to say
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ModuleNotFoundError) as info:
        require_parquet()
    assert info.value.name == "pyarrow"
