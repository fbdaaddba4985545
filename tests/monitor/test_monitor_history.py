"""The monitor's history: one redacted JSON line a row, whatever the field holds."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.clock import ManualClock
from monitor.history import History
from monitor.redact import register_secret

SECRET = "HISTsecret0123456789abcdefKEY"


class _Opaque:
    """A value JSON has no form for: the history writes its text."""

    def __str__(self) -> str:
        return f"failed at wss://node.example/v2/{SECRET}"


def test_every_field_is_redacted_at_any_depth_and_in_any_type(tmp_path: Path) -> None:
    register_secret(SECRET)
    h = History(tmp_path / "h.jsonl", clock=ManualClock(1.0))
    h.record("x", text=f"key={SECRET}", nested={"a": [f"/{SECRET}/"]}, obj=_Opaque(),
             n=3, f=0.5, flag=True, none=None, items=(SECRET,))
    h.close()
    text = (tmp_path / "h.jsonl").read_text()
    assert SECRET not in text
    row = json.loads(text)
    assert (row["n"], row["f"], row["flag"], row["none"]) == (3, 0.5, True, None)
    assert row["items"] == ["***"] and row["nested"] == {"a": ["/***/"]}
    assert row["obj"] == "failed at wss://node.example/v2/***"


def test_a_delivered_row_is_the_compact_json_of_its_fields(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl", clock=ManualClock(2.0))
    row = h.record("delivered", trade_id="0x" + "ab" * 32 + ":7", source="ws",
                   block_number=12, block_hash="0x" + "cd" * 32)
    h.close()
    assert (tmp_path / "h.jsonl").read_text() == json.dumps(row, separators=(",", ":")) + "\n"
    assert list(row) == ["t_ns", "event", "trade_id", "source", "block_number", "block_hash"]
