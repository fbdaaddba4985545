"""record from a node whose answers are unusual: a chain id or head as a JSON number or
past 2**63, a removed log in an eth_getLogs answer. One RecordError, never a recording of
another chain or a retraction replayed as a trade's."""

from __future__ import annotations

from typing import Any

import pytest
from test_record import FakeNode, hand_built_chain, record

from simulator.errors import RecordError


class _Node(FakeNode):
    def __init__(self, overrides: dict[str, Any]) -> None:
        super().__init__(hand_built_chain())
        self.overrides = overrides

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("method") in self.overrides:
            return {"jsonrpc": "2.0", "id": req.get("id"),
                    "result": self.overrides[req["method"]]}
        return super().answer(req)


@pytest.mark.parametrize(("method", "value"), [
    ("eth_chainId", 137),            # was read as hex: chain 311 in the header
    ("eth_chainId", hex(2**256)),    # was a header no reader accepts
    ("eth_blockNumber", 99999),      # was read as hex: head 0x99999
    ("eth_chainId", "0x"),
])
def test_a_chain_id_or_head_that_is_no_hex_quantity_is_refused(method: str,
                                                               value: Any) -> None:
    with pytest.raises(RecordError, match=f"{method} answered .* not a hex quantity"):
        record(_Node({method: value}))


def test_a_removed_log_in_the_answer_is_a_reorg_to_record_again() -> None:
    node = _Node({})
    block = next(b for b in node.blocks.values() if b.logs)
    block.logs[0] = dict(block.logs[0], removed=True)
    with pytest.raises(RecordError, match=f"removed log of block {block.number}"):
        record(node)


def test_the_plain_node_still_records() -> None:
    rec, _stats, _url = record(_Node({}))
    assert rec.chain_id == 137 and len(rec.blocks) == 12


@pytest.mark.parametrize("last", [10**30, 5000 + 10_000])
def test_a_span_past_what_one_recording_holds_is_refused_before_any_call(last: int) -> None:
    """--to 10**30 ran until the node said it is past its head; --from 0 --to <head>
    held every block of the chain in memory before writing any."""
    node = _Node({})
    with pytest.raises(RecordError, match=r"blocks; at most 10,000 a recording"):
        record(node, first=5000, last=last)
    assert node.log == []
