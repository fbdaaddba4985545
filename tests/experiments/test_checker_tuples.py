"""The checker's row tuples (built from column lists) hold what ``itertuples`` held."""

from __future__ import annotations

import pandas as pd

from experiments.checker import _tuples


def test_same_rows_as_itertuples() -> None:
    frame = pd.DataFrame({
        "t_ns": [3, 1, 2], "kind": ["trade", "retraction", "trade"],
        "source": ["ws", None, "poll"], "trade_id": ["0xa:1", "0xb:2", "0xa:1"],
        "wallet": [None, "0xw", "0xw"], "block_number": [7, None, 9],
        "canonical": [True, False, True], "class": ["x", "y", "z"],
    }).astype({"kind": "string", "source": "string", "trade_id": "string",
               "wallet": "string", "block_number": "Int64"})
    frame = frame.sort_values("t_ns", kind="stable")
    want = list(frame.itertuples(index=False))
    got = list(_tuples(frame))
    assert [type(r)._fields for r in got] == [type(r)._fields for r in want]
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for a, b in zip(g, w, strict=True):
            assert (pd.isna(a) and pd.isna(b)) or (a == b and not pd.isna(a)), (g, w)
            assert isinstance(a, str) == isinstance(b, str)
    assert list(_tuples(frame.iloc[0:0])) == []
