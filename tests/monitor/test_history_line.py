"""The history writes a row by hand when its values are plain (strings, ints, bools, None,
finite floats): the line must be the bytes the JSON encoder gives for the row it returns,
whatever the fields hold (issue 11: a delivered row a trade, on the live path)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.clock import ManualClock
from monitor.history import History
from monitor.redact import register_secret

SECRET = "HISTLINEsecret0123456789abcdefKEY"

_plain = (st.text() | st.integers() | st.booleans() | st.none()
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.sampled_from([f"key={SECRET}", f"0x{'ab' * 32}:7", "wss://h/v2/" + SECRET]))
_values = _plain | st.lists(_plain, max_size=3) | st.dictionaries(st.text(max_size=5), _plain,
                                                                 max_size=3)
# record(event, **fields): a field cannot be named as its own parameters
_names = (st.text(min_size=1, max_size=12).filter(lambda n: n not in ("self", "event"))
          | st.sampled_from(["t_ns", "trade_id", "source"]))


def _encoded(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"), default=str) + "\n"


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.text(max_size=12) | st.just("delivered"),
       fields=st.dictionaries(_names, _values, max_size=6), t=st.floats(0, 1e6))
def test_a_row_is_written_as_the_encoder_writes_what_record_returns(
        tmp_path: Path, event: str, fields: dict[str, Any], t: float) -> None:
    register_secret(SECRET)
    path = tmp_path / "h.jsonl"
    path.unlink(missing_ok=True)
    h = History(path, clock=ManualClock(t))
    row = h.record(event, **fields)
    h.close()
    text = path.read_text(encoding="utf-8")
    assert text == _encoded(row)
    assert SECRET not in text
    assert list(row)[:2] == ["t_ns", "event"]


def test_plain_values_of_every_kind_and_a_stamp_given_as_a_field(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl", clock=ManualClock(3.0))
    rows = [h.record("delivered", trade_id="0x" + "ab" * 32 + ":7", source="ws",
                     block_number=12, block_hash="0x" + "cd" * 32),
            h.record("x", a=True, b=False, c=None, d=0.1, e=-(2**70), f="é\u2028\"\\"),
            h.record("x", n=math.nan, i=-math.inf),
            h.record("x", t_ns=5, later=1)]
    h.close()
    lines = (tmp_path / "h.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines == [_encoded(r) for r in rows]
    assert rows[3] == {"t_ns": 5, "event": "x", "later": 1}
