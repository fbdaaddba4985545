"""A virtual-clock run whose manifest.json is gone, unreadable or without its clock: the
clock comes from the scenarios' own run.json (the runner writes it in each). Before, the
report took such a run for a real-clock one: its build --json said clock 'real', and the
claims called its protocol latencies (0 s on a virtual clock) a speed-1 measurement and
confirmed the latency claim on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from reports.load import load_run, run_clock
from tests.cli_checks import copy_of_run, run_module


@pytest.fixture(scope="module")
def virtual_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run --clock virtual`` of a 40-block chain, websocket."""
    tmp = tmp_path_factory.mktemp("virtual")
    path = tmp / "tiny.toml"
    path.write_bytes(tomli_w.dumps({
        "name": "tiny", "profile": "default", "seed": 3, "blocks": 40,
        "sim_duration_s": 30, "grace_s": 5, "speed": 1, "wallets": {"count": 20}}).encode())
    res = run_module("experiments", "run", str(path), "--clock", "virtual", "--no-progress",
                     "--out", str(tmp / "out"))
    assert res.returncode == 0, res.stderr
    return (tmp / "out" / "latest").resolve()


MANIFEST = {
    "gone": lambda p: p.unlink(),
    "garbage": lambda p: p.write_text("{\"clock\": "),
    "no_clock": lambda p: p.write_text(json.dumps(
        {k: v for k, v in json.loads(p.read_text()).items() if k != "clock"})),
}


@pytest.mark.parametrize("damage", sorted(MANIFEST))
def test_the_clock_of_a_run_without_a_manifest_clock_is_the_scenarios(
        virtual_run: Path, tmp_path: Path, damage: str) -> None:
    run_dir = copy_of_run(virtual_run, tmp_path)
    assert run_clock(load_run(run_dir)) == "virtual"
    MANIFEST[damage](run_dir / "manifest.json")
    assert run_clock(load_run(run_dir)) == "virtual"


def test_the_report_of_a_virtual_run_without_its_manifest_says_virtual(
        virtual_run: Path, tmp_path: Path) -> None:
    run_dir = copy_of_run(virtual_run, tmp_path)
    (run_dir / "manifest.json").unlink()
    res = run_module("reports", "build", str(run_dir), "--json", str(tmp_path / "v.json"))
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "v.json").read_text())["clock"] == "virtual"
    html = (run_dir / "report.html").read_text()
    assert "not measured (virtual clock)" in html
    assert "manifest.json is missing" in html  # and still said


def test_a_manifest_that_names_its_clock_is_believed(virtual_run: Path,
                                                    tmp_path: Path) -> None:
    run_dir = copy_of_run(virtual_run, tmp_path)
    path = run_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "clock": "real"}))
    assert run_clock(load_run(run_dir)) == "real"
