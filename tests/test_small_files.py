"""Files a user names (configs, scenarios, wallet lists, URL files) are read bounded and
checked: a huge file, ``/dev/zero``, a binary file or a directory is one line and a
failing exit, never all the memory or a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from polyvocab.small_files import SmallFileError, read_small_text

WALLET = "0x" + "11" * 20
ROOT = Path(__file__).resolve().parents[1]


def test_a_file_up_to_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "f.toml"
    f.write_text("é" * 50, encoding="utf-8")  # 100 bytes
    assert read_small_text(f, 100) == "é" * 50
    with pytest.raises(SmallFileError) as exc:
        read_small_text(f, 99)
    assert exc.value.errno == errno.EFBIG and "larger than 99 bytes" in exc.value.strerror


def test_an_endless_file_is_read_only_up_to_the_limit() -> None:
    with pytest.raises(SmallFileError, match="larger than 1,024 bytes"):
        read_small_text("/dev/zero", 1024)  # an unbounded read never returns


def test_binary_is_not_utf8_text_and_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    f = tmp_path / "b"
    f.write_bytes(b"ok\xff\xfe")
    with pytest.raises(SmallFileError) as exc:
        read_small_text(f)
    assert exc.value.errno == errno.EILSEQ and "byte 2 is 0xff" in exc.value.strerror
    with pytest.raises(FileNotFoundError):
        read_small_text(tmp_path / "none")


def test_a_folder_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as exc:
        read_small_text(tmp_path)
    assert exc.value.filename == str(tmp_path)


def test_a_fifo_is_never_waited_on_and_a_pipe_is_read_to_its_end(tmp_path: Path) -> None:
    """A FIFO with no writer: a plain open waited for one for ever (the commands check
    for FIFOs first; this reader no longer depends on it). A pipe with a writer (a shell's
    ``<(pass show token)``) is read whole. In a child process: a hang fails by timeout."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = ("import os, sys, threading\n"
            "from polyvocab.small_files import read_small_text\n"
            f"assert read_small_text({str(fifo)!r}) == ''\n"
            "r, w = os.pipe()\n"
            "def write():\n"
            "    os.write(w, b'https://node/key-part-1'); os.write(w, b'-part-2\\n')\n"
            "    os.close(w)\n"
            "threading.Thread(target=write).start()\n"
            "print(read_small_text(f'/dev/fd/{r}'), end='')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "https://node/key-part-1-part-2\n"


def _exit_code(main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's parser.error
        return int(exc.code or 0)


def _commands(path: str) -> list[tuple[Callable[[list[str]], int], list[str]]]:
    from experiments.cli import main as experiments
    from monitor.cli import main as monitor
    from simulator.cli import main as simulator

    ws = ["--ws-url", "ws://127.0.0.1:9/", "--rpc-url", "http://127.0.0.1:9/"]
    return [
        (simulator, ["serve", "--profile", "default", "--config", path]),
        (experiments, ["run", "--clock", "virtual", "--no-progress", path]),
        (monitor, ["run", *ws, "--wallet", WALLET, "--config", path]),
        (monitor, ["run", *ws, "--wallets-file", path]),
    ]


@pytest.mark.parametrize("kind", ["huge", "binary", "directory"])
def test_every_command_refuses_a_bad_file_in_one_line(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if kind == "huge":
        path = tmp_path / "huge.toml"
        path.write_bytes(b"a" * (65 << 20))  # past every limit, the wallet list's too
        says = "larger than"
    elif kind == "binary":
        path = tmp_path / "binary.toml"
        path.write_bytes(b"\x00\xff" * 100)
        says = "not UTF-8 text"
    else:
        path = tmp_path / "dir.toml"
        path.mkdir()
        says = "Is a directory"
    for main, argv in _commands(str(path)):
        code = _exit_code(main, argv)
        err = capsys.readouterr().err
        assert code != 0, argv
        # the monitor's files refuse anything not a regular file before opening it
        said = says in err or (kind == "directory" and "not a regular file" in err)
        assert said and "Traceback" not in err and err.count("\n") == 1, (argv, err)


@pytest.mark.parametrize("where", ["a directory", "under a file", "in /proc"])
def test_output_paths_that_cannot_be_written_are_one_line(
        where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``serve --history`` and ``experiments run --out`` were tracebacks."""
    from experiments.cli import main as experiments
    from simulator.cli import main as simulator

    afile = tmp_path / "a-file"
    afile.write_text("x")
    path = {"a directory": str(tmp_path), "under a file": str(afile / "x"),
            "in /proc": "/proc/no-such-dir/x"}[where]
    for main, argv in [
            (simulator, ["serve", "--profile", "default", "--port", "0", "--history", path]),
            (experiments, ["run", "--clock", "virtual", "--no-progress", "--quick",
                           "--out", path, "reorgs"])]:
        if where == "a directory" and main is experiments:
            continue  # a folder is what --out wants
        code = _exit_code(main, argv)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and path in err, (argv, err)


def test_a_folder_that_a_file_stands_in_for_is_said_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # mkdir's "File exists" read as if the output file itself were there already
    from simulator.cli import main as simulator

    afile = tmp_path / "a-file"
    afile.write_text("x")
    for argv in (["synth", "--profile", "default", "--blocks", "3",
                  "--out", str(afile / "x.jsonl.gz")],
                 ["serve", "--profile", "default", "--port", "0",
                  "--history", str(afile / "h.jsonl")]):
        assert _exit_code(simulator, argv) == 2
        err = capsys.readouterr().err
        assert f"{afile} is a file, not a folder" in err and "File exists" not in err, err


def test_a_write_that_fails_names_its_file(tmp_path: Path) -> None:
    """A write failing at its flush (``/dev/full``: ENOSPC) raised an ``OSError`` without a
    file name, and ``reports build --json /dev/full`` said "No space left on device" alone."""
    from polyvocab.small_files import file_error_text, write_text_file

    with pytest.raises(OSError) as err:
        write_text_file("/dev/full", "x" * 10)
    assert err.value.filename == "/dev/full"
    assert file_error_text(err.value) == "No space left on device: /dev/full"
    missing = tmp_path / "no" / "such.json"
    with pytest.raises(FileNotFoundError) as gone:  # its own name kept, its kind too
        write_text_file(missing, "{}")
    assert gone.value.filename == str(missing)
    write_text_file(tmp_path / "ok.json", "{}")
    assert (tmp_path / "ok.json").read_text(encoding="utf-8") == "{}"
