"""Files the monitor opens: private, regular, and never waited on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.history import History
from monitor.private_files import NotRegularFile, check_regular, open_private


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    return fifo


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    """``--history`` naming a FIFO blocked in open() for ever (wait_for_partner), after the
    signal handlers were installed: only SIGKILL ended it."""
    fifo = _fifo(tmp_path)
    with pytest.raises(NotRegularFile, match="not a regular file"):
        open_private(fifo)
    with pytest.raises(NotRegularFile):
        check_regular(fifo)
    with pytest.raises(Exception, match=r"history file .*pipe: not a regular file"):
        History(fifo)


def test_a_fifo_is_refused_even_with_a_reader_on_it(tmp_path: Path) -> None:
    """With a reader the open would succeed: the fstat after it still refuses."""
    fifo = _fifo(tmp_path)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(NotRegularFile):
            open_private(fifo)
    finally:
        os.close(reader)


def test_a_regular_file_is_created_private_and_appended(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "h.jsonl"
    with open_private(f) as fh:
        fh.write("a\n")
    with open_private(f) as fh:
        fh.write("b\n")
    assert f.read_text() == "a\nb\n" and f.stat().st_mode & 0o777 == 0o600
    check_regular(f)
    check_regular(tmp_path / "missing")  # created later: fine
