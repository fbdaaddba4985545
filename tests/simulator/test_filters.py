"""Log filters: address string or list, topics with null = any and lists = OR."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.filters import BlockIndex, FilterError, LogFilter

A = "0x" + "a" * 40
B = "0x" + "b" * 40
T = ["0x" + f"{i:064x}" for i in range(6)]


def log(address: str, *topics: str) -> dict[str, Any]:
    return {"address": address, "topics": list(topics), "data": "0x"}


LOGS = [log(A, T[0], T[1]), log(B, T[0], T[2]), log(A, T[3]), log(B, T[0], T[1], T[4])]


def pick(obj: Any) -> list[int]:
    return LogFilter.parse(obj).select(BlockIndex(LOGS))


def test_empty_filter_matches_everything() -> None:
    assert pick({}) == [0, 1, 2, 3]
    assert pick(None) == [0, 1, 2, 3]


def test_address_string_or_list_case_insensitive() -> None:
    assert pick({"address": A.upper().replace("0X", "0x")}) == [0, 2]
    assert pick({"address": [A, B]}) == [0, 1, 2, 3]
    assert pick({"address": []}) == [0, 1, 2, 3]


def test_topics_null_means_any_and_lists_mean_or() -> None:
    assert pick({"topics": [T[0]]}) == [0, 1, 3]
    assert pick({"topics": [None, T[1]]}) == [0, 3]
    assert pick({"topics": [T[0], [T[1], T[2]]]}) == [0, 1, 3]
    assert pick({"topics": [[T[0], T[3]], None, None]}) == [0, 1, 2, 3]
    assert pick({"topics": [None, None, T[4]]}) == [3]
    assert pick({"address": B, "topics": [T[0], T[1]]}) == [3]


def test_a_log_with_fewer_topics_than_the_filter_does_not_match() -> None:
    assert pick({"topics": [T[3], None, None]}) == [2]  # trailing nulls are dropped
    assert pick({"topics": [None, T[1], None, None]}) == [0, 3]
    assert pick({"topics": [T[3], T[1]]}) == []


@pytest.mark.parametrize("bad", [
    {"address": "0x123"}, {"address": "a" * 40}, {"address": 5}, {"address": "0x" + "g" * 40},
    {"topics": "0x00"}, {"topics": ["0x12"]}, {"topics": [1]}, {"topics": [None] * 5},
    {"topics": [["0xzz"]]}, "not an object",
])
def test_bad_filters_raise_filter_error(bad: Any) -> None:
    with pytest.raises(FilterError):
        LogFilter.parse(bad)


topic = st.sampled_from(T)
filters = st.fixed_dictionaries({}, optional={
    "address": st.one_of(st.sampled_from([A, B]), st.lists(st.sampled_from([A, B]))),
    "topics": st.lists(st.one_of(st.none(), topic, st.lists(topic, min_size=1)), max_size=4),
})


@settings(max_examples=300, deadline=None)
@given(filters, st.lists(st.tuples(st.sampled_from([A, B]), st.lists(topic, max_size=4)),
                         max_size=12))
def test_index_select_equals_scanning_every_log(obj: dict[str, Any],
                                                raw: list[tuple[str, list[str]]]) -> None:
    logs = [log(a, *ts) for a, ts in raw]
    flt = LogFilter.parse(obj)
    assert flt.select(BlockIndex(logs)) == [i for i, lg in enumerate(logs) if flt.matches(lg)]
