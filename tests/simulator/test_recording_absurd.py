"""Recordings damaged or made by hand: absurd numbers, logs of another block, a header
that lies about its range, gzip cut short. One error naming file and line, never a
replay of a chain that never was."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.recording import RecordingError, load_recording, save_recording
from simulator.source import FileSource
from simulator.synth import synthesise


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = save_recording(synthesise("busy", seed=5, blocks=3),
                          tmp_path_factory.mktemp("rec") / "r.jsonl.gz")
    rows = [json.loads(x) for x in gzip.decompress(path.read_bytes()).splitlines()]
    assert rows[1]["logs"], "the fixture needs a block with logs"
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows)))
    return path


def _last_only(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A recording of its last block alone (no next block to contradict it)."""
    last = json.loads(json.dumps(rows[-1]))
    head = dict(rows[0], blocks=1)
    n = int(last["block"]["number"], 16)
    head.update(first_block=n, last_block=n)
    return [head, last]


def _set_block(key: str, value: str) -> Callable[[list[dict[str, Any]]], None]:
    def edit(rows: list[dict[str, Any]]) -> None:
        rows[1]["block"][key] = value
        if key == "number":
            rows[0].pop("first_block"), rows[0].pop("last_block")
    return edit


def _set_log(key: str, value: str) -> Callable[[list[dict[str, Any]]], None]:
    def edit(rows: list[dict[str, Any]]) -> None:
        rows[1]["logs"][0][key] = value
    return edit


def _set_head(key: str, value: int) -> Callable[[list[dict[str, Any]]], None]:
    def edit(rows: list[dict[str, Any]]) -> None:
        rows[0][key] = value
    return edit


CASES = {
    # was a recording served as a block 2**256 / at a time 10**69 years ahead
    "number_2_256": (_set_block("number", hex(2**256)), ":2: block field 'number' is out"),
    "timestamp_2_256": (_set_block("timestamp", hex(2**256)),
                        ":2: block field 'timestamp' is out"),
    # was served as it stood: a trade in a block the chain never had
    "log_other_number": (_set_log("blockNumber", "0x7"), ":2: logs[0].blockNumber 0x7 is not"),
    "log_2_256": (_set_log("blockNumber", hex(2**256)), ":2: logs[0].blockNumber"),
    "log_other_hash": (_set_log("blockHash", "0x" + "ee" * 32), ":2: logs[0].blockHash"),
    # was read: the header said one range, the blocks were another
    "first_block_lies": (_set_head("first_block", 5), ":2: the first block is"),
    "last_block_lies": (_set_head("last_block", 10**9), ": the last block is"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_absurd_recording_is_one_error_naming_the_line(
        case: str, lines: list[dict[str, Any]], tmp_path: Path) -> None:
    edit, needle = CASES[case]
    rows = _last_only(lines)
    edit(rows)
    path = _write(tmp_path / "r.jsonl.gz", rows)
    with pytest.raises(RecordingError) as err:
        load_recording(path)
    assert str(err.value).startswith(str(path)) and needle in str(err.value), err.value


@pytest.mark.parametrize("case", ["number_2_256", "timestamp_2_256", "log_other_number",
                                  "first_block_lies", "last_block_lies"])
def test_the_streaming_source_refuses_them_too(case: str, lines: list[dict[str, Any]],
                                               tmp_path: Path) -> None:
    edit, needle = CASES[case]
    rows = _last_only(lines)
    edit(rows)
    path = _write(tmp_path / "r.jsonl.gz", rows)
    with pytest.raises(RecordingError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        src = FileSource(path)
        try:
            while src.next_block() is not None:  # serve's --start-at counts from the header
                pass
        finally:
            src.close()


def test_gzip_cut_short_names_the_line_it_reached(lines: list[dict[str, Any]],
                                                  tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl.gz", lines)
    path.write_bytes(path.read_bytes()[:-12])  # the trailer and a little of the stream
    with pytest.raises(RecordingError, match=r"r\.jsonl\.gz:\d+: corrupt or truncated "
                                             r"recording, after \d+ whole line"):
        load_recording(path)


def test_the_recording_as_written_still_reads(lines: list[dict[str, Any]],
                                              tmp_path: Path) -> None:
    assert len(load_recording(_write(tmp_path / "r.jsonl.gz", _last_only(lines))).blocks) == 1
    assert len(load_recording(_write(tmp_path / "all.jsonl.gz", lines)).blocks) == 3
