"""The recording format: a lossless round trip, and defects reported with file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.recording import (
    RecordedBlock,
    RecordingError,
    iter_recording,
    load_recording,
    save_recording,
    write_recording,
)
from simulator.synth import synthesise


@pytest.fixture(scope="module")
def small():
    return synthesise("default", seed=11, blocks=25)


def write_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def lines_of(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def test_round_trip_keeps_blocks_logs_transactions_and_header(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "r.jsonl.gz")
    back = load_recording(path)
    assert back.source == small.source and back.chain_id == 137
    assert back.extra == small.extra
    assert [b.block for b in back.blocks] == [b.block for b in small.blocks]
    assert [b.logs for b in back.blocks] == [b.logs for b in small.blocks]
    assert [b.transactions for b in back.blocks] == [b.transactions for b in small.blocks]
    assert back.header() == small.header()
    # saving what was loaded gives the same bytes
    again = save_recording(back, tmp_path / "again.jsonl.gz")
    assert again.read_bytes() == path.read_bytes()


def test_iter_recording_yields_header_then_blocks(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "r.jsonl.gz")
    header, *blocks = list(iter_recording(path))
    assert isinstance(header, dict)
    assert header["format"] == "polygon-recording" and header["blocks"] == 25
    assert [b.number for b in blocks if isinstance(b, RecordedBlock)] == [
        b.number for b in small.blocks]


def test_write_recording_refuses_a_header_that_lies(small, tmp_path: Path) -> None:
    header = {**small.header(), "blocks": 99}
    with pytest.raises(RecordingError, match="promises 99 blocks, 25 were written"):
        write_recording(tmp_path / "bad.jsonl.gz", header, small.blocks)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"nope\.jsonl\.gz: no such recording"):
        load_recording(tmp_path / "nope.jsonl.gz")


@pytest.mark.parametrize(("content", "says"), [
    (b"this is not gzip at all\n", r"not gzip-compressed \(a recording is"),
    (b'{"format": "polygon-recording"}\n{"number": 1}\n',
     r"not gzip-compressed \(it looks like plain JSON lines; .*`gzip -k junk\.jsonl\.gz`"),
    (b"", r"an empty file, not a recording"),
])
def test_a_file_that_is_not_gzip_says_what_it_is(small, tmp_path: Path, content: bytes,
                                                 says: str) -> None:
    """A plain JSON-lines file (or any other) was "corrupt or truncated recording
    (Error -3 while decompressing data: incorrect header check)": its owner looked for
    damage in a file that was only not compressed. Read whole and streamed alike."""
    from simulator.source import FileSource
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=r"junk\.jsonl\.gz: " + says):
        load_recording(path)
    with pytest.raises(RecordingError, match=r"junk\.jsonl\.gz: " + says):
        FileSource(path)
    good = save_recording(small, tmp_path / "good.jsonl.gz")  # a recording still reads
    assert len(load_recording(good).blocks) == len(small.blocks)
    assert FileSource(good).next_block() is not None


def test_truncated_gzip_is_reported(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "cut.jsonl.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"cut\.jsonl\.gz:\d+: corrupt or truncated"):
        load_recording(path)


def test_missing_rows_are_reported_as_truncated(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "short.jsonl.gz")
    write_lines(path, lines_of(path)[:-3])
    with pytest.raises(RecordingError, match=r"short\.jsonl\.gz: truncated: header promises 25"):
        load_recording(path)


def test_a_line_that_is_not_json_names_file_and_line(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "bad.jsonl.gz")
    lines = lines_of(path)
    lines[4] = lines[4][:-10]  # line 5: cut mid-object
    write_lines(path, lines)
    with pytest.raises(RecordingError, match=r"bad\.jsonl\.gz:5: not JSON"):
        load_recording(path)


def test_bad_hex_in_a_block_names_file_line_and_field(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "hex.jsonl.gz")
    lines = lines_of(path)
    row = json.loads(lines[2])
    row["block"]["timestamp"] = "0xZZ"
    lines[2] = json.dumps(row)
    write_lines(path, lines)
    with pytest.raises(RecordingError, match=r"hex\.jsonl\.gz:3: block field 'timestamp' is "
                                             r"not hex"):
        load_recording(path)


def test_non_consecutive_blocks_name_file_and_line(small, tmp_path: Path) -> None:
    path = save_recording(small, tmp_path / "gap.jsonl.gz")
    lines = lines_of(path)
    del lines[6]  # drop the block on line 7: line 7 now holds the one after it
    header = json.loads(lines[0])
    header["blocks"] -= 1
    lines[0] = json.dumps(header)
    write_lines(path, lines)
    first = small.blocks[0].number
    with pytest.raises(RecordingError, match=rf"gap\.jsonl\.gz:7: block {first + 6} does not "
                                             rf"follow block {first + 4}"):
        load_recording(path)


@pytest.mark.parametrize(("edit", "says"), [
    ("parentHash", "parentHash is not block {prev}'s hash"),
    ("timestamp", "timestamp goes back before block {prev}'s"),
])
def test_a_broken_link_in_the_chain_names_file_and_line(
        small, tmp_path: Path, edit: str, says: str) -> None:
    # a broken parentHash replayed as a reorg at every block, and `inspect` passed it
    from simulator.source import FileSource

    lines = lines_of(save_recording(small, tmp_path / "s.jsonl.gz"))
    row = json.loads(lines[4])
    if edit == "parentHash":
        row["block"]["parentHash"] = "0x" + "ab" * 32
    else:
        row["block"]["timestamp"] = hex(int(row["block"]["timestamp"], 16) - 100)
    lines[4] = json.dumps(row)
    path = write_lines(tmp_path / "b.jsonl.gz", lines)
    block, prev = small.blocks[3].number, small.blocks[2].number
    match = rf"b\.jsonl\.gz:5: block {block}'s " + says.format(prev=prev)
    with pytest.raises(RecordingError, match=match):
        load_recording(path)
    source = FileSource(path)
    with pytest.raises(RecordingError, match=match):
        while source.next_block() is not None:
            pass


def test_wrong_header_and_version_are_refused(small, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.jsonl.gz", ['{"format": "something-else"}'])
    with pytest.raises(RecordingError, match=r"h\.jsonl\.gz:1: not a polygon-recording header"):
        load_recording(path)
    path = write_lines(tmp_path / "v.jsonl.gz",
                       ['{"format": "polygon-recording", "version": 7, "blocks": 0}'])
    with pytest.raises(RecordingError, match=r"v\.jsonl\.gz:1: format version 7"):
        load_recording(path)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("chain_id", "x", "chain_id must be a non-negative integer"),
    ("chain_id", None, "chain_id must be a non-negative integer"),
    ("chain_id", True, "chain_id must be a non-negative integer"),
    ("first_block", "a", "first_block must be a non-negative integer"),
    ("last_block", None, "last_block must be a non-negative integer"),
    ("blocks", "many", "blocks must be a non-negative integer"),
    ("blocks", -1, "blocks must be a non-negative integer"),
    ("source", "str", "source must be an object"),
    ("wallets", 5, "wallets must be a list of addresses"),
    ("wallets", ["0x12"], "wallets must be a list of addresses"),
    ("wallets", [["0x" + "ab" * 20, "7"]], "wallets must be a list of addresses"),
])
def test_a_header_field_of_the_wrong_type_is_refused_by_name(
        small, tmp_path: Path, field: str, value: Any, says: str) -> None:
    # "chain_id": "x" was a ValueError traceback in inspect and serve; "blocks": "many",
    # "first_block": "a" and "wallets": 5 were taken without a word
    from simulator.source import FileSource

    lines = lines_of(save_recording(small, tmp_path / "s.jsonl.gz"))
    header = json.loads(lines[0])
    header[field] = value
    path = write_lines(tmp_path / "h.jsonl.gz", [json.dumps(header), *lines[1:]])
    with pytest.raises(RecordingError, match=rf"h\.jsonl\.gz:1: header field {says}"):
        load_recording(path)
    with pytest.raises(RecordingError, match=rf"h\.jsonl\.gz:1: header field {says}"):
        FileSource(path)


def test_empty_file_and_wrong_row_shapes_are_refused(small, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "e.jsonl.gz", [])
    with pytest.raises(RecordingError, match=r"e\.jsonl\.gz: empty file"):
        load_recording(path)
    good = lines_of(save_recording(small, tmp_path / "s.jsonl.gz"))
    path = write_lines(tmp_path / "row.jsonl.gz", [good[0], "[1, 2]"])
    with pytest.raises(RecordingError, match=r"row\.jsonl\.gz:2: expected"):
        load_recording(path)
    row = json.loads(good[1])
    row["logs"] = {"not": "a list"}
    path = write_lines(tmp_path / "logs.jsonl.gz", [good[0], json.dumps(row)])
    with pytest.raises(RecordingError, match=r"logs\.jsonl\.gz:2: 'logs' is not a list"):
        load_recording(path)


def test_an_endless_line_is_refused_before_it_is_held_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip "bomb" (one 800 MB line from a 0.8 MB file) took 1.7 GB before its error; a
    line past the bound is refused as it is read, by the loader and the streamed reader."""

    import simulator.recording as recording
    import simulator.source as source
    from simulator.source import FileSource

    monkeypatch.setattr(recording, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(source, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(json.dumps({"format": "polygon-recording", "version": 1, "chain_id": 137,
                             "blocks": 2}).encode() + b"\n")
        fh.write(b"a" * 5000)  # no newline, ever
    with pytest.raises(RecordingError, match=r"bomb\.jsonl\.gz:2: a line longer than 1,000"):
        load_recording(path)
    src = FileSource(path)
    with pytest.raises(RecordingError, match=r"bomb\.jsonl\.gz:2: a line longer than 1,000"):
        src.next_block()
    src.close()
