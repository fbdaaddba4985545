"""LogFilter.select: a filter of many makers against a block of few logs costs the block's
keys, not the filter's, and selects exactly what matching each log does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.filters import BlockIndex, LogFilter

ADDRS = ["0x" + c * 40 for c in "abc"]
TOPICS = ["0x" + f"{i:064x}" for i in range(8)]


class _CountingKeys(frozenset[str]):
    """A frozenset that counts the keys iterated out of it."""

    yielded = 0

    def __iter__(self) -> Iterator[str]:
        for k in super().__iter__():
            type(self).yielded += 1
            yield k


def test_a_filter_of_many_makers_does_not_walk_them_all_for_a_small_block() -> None:
    makers = ["0x" + f"{i + 10**6:064x}" for i in range(5000)]
    want = _CountingKeys(makers)
    flt = LogFilter(topics=(None, None, want))
    logs = [{"address": ADDRS[0], "topics": [TOPICS[0], TOPICS[1], makers[17]]},
            {"address": ADDRS[0], "topics": [TOPICS[0], TOPICS[1], TOPICS[2]]}]
    _CountingKeys.yielded = 0
    assert flt.select(BlockIndex(logs)) == [0]
    # before: every one of the 5,000 makers was looked up for each block
    assert _CountingKeys.yielded <= 2


_log = st.builds(
    lambda a, ts: {"address": a, "topics": ts, "data": "0x"},
    st.sampled_from(ADDRS), st.lists(st.sampled_from(TOPICS), max_size=4))
_alts = st.one_of(st.none(), st.lists(st.sampled_from(TOPICS), min_size=1, max_size=8))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_log, max_size=12),
       st.one_of(st.none(), st.lists(st.sampled_from(ADDRS), min_size=1, max_size=3)),
       st.lists(_alts, max_size=4))
def test_select_is_what_matching_each_log_gives(logs: list[dict[str, Any]],
                                                addresses: list[str] | None,
                                                topics: list[list[str] | None]) -> None:
    obj: dict[str, Any] = {"topics": topics}
    if addresses is not None:
        obj["address"] = addresses
    flt = LogFilter.parse(obj)
    assert flt.select(BlockIndex(logs)) == [i for i, lg in enumerate(logs) if flt.matches(lg)]
