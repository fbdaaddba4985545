"""Counters for the monitor's connections and clients, serialisable for the ``stop`` row.

:class:`WsMetrics` belongs to one WebSocket connection: connects, reconnect attempts,
disconnects by cause, messages and bytes received, notifications, errors by kind, API
calls by method, heartbeat round trips, and time in each state (computed from the state
changes and ``now``; :meth:`WsMetrics.to_dict` reports it in simulated seconds).
:class:`CallCounter` (from :mod:`polyvocab.jsonrpc_http`) counts API calls by kind and
method for the HTTP clients.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from monitor.connection import ConnState, StateTimer
from polyvocab.jsonrpc_http import CallCounter

__all__ = ["CallCounter", "WsMetrics", "merge", "peak_rss_bytes"]


@dataclass(slots=True)
class WsMetrics:
    """One WebSocket connection's counters. ``speed`` converts clock to simulated seconds."""

    speed: float = 1.0
    connects: int = 0
    reconnect_attempts: int = 0
    connect_failures: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    bytes_received: int = 0
    notifications: int = 0
    heads: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    api_calls: CallCounter = field(default_factory=CallCounter)
    pings: int = 0
    rtt_max_s: float = 0.0
    rtt_last_s: float | None = None
    timer: StateTimer = field(default_factory=StateTimer)

    def start(self, now: float) -> None:
        self.timer = StateTimer(ConnState.DISCONNECTED, now)

    def state(self, state: ConnState, now: float) -> None:
        self.timer.enter(state, now)

    def received(self, nbytes: int) -> None:
        self.messages += 1
        self.bytes_received += nbytes

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def pong(self, rtt: float | None) -> None:
        """A pong came; ``rtt`` (clock seconds) is kept only if it is a duration: a clock
        that went back (negative) or a NaN would have become ``rtt_max_s`` for good."""
        self.pings += 1
        if rtt is not None and math.isfinite(rtt) and rtt >= 0:
            self.rtt_last_s = rtt
            self.rtt_max_s = max(self.rtt_max_s, rtt)

    def time_in_state(self, now: float) -> dict[str, float]:
        """Simulated seconds spent in each state up to ``now``."""
        return {k: v * self.speed for k, v in self.timer.snapshot(now).items()}

    def uptime(self, now: float) -> float | None:
        """Share of time CONNECTED since start (None before any time has passed)."""
        t = self.timer.snapshot(now)
        total = sum(t.values())
        return t[ConnState.CONNECTED.value] / total if total > 0 else None

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "reconnect_attempts": self.reconnect_attempts,
            "connect_failures": self.connect_failures,
            "disconnects": dict(self.disconnects),
            "messages": self.messages,
            "bytes_received": self.bytes_received,
            "notifications": self.notifications,
            "heads": self.heads,
            "errors": dict(self.errors),
            "api_calls": self.api_calls.to_dict(),
            "pings": self.pings,
            "rtt_max_s": self.rtt_max_s,
            "time_in_state_s": self.time_in_state(now),
            "uptime": self.uptime(now),
        }


_NOT_SUMMED = frozenset({"uptime", "rtt_max_s"})


def merge(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine several ``to_dict`` outputs (e.g. of sharded connections) key by key.

    Counts and times add up, nested dicts merge, ``rtt_max_s`` takes the maximum and
    ``uptime`` the minimum (the feed is as healthy as its weakest connection).
    """
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            if k in _NOT_SUMMED and isinstance(v, int | float):
                prev = out.get(k)
                if prev is None:
                    out[k] = v
                else:
                    out[k] = max(prev, v) if k == "rtt_max_s" else min(prev, v)
            elif isinstance(v, bool) or v is None:
                out.setdefault(k, v)
            elif isinstance(v, int | float):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, dict):
                out[k] = merge([out.get(k, {}), v])
            else:
                out[k] = v
    return out


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes.

    Linux keeps ``ru_maxrss`` across ``execve``, so a process started by a big parent
    (a test runner, the experiment harness) would report the parent's peak. ``VmHWM`` in
    ``/proc/self/status`` belongs to the current image; ``ru_maxrss`` is the fallback
    where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
