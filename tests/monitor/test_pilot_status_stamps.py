"""``pilot status``'s latencies leave out a trade whose block is stamped after the pilot
saw it (past clock skew): an explorer row's hostile or wrong ``timeStamp`` (2^62) made
the percentiles huge negative numbers. Left out and counted, and said so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monitor_helpers import order_filled

from monitor.pilot import PilotStore, format_status, pilot_status
from monitor.sinks import SinkEvent
from monitor.trades import decode_order_filled

_S = 1_000_000_000


def test_a_block_stamped_after_its_sighting_is_left_out_of_the_latencies(
        tmp_path: Path) -> None:
    wall = 1_800_000_000 * _S
    store = PilotStore(tmp_path)
    try:
        session = store.new_session(wall, 1)
        for tx, stamp, seen_after_s in ((1, 1_800_000_000 - 3, 0), (2, 2**62, 0),
                                        (3, 1_800_000_000 + 30, 0)):  # 30 s: skew, kept
            trade = decode_order_filled(order_filled(tx=tx))
            trade = dataclasses.replace(trade, block_timestamp=stamp)
            event = SinkEvent("trade", trade.id, 1, "poll", trade.block_hash, trade)
            assert store.record("polling", event, wall_ns=wall + seen_after_s * _S,
                                mono_ns=1, session=session)
    finally:
        store.close()
    st = pilot_status(tmp_path, now_wall_ns=wall)
    lat = st["paths"]["polling"]["latency_s"]
    assert st["paths"]["polling"]["trades"] == 3
    assert st["paths"]["polling"]["latency_left_out"] == 1
    assert lat["p50"] == -13.5 and lat["max"] == 3.0  # of -30 (skew) and 3
    assert "1 left out: block stamped after it was seen" in format_status(st)
