"""The checker's fault lookup by binary search gives what the linear scan gave: the first
window (in list order) whose span plus the recovery tail holds the time, or None."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.checker import FaultWindow, _fault_of, _FaultLookup

_window = st.builds(
    lambda name, start, length: FaultWindow(name, start, start + length),
    st.sampled_from(["ws_drop", "ws_stall", "reorg", "rpc_outage", "explorer_429"]),
    st.integers(0, 10_000), st.integers(0, 3_000))


@settings(max_examples=400, deadline=None)
@given(windows=st.lists(_window, max_size=40), tail=st.integers(0, 2_000),
       times=st.lists(st.integers(-100, 16_000), min_size=1, max_size=60),
       in_order=st.booleans())
def test_lookup_equals_the_scan(windows: list[FaultWindow], tail: int, times: list[int],
                                in_order: bool) -> None:
    if in_order:  # as fault_windows gives them; the other case is any order
        windows = sorted(windows, key=lambda w: (w.start_ns, w.name))
    lookup = _FaultLookup(windows, tail)
    edges = [w.start_ns for w in windows] + [w.stop_ns + tail for w in windows]
    probes = times + edges + [e + 1 for e in edges] + [e - 1 for e in edges]
    for t in probes:
        assert lookup(t) == _fault_of(t, windows, tail), (t, windows, tail)


def test_nested_and_overlapping_windows() -> None:
    windows = [FaultWindow("long", 0, 1_000), FaultWindow("short", 10, 20),
               FaultWindow("late", 900, 2_000)]
    lookup = _FaultLookup(windows, 5)
    assert [lookup(t) for t in (-1, 0, 15, 1_005, 1_006, 2_005, 2_006)] == [
        None, "long", "long", "long", "late", "late", None]
