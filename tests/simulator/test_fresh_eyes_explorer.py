"""Fresh-eyes review of the archiving explorer (e3e9113): rows rebuilt for archived
blocks must be what an explorer listing every block answers."""
from __future__ import annotations

from polyvocab import ORDER_FILLED_TOPICS, TRANSFER
from simulator.chain import Chain
from simulator.explorer import Explorer, ExplorerSettings
from simulator.settings import SimSettings
from simulator.source import SynthSource

NS = 1_000_000_000


def test_an_or_of_topics_over_archived_blocks_answers_each_log_once() -> None:
    """Issue: ``topic0=Transfer or topic2=<address>`` over blocks an archiving explorer
    let go merged the two topics' lists and dropped a log both hold only when it was the
    same object twice; each list rebuilt the archived blocks it reached, and past the
    rebuilt blocks kept (64) the second list rebuilt the block again, so a log matching
    both topics was answered twice (303 rows where the whole chain's explorer answered
    302, every page after it shifted). Now each log is answered once, as the explorer
    that lists every block answers."""
    chain = Chain(SynthSource("default", seed=3, blocks=200, checkpoint_every=4),
                  settings=SimSettings(history_blocks=2, window_blocks=4))
    kept = Explorer(ExplorerSettings(rate_per_s=1e9, retain_blocks=4, archive=True), chain)
    whole = Explorer(ExplorerSettings(rate_per_s=1e9), chain)
    now = 0
    for step in range(198):
        now += 3 * NS
        chain.advance(now, limit=1)
        kept.keep_up(now)
        if step == 150:  # a query meanwhile: the index lists blocks from there on
            kept.handle("/v2/api", {"module": "logs", "action": "getLogs", "topic0": TRANSFER,
                                    "chainid": "137", "apikey": "k"}, now)
    now += 100 * NS
    chain.advance(now)
    kept.keep_up(now)
    blocks = chain.blocks
    seen: list[int] = []
    # makers (OrderFilled's topic2) that receive transfers now and then: their logs
    # match both topics, and blocks apart in the merged lists
    fills = {lg["topics"][2] for b in blocks for lg in b.logs
             if lg["topics"][0] in ORDER_FILLED_TOPICS}
    for to in sorted(fills)[:8]:
        for sort in ("asc", "desc"):
            for page, offset in ((1, 1000), (3, 400)):
                q = {"module": "logs", "action": "getLogs", "topic0": TRANSFER,
                     "topic2": to, "topic0_2_opr": "or", "sort": sort, "page": str(page),
                     "offset": str(offset), "fromBlock": str(blocks[20].number),
                     "toBlock": str(blocks[-3].number), "chainid": "137", "apikey": "k"}
                now += NS
                want = whole.handle("/v2/api", q, now).json()
                got = kept.handle("/v2/api", q, now).json()
                assert want["status"] == "1"
                rows = [(r["blockNumber"], r["logIndex"]) for r in got["result"]]
                assert len(rows) == len(set(rows)), ("a log answered twice", to, sort)
                assert got == want, (to, sort, page, offset)
                seen.append(len(got["result"]))
    assert seen[0] == 1000 and seen[2] == 1000  # the cap, and a page past it
