"""Per-trade stage stamps of the live WebSocket path (the latency budget, issue 11).

When ``latency_stages`` is on, a live trade carries the machine-wide monotonic time (ns) at
each step from its frame to the sink, and its detection row gets a ``stages`` dict::

    {"recv_ns": <absolute t_ns the frame left ws.recv()>,
     "parse": ns after recv_ns (JSON parsed),
     "queue": ... (its batch taken from the live queue by the delivery task),
     "decode": ... (its log decoded), "dedup": ... (its dedup decision made),
     "persist": ... (the batch's SQLite commit done),
     "deliver": ... (the sink's row stamped: ``t_ns - recv_ns``)}

Offsets are cumulative, so they never decrease along the path. Cost when on: two clock
reads per frame, two per log, two per batch. Off (the default): none. The simulator side
(``block_published`` ``t_ns`` and ``fanout_ns``) is joined by the analysis
(:mod:`experiments.latency_budget`); nothing here reads a clock.
"""

from __future__ import annotations

__all__ = ["MONITOR_STAGES", "FrameStamps", "stage_offsets"]

#: monitor-side stages in path order (each a cumulative offset from ``recv_ns``)
MONITOR_STAGES = ("parse", "queue", "decode", "dedup", "persist", "deliver")

#: ``(recv_ns, parsed_ns)`` of one WebSocket frame
FrameStamps = tuple[int, int]


def stage_offsets(frame: FrameStamps, queue_ns: int, decode_ns: int, dedup_ns: int,
                  persist_ns: int) -> dict[str, int]:
    """The ``stages`` dict of one trade (``deliver`` is added by the sink)."""
    recv = frame[0]
    return {"recv_ns": recv, "parse": frame[1] - recv, "queue": queue_ns - recv,
            "decode": decode_ns - recv, "dedup": dedup_ns - recv,
            "persist": persist_ns - recv}
