"""``simulator record`` asks a range of logs again in halves when the answer is past the
JSON-RPC client's bounds (its bytes or, since this stop, its JSON values: 1,500,000).
A busy Polygon range of ``logs_chunk`` blocks (~1,000 logs a block, ~15 values a log) comes
near that bound; the recorder failed with "malformed JSON-RPC reply" where a smaller range
would have fit."""

from __future__ import annotations

import pytest
from test_record import FIRST, FakeNode, hand_built_chain, record, rows

from polyvocab import jsonrpc_http
from simulator.errors import RecordError


def test_logs_past_the_value_bound_are_asked_in_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    # an answer of more than 2 logs is past the bound (one block's, at most 2, fits)
    monkeypatch.setattr(jsonrpc_http, "values_ok",
                        lambda text, limit: text.count('"logIndex"') <= 2)
    chain = hand_built_chain()
    node = FakeNode(chain)
    recording, stats, _ = record(node)
    assert rows(recording.blocks) == rows(chain)
    assert stats.splits > 0


def test_one_block_past_the_value_bound_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # no answer with a log fits
    monkeypatch.setattr(jsonrpc_http, "values_ok", lambda text, limit: '"logIndex"' not in text)
    with pytest.raises(RecordError, match="JSON values"):
        record(FakeNode(hand_built_chain()), first=FIRST + 2, last=FIRST + 2)
