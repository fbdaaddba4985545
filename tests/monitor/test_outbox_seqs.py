"""``Store.commit_many`` returns each queued event with the seq the outbox row got (the
seqs are counted out after the insert, not read back: issue 11, CPU a trade). Random
batches, with keys queued before (ignored by the insert), retractions, duplicates inside
a batch, prunes that delete the highest seq, "sent" marks and reopening the file: the
items returned are always exactly the rows the batch added, by seq."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cores import decision, dedup_entry
from monitor.store import Store
from monitor.trades import Trade

_WALLET = "0x" + "11" * 20


def _trade(n: int) -> Trade:
    return Trade(id=f"0x{n:064x}:1", tx_hash=f"0x{n:064x}", log_index=1, wallet=_WALLET,
                 side="BUY", token_id=str(n + 7), maker_amount=5_000_000 + n,
                 taker_amount=10_000_000, fee_raw=n, block_number=100 + n,
                 block_hash=f"0x{n + 1:064x}", block_timestamp=None,
                 exchange="0x" + "22" * 20, version=2, taker="0x" + "33" * 20,
                 order_hash="0x" + "ef" * 32)


def _row(n: int, gen: int, retract: bool) -> tuple[Any, ...]:
    t = _trade(n)
    entry = dedup_entry(t.block_hash, retract, gen, gen if retract else 0, _WALLET)
    kind = "retraction" if retract else "trade"
    return (decision(True, kind, gen, entry), t.id, "ws", None if retract else t)


_OPS = st.lists(st.one_of(
    st.tuples(st.just("batch"), st.lists(st.tuples(st.integers(0, 12), st.integers(1, 3),
                                                   st.booleans()), min_size=1, max_size=8)),
    st.tuples(st.just("mark"), st.integers(0, 100)),
    st.tuples(st.just("prune"), st.none()),
    st.tuples(st.just("reopen"), st.none())), min_size=1, max_size=14)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_OPS)
def test_the_items_of_a_batch_are_the_rows_it_added(tmp_path: Path, ops: list[Any]) -> None:
    path = tmp_path / "s.db"
    for p in tmp_path.glob("s.db*"):
        p.unlink()
    store = Store(path, synchronous="OFF")
    try:
        for op, arg in ops:
            if op == "batch":
                before = {r[0] for r in store._db.execute("SELECT seq FROM outbox")}
                items = store.commit_many([_row(n, g, r) for n, g, r in arg])
                added = [r for r in store._db.execute(
                    "SELECT seq, kind, trade_id, generation, source, block_hash, payload "
                    "FROM outbox ORDER BY seq") if r[0] not in before]
                assert [(i.seq, i.kind, i.trade_id, i.generation, i.source, i.block_hash,
                         i.payload) for i in items] == added
                for i in items:
                    assert (i.trade is None) == (i.kind == "retraction")
                    assert i.trade is None or i.trade.to_json() == i.payload
                assert len({(i.kind, i.trade_id, i.generation) for i in items}) == len(items)
            elif op == "mark":
                seqs = [r[0] for r in store._db.execute("SELECT seq FROM outbox WHERE sent=0")]
                store.mark_sent_later(seqs[:arg])
            elif op == "prune":
                store.prune_outbox()
            else:
                store.close()
                store = Store(path, synchronous="OFF")
    finally:
        store.close()


def test_a_key_queued_before_is_not_returned_and_the_rest_keep_their_seqs(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    first = store.commit_many([_row(1, 1, False), _row(2, 1, False)])
    assert [i.seq for i in first] == [1, 2]
    store.mark_sent_later([1, 2])
    store.prune_outbox()  # the table is empty; AUTOINCREMENT goes on after 2
    again = store.commit_many([_row(3, 1, False), _row(4, 1, False)])
    assert [(i.seq, i.trade_id) for i in again] == [(3, _trade(3).id), (4, _trade(4).id)]
    mixed = store.commit_many([_row(4, 1, False), _row(5, 1, False), _row(3, 1, False),
                               _row(6, 1, False)])  # 4 and 3 are queued already: ignored
    assert [i.trade_id for i in mixed] == [_trade(5).id, _trade(6).id]
    pending = store.pending()
    assert [(i.seq, i.trade_id) for i in pending] == [
        (3, _trade(3).id), (4, _trade(4).id), *((i.seq, i.trade_id) for i in mixed)]
    assert mixed[0].seq < mixed[1].seq
    store.close()
