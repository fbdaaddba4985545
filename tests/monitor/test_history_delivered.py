"""``History.delivered`` (the pipeline's row a delivered trade, written without the
generic field loop) writes the line ``History.record("delivered", ...)`` writes, for any
values: hex ids, texts json escapes, a registered secret inside them, block numbers of
any size or None, values of other types (which go through ``record``), a clock that is
not an int; subclasses overriding ``record`` still get their ``record`` called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.history import History, NullHistory
from monitor.redact import register_secret

_SECRET = "s3cr3t-key-for-the-delivered-row-test"
register_secret(_SECRET)


class _Clock:
    def __init__(self, value: Any) -> None:
        self.value = value

    def now_ns(self) -> Any:
        return self.value


_TEXT = (st.text() | st.sampled_from(["0x" + "ab" * 32 + ":3", "ws", "backfill", "",
                                       "a=b", "x/y", "api:1", '"', "\\", "é", "\ud800",
                                       f"0x{_SECRET}:1"]))
_VALUE = _TEXT | st.none() | st.integers() | st.booleans() | st.floats(allow_nan=True)


def _lines(tmp: Path, clock: Any, args: tuple[Any, ...]) -> tuple[str, str]:
    a, b = tmp / "a.jsonl", tmp / "b.jsonl"
    for p in (a, b):
        p.unlink(missing_ok=True)
    ha, hb = History(a, clock=clock), History(b, clock=clock)
    ha.record("delivered", trade_id=args[0], source=args[1], block_number=args[2],
              block_hash=args[3])
    hb.delivered(*args)
    ha.close()
    hb.close()
    return a.read_text(), b.read_text()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_TEXT, _TEXT, st.none() | st.integers() | st.integers(0, 10**8), _TEXT,
       st.integers(0, 2**70) | st.sampled_from([1.5, None]))
def test_the_line_is_record_s_line(tmp_path: Path, trade_id: str, source: str,
                                   block_number: int | None, block_hash: str,
                                   t_ns: Any) -> None:
    old, new = _lines(tmp_path, _Clock(t_ns), (trade_id, source, block_number, block_hash))
    assert new == old and new.count("\n") == 1
    assert _SECRET not in new


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_VALUE, _VALUE, _VALUE, _VALUE)
def test_values_of_any_type_give_record_s_line(tmp_path: Path, a: Any, b: Any, c: Any,
                                               d: Any) -> None:
    old, new = _lines(tmp_path, _Clock(7), (a, b, c, d))
    assert new == old


def test_a_subclass_s_record_and_a_null_history() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    class Keeping(History):
        def record(self, event: str, **fields: Any) -> dict[str, Any]:
            seen.append((event, fields))
            return super().record(event, **fields)

    Keeping(None).delivered("0xab:1", "ws", 5, "0xcd")
    assert seen == [("delivered", {"trade_id": "0xab:1", "source": "ws", "block_number": 5,
                                   "block_hash": "0xcd"})]
    null = NullHistory()
    null.delivered("0xab:1", "ws", 5, "0xcd")  # keeps nothing, raises nothing
    assert null.dropped == 0
