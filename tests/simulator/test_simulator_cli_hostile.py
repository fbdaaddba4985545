"""Hostile input to ``python -m simulator``, run as a user runs it (a subprocess): each
case is one ``error: ...`` line, exit code 2, no traceback, and no hang (a timeout)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def sim(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "simulator", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "rec.jsonl.gz"
    res = sim("synth", "--profile", "default", "--blocks", "4", "--seed", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def _rewrite(src: Path, dst: Path, edit_line: int, edit: object) -> Path:
    lines = _lines(src)
    lines[edit_line] = edit if isinstance(edit, str) else json.dumps(edit)
    with gzip.open(dst, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return dst


@pytest.mark.parametrize("command", ["synth", "import-trades", "record"])
def test_an_empty_out_path_is_one_line(command: str, tmp_path: Path) -> None:
    """``--out ''`` was a ValueError traceback (``PosixPath('.') has an empty name``)."""
    args = {"synth": ["synth", "--profile", "default", "--blocks", "2"],
            "import-trades": ["import-trades", str(tmp_path / "t.csv")],
            "record": ["record", "--rpc", "http://127.0.0.1:9/", "--from", "1", "--to", "2"]}
    one_line_error(sim(*args[command], "--out", ""), "--out", "an empty path")


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """``inspect``, ``serve --recording``, ``serve --config`` and ``serve --history`` on a
    FIFO hung (the open waits for a writer), signals and all."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line_error(sim("inspect", str(fifo), timeout=20), str(fifo), "not a regular file")
    for flag in ("--recording", "--config", "--history"):
        extra = [] if flag == "--recording" else ["--profile", "default"]
        res = sim("serve", *extra, flag, str(fifo), "--port", "0", timeout=20)
        one_line_error(res, str(fifo), "not a regular file")


def test_inspect_a_folder_says_folder(tmp_path: Path) -> None:
    """Was 'corrupt or truncated recording ([Errno 21] Is a directory ...)'."""
    line = one_line_error(sim("inspect", str(tmp_path)), "a folder")
    assert "corrupt" not in line


@pytest.mark.parametrize("speed", ["1e-300", "1e-10", "1e300"])
def test_serve_speed_out_of_range_is_refused(speed: str) -> None:
    """1e-300 was an OverflowError traceback at start, 1e-10 one after READY."""
    one_line_error(sim("serve", "--profile", "default", "--speed", speed, "--port", "0",
                       timeout=20), "--speed", "0.001 to 1e+06")


def test_serve_empty_host_is_refused() -> None:
    """``--host ''`` listened on every interface without a word (the default is loopback)."""
    one_line_error(sim("serve", "--profile", "default", "--host", "", "--port", "0",
                       timeout=20), "--host", "0.0.0.0")


@pytest.mark.parametrize("case", ["deep line", "log not an object", "topics not a list",
                                  "data not a string", "deep config"])
def test_a_damaged_recording_or_config_is_one_line(case: str, recording: Path,
                                                   tmp_path: Path) -> None:
    """Wrong JSON types in a log were a TypeError traceback in ``inspect`` and in ``serve``
    once the replay reached them (after READY); a line or a config nested 100,000 deep a
    RecursionError traceback."""
    row = json.loads(_lines(recording)[1])
    log = row["logs"][0] if row["logs"] else {"topics": []}
    bad = tmp_path / "bad.jsonl.gz"
    if case == "deep config":
        cfg = tmp_path / "deep.toml"
        cfg.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
        one_line_error(sim("serve", "--profile", "default", "--config", str(cfg),
                           "--port", "0", timeout=20), str(cfg), "nested too deep")
        return
    edit: object = {"deep line": "[" * 100_000 + "]" * 100_000,
                    "log not an object": {**row, "logs": [5]},
                    "topics not a list": {**row, "logs": [{**log, "topics": 5}]},
                    "data not a string": {**row, "logs": [{**log, "data": 7}]}}[case]
    _rewrite(recording, bad, 1, edit)
    one_line_error(sim("inspect", str(bad)), f"{bad}:")
    one_line_error(sim("serve", "--recording", str(bad), "--port", "0", timeout=20), str(bad))
