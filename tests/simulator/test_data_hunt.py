"""Data hunt: imports and recordings checked against what the real data looks like.

The rows are modelled on the real Data-API /trades export of the Nobel 2025 event
(shared/data, never read here): 500-row pages, and past the API's offset cap the same page
again and again."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_import_trades import COLUMNS, COND, T0, TOKEN_A, TOKEN_B, W1, W2, W3, write_csv
from test_record import FIRST, FakeNode, hand_built_chain, record

from monitor.trades import decode_order_filled
from polyvocab import ORDER_FILLED_TOPICS
from simulator.chainshape import logs_bloom
from simulator.cli import main
from simulator.errors import RecordError
from simulator.profiles import get_profile
from simulator.recording import RecordedBlock, load_recording
from simulator.synth import build_universe, plan_blocks


def _tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def _page(start: int) -> list[list[object]]:
    """Four distinct one-row transactions, as a taker-only page has them."""
    return [[w, side, tok, COND, size, price, T0 + 2 * (start + i), "t", "s", "nobel", "Yes", 0,
             _tx(start + i)]
            for i, (w, side, tok, size, price) in enumerate([
                (W1, "BUY", TOKEN_A, "18.3", "0.869"),
                (W2, "SELL", TOKEN_B, "25", "0.003"),
                (W3, "BUY", TOKEN_A, "38.461537", "0.1299999789399992"),
                (W1, "SELL", TOKEN_B, "10.54", "0.14")])]


def _fills(path: Path) -> list[tuple[str, str, str, int]]:
    """(tx, maker, side, shares) of every OrderFilled of the recording."""
    rec = load_recording(path)
    out = []
    for b in rec.blocks:
        for lg in b.logs:
            if lg["topics"][0] in ORDER_FILLED_TOPICS:
                t = decode_order_filled(lg)
                out.append((t.tx_hash, t.wallet, t.side, t.shares_raw))
    return out


def test_a_repeated_page_of_an_export_is_not_imported_as_more_fills(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pages 1, 2, then page 3 four times (the API answers offsets past its cap with the
    same page): 12 fills, not 24. Before, each copy became another OrderFilled of the same
    wallet in the same transaction (the real export: 5,000 fills made of 1,500)."""
    rows = _page(0) + _page(4) + _page(8) * 4
    src = write_csv(tmp_path / "trades.csv", rows)
    out = tmp_path / "imported.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1].startswith("12 fills in 12 transactions")
    fills = _fills(out)
    mine = [f for f in fills if f[1] in {W1.lower(), W2, W3}]
    assert len(mine) == 12 and len(set(mine)) == 12
    assert {f[0] for f in mine} == {_tx(i) for i in range(12)}
    assert load_recording(out).source["repeated_rows"] == 12
    assert load_recording(out).source["rows"] == 12


def test_two_fills_that_differ_in_any_column_are_both_kept(tmp_path: Path) -> None:
    """Same wallet, transaction, token and side, another size: two real fills."""
    row = _page(0)[0]
    other = list(row)
    other[COLUMNS.index("size")] = "18.4"
    src = write_csv(tmp_path / "trades.csv", [row, other])
    out = tmp_path / "imported.jsonl.gz"
    assert main(["import-trades", str(src), "--out", str(out)]) == 0
    mine = [f for f in _fills(out) if f[1] == W1.lower()]
    assert sorted(f[3] for f in mine) == [18_300_000, 18_400_000]
    with gzip.open(out, "rt") as fh:
        assert json.loads(fh.readline())["source"]["repeated_rows"] == 0


def test_news_burst_takers_buy_and_size_like_the_distinct_nobel_fills() -> None:
    """The Nobel 2025 export's 1,500 distinct fills (one a match, by its taker): 71.8% BUY,
    log(size) mean 4.53. news-burst was fitted on the 5,000 rows, one page eight times
    (82% BUY, mean 4.14), and said it was the event."""
    profile = get_profile("news-burst")
    universe = build_universe(profile, 3)
    trades = [t for plan in plan_blocks(profile, 3, 12_000, universe) for t in plan.trades]
    assert len(trades) > 1500
    buy = sum(t.taker_side == "BUY" for t in trades) / len(trades)
    log_size = statistics.fmean(math.log(sum(m.shares for m in t.makers) / 1e6)
                                for t in trades)
    assert 0.67 <= buy <= 0.77, buy
    assert 4.35 <= log_size <= 4.75, log_size


# --- simulator record against a node with hostile or partial answers -----------------------

def _bloomed_chain() -> list[RecordedBlock]:
    """test_record's chain with each header's logsBloom, as every real node sends it."""
    chain = hand_built_chain()
    for b in chain:
        b.block["logsBloom"] = logs_bloom(b.logs)
    return chain


class _Node(FakeNode):
    """test_record's node, its answers edited by ``edit(request, answer)``."""

    def __init__(self, blocks: list[RecordedBlock],
                 edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        super().__init__(blocks)
        self.edit = edit

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        out = super().answer(req)
        self.edit(req, out)
        return out


def _range_logs(req: dict[str, Any]) -> bool:
    return req.get("method") == "eth_getLogs" and "fromBlock" in req["params"][0]


def _record_error(node: FakeNode) -> str:
    with pytest.raises(RecordError) as info:
        record(node)
    return str(info.value)


def test_a_bloomed_chain_records_whole() -> None:
    chain = _bloomed_chain()
    rec, _, _ = record(FakeNode(chain))
    assert [(b.block, b.logs) for b in rec.blocks] == [(b.block, b.logs) for b in chain]


def test_logs_a_lagging_node_leaves_out_are_refused_not_recorded_as_no_trades() -> None:
    """A load-balanced provider answers eth_getLogs from a backend behind the one that gave
    the headers: [] for the newest blocks. Before, the recording kept those blocks with no
    logs - their trades gone - and said nothing."""
    lag_from = hex(FIRST + 7)

    def lagging(req: dict[str, Any], out: dict[str, Any]) -> None:
        if _range_logs(req):
            out["result"] = [lg for lg in out["result"] if lg["blockNumber"] < lag_from]

    err = _record_error(_Node(_bloomed_chain(), lagging))
    assert f"block {FIRST + 7}'s logsBloom" in err and "record again" in err
    assert "SECRETKEY" not in err


def test_a_reorg_between_headers_and_logs_does_not_record_a_block_without_its_logs() -> None:
    """eth_getLogs gives block 5004's logs under the new fork's hash; by the old hash the
    node has nothing any more. Before, blocks 5000..5004 were recorded with no logs."""
    moved = hex(FIRST + 4)

    def reorg(req: dict[str, Any], out: dict[str, Any]) -> None:
        if _range_logs(req):
            out["result"] = [dict(lg, blockHash="0x" + "ee" * 32)
                             if lg["blockNumber"] == moved else lg for lg in out["result"]]
        elif req.get("method") == "eth_getLogs":
            out["result"] = []

    assert "logsBloom" in _record_error(_Node(_bloomed_chain(), reorg))


def test_logs_beyond_the_header_bloom_are_kept() -> None:
    """Bor serves state-sync logs its header bloom does not hold: not an error."""
    chain = _bloomed_chain()
    extra = dict(chain[3].logs[0] if chain[3].logs else chain[1].logs[0])
    b = chain[3]
    extra.update(blockNumber=b.block["number"], blockHash=b.hash, logIndex="0x40",
                 address="0x" + "00" * 19 + "01", topics=["0x" + "5e" * 32])
    b.logs.append(extra)
    rec, _, _ = record(FakeNode(chain))
    assert rec.blocks[3].logs[-1] == extra


def _logs_edit(f: Callable[[list[Any]], Any]) -> Callable[[dict[str, Any], dict[str, Any]],
                                                            None]:
    def edit(req: dict[str, Any], out: dict[str, Any]) -> None:
        if _range_logs(req):
            out["result"] = f(out["result"])
    return edit


def _header_edit(f: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def edit(req: dict[str, Any], out: dict[str, Any]) -> None:
        if req.get("method") == "eth_getBlockByNumber" and isinstance(out["result"], dict):
            out["result"] = f(dict(out["result"]))
    return edit


def _by_hash_answers(value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def edit(req: dict[str, Any], out: dict[str, Any]) -> None:
        if _range_logs(req):  # logs under another hash: the by-hash path runs
            out["result"] = [dict(lg, blockHash="0x" + "ee" * 32) for lg in out["result"]]
        elif req.get("method") == "eth_getLogs":
            out["result"] = value
    return edit


@pytest.mark.parametrize(("edit", "says"), [
    (_logs_edit(lambda logs: [*logs, 1]), "log [4] is not an object"),
    (_logs_edit(lambda logs: [{k: v for k, v in lg.items() if k != "blockNumber"}
                              for lg in logs]), "blockNumber is not hex"),
    (_logs_edit(lambda logs: logs + logs), "more than once"),
    (_header_edit(lambda b: {k: v for k, v in b.items() if k != "parentHash"}),
     "block field 'parentHash' is not hex"),
    (_header_edit(lambda b: {**b, "timestamp": "0xzz"}), "block field 'timestamp' is not hex"),
    (_header_edit(lambda b: {**b, "transactions": 5}), "'transactions' is not a list"),
    (_by_hash_answers({"0x1": 1}), "returned dict, not a list"),
    (_by_hash_answers([{"topics": [], "blockNumber": "0x1", "blockHash": "0x" + "ab" * 32}]),
     "logs of another block"),
], ids=["log-not-object", "log-without-number", "log-twice", "header-without-parent",
        "header-bad-timestamp", "header-transactions-not-list", "by-hash-dict",
        "by-hash-other-block"])
def test_a_malformed_answer_is_one_record_error_not_a_traceback_or_a_bad_file(
        edit: Callable[[dict[str, Any], dict[str, Any]], None], says: str) -> None:
    """Before: AttributeError, ValueError, KeyError or TypeError tracebacks, or a recording
    written that serve then refused (a bad timestamp, the keys of a dict as its logs)."""
    err = _record_error(_Node(hand_built_chain(), edit))
    assert says in err, err
