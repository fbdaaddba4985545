"""What the render-ahead helper builds so the replay's process does not: the explorer
archive's keys of each block (shipped, equal to what the explorer built itself), and a
filter index that shares its logs' strings (less to pickle, unpickle and hold). Filters
select the same logs from it as scanning every log does, on synthetic blocks. The helper
spaces its garbage collections out as the run's own process does."""

from __future__ import annotations

import gc
import multiprocessing
import random
import threading
from typing import Any

import pytest

import simulator.render_ahead as render_ahead
from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_TOPICS, TRANSFER, TRANSFER_SINGLE
from simulator import explorer
from simulator.chain import PreparedBlock
from simulator.filters import BlockIndex, LogFilter, archive_keys
from simulator.recording import RecordedBlock
from simulator.render_ahead import AheadSynthSource
from simulator.source import SynthSource

N = 48
_PREFIX = "0x" + "0" * 24


def _reference_keys(rb: RecordedBlock) -> frozenset[str]:
    """The explorer's archive keys as it built them before the helper shipped them."""
    def low(v: Any) -> str:
        return v.lower() if isinstance(v, str) else ""

    keys: set[str] = set()
    for tx in rb.transactions:
        keys.add(low(tx.get("from")))
        keys.add(low(tx.get("to")))
    for lg in rb.logs:
        if lg.get("removed"):
            continue
        keys.add(low(lg.get("address")))
        topics = lg.get("topics") or ()
        if topics:
            t0 = low(topics[0])
            keys.add("0x" + t0[-40:] if len(t0) == 66 and t0.startswith(_PREFIX) else t0)
            token = t0 in (TRANSFER, TRANSFER_SINGLE)
            for t in topics[1:]:
                t = low(t)
                if token or t.startswith(_PREFIX):
                    keys.add("0x" + t[-40:].lower())
    keys.discard("")
    return frozenset(keys)


def test_the_helper_ships_each_blocks_archive_keys_and_the_explorer_takes_them() -> None:
    ahead = AheadSynthSource("default", seed=3, blocks=N)
    try:
        assert ahead.helper_alive
        seen = 0
        while (got := ahead.next_block()) is not None:
            assert isinstance(got, PreparedBlock)
            plain = RecordedBlock(got.block, got.logs, got.transactions)
            assert got.archive_keys == _reference_keys(plain) == archive_keys(plain)
            assert explorer._block_keys(got) is got.archive_keys  # not built again
            assert explorer._block_keys(plain) == got.archive_keys  # built here
            seen += 1
        assert seen == N and ahead.helper_failures == 0
    finally:
        ahead.close()


def test_archive_keys_of_mixed_case_and_removed_logs() -> None:
    a, b, c = "0x" + "Ab" * 20, "0x" + "cD" * 20, "0x" + "eF" * 20
    pad = _PREFIX + c[2:]
    rb = RecordedBlock(
        block={"number": "0x1", "hash": "0x" + "1" * 64},
        logs=[{"address": a, "topics": [TRANSFER.upper().replace("0X", "0x"), pad,
                                        "0x" + "0" * 63 + "1"]},
              {"address": b, "topics": [pad], "removed": False},
              {"address": "0x" + "9" * 40, "topics": ["0x" + "7" * 64], "removed": True}],
        transactions=[{"from": b, "to": None}])
    assert archive_keys(rb) == _reference_keys(rb) == {
        a.lower(), b.lower(), c.lower(), TRANSFER, "0x" + "0" * 39 + "1"}


def test_a_block_index_shares_its_logs_strings_when_they_are_lowercase() -> None:
    src = SynthSource("default", seed=3, blocks=N)
    held = 0
    while (rb := src.next_block()) is not None:
        index = BlockIndex(rb.logs)
        for i, lg in enumerate(rb.logs):
            assert index.addresses[i] is lg["address"]
            assert all(x is y for x, y in zip(index.topics[i], lg["topics"], strict=True))
            held += 1
    assert held > N  # the chain has logs
    upper = {"address": "0x" + "AB" * 20, "topics": ["0x" + "CD" * 32]}
    index = BlockIndex([upper])
    assert index.addresses == ["0x" + "ab" * 20] and index.topics == [["0x" + "cd" * 32]]


def test_filters_select_what_scanning_selects_on_synthetic_blocks() -> None:
    blocks = []
    src = SynthSource("default", seed=3, blocks=N)
    while (rb := src.next_block()) is not None:
        blocks.append(rb)
    makers = sorted({lg["topics"][2] for rb in blocks for lg in rb.logs
                     if len(lg["topics"]) > 2 and lg["topics"][0] in ORDER_FILLED_TOPICS})
    assert makers
    rnd = random.Random(5)
    objs: list[Any] = [None, {}, {"address": list(DEFAULT_EXCHANGES)},
                       {"address": list(DEFAULT_EXCHANGES),
                        "topics": [list(ORDER_FILLED_TOPICS)]},
                       {"topics": [None, None, ["0x" + "5" * 64]]}]
    for k in (1, 2, 20):
        objs.append({"address": list(DEFAULT_EXCHANGES),
                     "topics": [list(ORDER_FILLED_TOPICS), None,
                                rnd.sample(makers, min(k, len(makers)))]})
        objs.append({"topics": [None, None, rnd.sample(makers, min(k, len(makers)))]})
    hits = 0
    for obj in objs:
        flt = LogFilter.parse(obj)
        for rb in blocks:
            want = [i for i, lg in enumerate(rb.logs) if flt.matches(lg)]
            assert flt.select(BlockIndex(rb.logs)) == want, obj
            hits += len(want)
    assert hits


def test_the_helper_freezes_its_start_up_heap_and_spaces_its_collections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in this process (the collector's calls recorded, not made): before its first
    block the helper freezes what it built and sets thresholds far above the default 700
    (young collections were ~7 % of its CPU); the blocks it sends are the same."""
    calls: list[Any] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(render_ahead.signal, "signal", lambda *a: None)  # keep Ctrl-C
    reader, writer = multiprocessing.Pipe(duplex=False)
    profile = SynthSource("default", seed=3, blocks=1).profile
    # in a thread: the pipe's buffer may hold less than what it sends
    helper = threading.Thread(target=render_ahead._render_loop,
                              args=(writer, profile, 3, 4, 32, 2), daemon=True)
    helper.start()
    try:
        assert reader.poll(120)
        got = [render_ahead._decode(reader.recv_bytes()) for _ in range(2)]
    finally:
        reader.close()
        helper.join(120)
    assert not helper.is_alive()
    assert "freeze" in calls
    thresholds = [c for c in calls if isinstance(c, tuple)]
    assert thresholds and thresholds[-1][0] >= 10_000
    assert calls.index("freeze") < calls.index(thresholds[-1])
    ref = SynthSource("default", seed=3, blocks=4)
    sent = [item[:3] for batch in got for item in batch]
    assert sent == [(b.block, b.logs, b.transactions)
                    for b in iter(ref.next_block, None)]
