"""Operating the monitor: Prometheus metrics, ``/healthz`` and ``/readyz`` over aiohttp.

::

    GET /metrics   Prometheus text format (prometheus-client), read from the monitor(s)
                   at scrape time: nothing on the hot path but the latency histogram
    GET /healthz   200 while the process serves requests (liveness)
    GET /readyz    200 when every part is alive and no feed is down past its limit,
                   503 otherwise; the body (JSON) says which part is not

The server binds ``127.0.0.1`` by default (``metrics_host``); ``metrics_port`` None or 0
leaves it off. It holds at most :data:`MAX_CONNECTIONS` connections (past it: 503, closed)
and closes one idle :data:`IDLE_TIMEOUT_S` without a complete request; ``/metrics`` reads
the monitors at most once every :data:`SCRAPE_EVERY_S` (the answer is served again
meanwhile), and a client's malformed requests are one log line a minute.
One :class:`OpsServer` can serve several monitors (the pilot's two paths),
each labelled (``path="websocket"``); every server has its own
:class:`~prometheus_client.CollectorRegistry`, never the process-global one, so several
monitors (tests) live side by side.

Readiness (:func:`readiness`): :meth:`WalletMonitor.ready` (no supervised task dead or
restarting, no manager loop dead) and, for each WebSocket shard, the feed not unhealthy
for longer than ``fallback_after`` (simulated seconds): past that the monitor runs
degraded on the explorer fallback, which an operator must see.

Metrics (all prefixed ``monitor_``): ``ready``, ``task_alive{task}``,
``task_restarts_total{task}``, ``connection_state{conn,state}`` (1 for the current state),
``reconnects_total{conn}``, ``feed_healthy{conn}``, ``fallback_active{conn}``,
``head_block{conn}``, ``node_head_block{conn}``, ``head_lag_blocks{conn}`` (node head minus
feed head, 0 when the feed is level), ``cursor_block{conn}``,
``detection_latency_seconds{source}`` (histogram: wall clock at the sink minus the block
timestamp; 1 s resolution, provider delay included),
``detection_latency_unusable_total{source,reason}`` (trades whose latency could not be
measured: no block timestamp, one before Polygon existed, one in the future; they are not in
the histogram, whose quantiles they would have made decades), ``api_calls_total{kind,method}``
(kind ``rpc_http`` / ``rpc_ws`` / ``explorer``), ``errors_total{kind}``,
``outbox_pending``, ``trades_delivered_total{source}``, ``retractions_total``,
``history_dropped_total``.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitor.connection import ConnState
from monitor.errors import ConfigError
from monitor.sinks import Sink, SinkEvent
from polyvocab.connection_cap import ConnectionCap
from polyvocab.http_log import BadRequestLog

__all__ = [
    "FUTURE_TOLERANCE_S",
    "IDLE_TIMEOUT_S",
    "LATENCY_BUCKETS",
    "MAX_CONNECTIONS",
    "TIMESTAMP_FLOOR",
    "LatencyHistogram",
    "MonitorCollector",
    "ObservedSink",
    "OpsServer",
    "detection_latency",
    "readiness",
]

log = logging.getLogger("monitor.ops")

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
                   300.0)


#: block timestamps before this (2020-01-01 UTC; Polygon PoS began in 2020-05) are no
#: block's: 0 (a node that wrote ``0x0``) made a latency of 56 years
TIMESTAMP_FLOOR = 1_577_836_800
#: seconds a block timestamp may be ahead of this machine's clock and still count as a
#: latency of 0 (timestamps are whole seconds; clocks differ by some); past it, unusable
FUTURE_TOLERANCE_S = 2.0


class LatencyHistogram:
    """Detection latencies (seconds) by source, in fixed buckets. Pure: no clock, no I/O.

    A sample that is no latency (negative, NaN, infinite) is not observed: it is counted
    in :attr:`unusable` by source and reason, so the buckets' quantiles stay true."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self.unusable: dict[tuple[str, str], int] = {}  # (source, reason) -> trades

    def observe(self, source: str, seconds: float) -> bool:
        """Record one latency; False (and counted as unusable) if it is none."""
        if not math.isfinite(seconds):
            return self.unusable_sample(source, "not_finite")
        if seconds < 0:
            return self.unusable_sample(source, "negative")
        counts = self._counts.setdefault(source, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self._sums[source] = self._sums.get(source, 0.0) + seconds
        return True

    def unusable_sample(self, source: str, reason: str) -> bool:
        """Count a trade whose latency could not be measured (``reason``); False."""
        key = (source, reason)
        self.unusable[key] = self.unusable.get(key, 0) + 1
        return False

    def count(self, source: str | None = None) -> int:
        if source is not None:
            return sum(self._counts.get(source, ()))
        return sum(sum(c) for c in self._counts.values())

    def series(self) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
        """Per source: cumulative ``(le, count)`` pairs (``+Inf`` last) and the sum."""
        for source, counts in sorted(self._counts.items()):
            cum, out = 0, []
            for le, n in zip((*self.buckets, float("inf")), counts, strict=True):
                cum += n
                out.append(("+Inf" if le == float("inf") else repr(float(le)), float(cum)))
            yield source, out, self._sums[source]


def detection_latency(block_timestamp: object, now: float) -> float | str:
    """Seconds from a block's timestamp to ``now`` (wall clock), or why there is none:
    ``"no_timestamp"`` (absent, not a number), ``"before_chain"`` (before
    :data:`TIMESTAMP_FLOOR`: 0 among them), ``"future"`` (ahead of ``now`` by more than
    :data:`FUTURE_TOLERANCE_S`; less is clock skew, a latency of 0), ``"not_finite"``."""
    if isinstance(block_timestamp, bool) or not isinstance(block_timestamp, int | float):
        return "no_timestamp"
    if not math.isfinite(block_timestamp) or not math.isfinite(now):
        return "not_finite"
    if block_timestamp < TIMESTAMP_FLOOR:
        return "before_chain"
    seconds = now - float(block_timestamp)
    if seconds < -FUTURE_TOLERANCE_S:
        return "future"
    return max(0.0, seconds)


class ObservedSink:
    """Passes every event to ``inner``; for a delivered trade, records in ``histogram``
    ``clock() - block_timestamp`` (``clock``: wall seconds), or counts the trade as
    unusable there when that is no latency (:func:`detection_latency`)."""

    def __init__(self, inner: Sink, histogram: LatencyHistogram, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.histogram = histogram
        self._clock = clock

    async def emit(self, event: SinkEvent) -> None:
        await self.inner.emit(event)
        trade = event.trade
        if event.kind == "trade" and trade is not None:
            latency = detection_latency(trade.block_timestamp, self._clock())
            if isinstance(latency, str):
                self.histogram.unusable_sample(event.source, latency)
            else:
                self.histogram.observe(event.source, latency)

    def close(self) -> None:
        self.inner.close()


def readiness(monitor: Any) -> tuple[bool, dict[str, Any]]:
    """(ready, details) for one :class:`~monitor.wallet_monitor.WalletMonitor`."""
    tasks = monitor.tasks_alive()
    feeds: dict[str, Any] = {}
    ok = bool(monitor.ready())
    now = monitor.clock.now()
    for shard in getattr(monitor, "shards", []):
        since = shard.fallback.unhealthy_since
        limit = shard.s.scaled(shard.s.fallback_after)
        down_s = None if since is None else (now - since) * shard.s.speed
        down_past = (since is not None and now - since > limit) or \
            shard.manager.state is ConnState.FAILED
        feeds[shard.conn_id] = {"state": shard.manager.state.value,
                                "healthy": shard.healthy_now(), "down_s": down_s,
                                "down_past_limit": down_past}
        ok = ok and not down_past
    return ok, {"ready": ok, "tasks": tasks, "feeds": feeds}


def _labels(base: dict[str, str], **extra: str) -> tuple[list[str], list[str]]:
    merged = {**base, **extra}
    return list(merged), list(merged.values())


class _Families:
    """Metric families built once per scrape, filled monitor by monitor."""

    def __init__(self, label_names: list[str]) -> None:
        self.base = label_names
        self.fams: dict[str, Metric] = {}

    def _fam(self, kind: str, name: str, doc: str, extra: Sequence[str]) -> Metric:
        fam = self.fams.get(name)
        if fam is None:
            labels = [*self.base, *extra]
            if kind == "counter":
                fam = CounterMetricFamily(name, doc, labels=labels)
            elif kind == "histogram":
                fam = HistogramMetricFamily(name, doc, labels=labels)
            else:
                fam = GaugeMetricFamily(name, doc, labels=labels)
            self.fams[name] = fam
        return fam

    def gauge(self, name: str, doc: str, base: list[str], value: float,
              **extra: str) -> None:
        fam = self._fam("gauge", name, doc, list(extra))
        assert isinstance(fam, GaugeMetricFamily)
        fam.add_metric([*base, *extra.values()], value)

    def counter(self, name: str, doc: str, base: list[str], value: float,
                **extra: str) -> None:
        fam = self._fam("counter", name, doc, list(extra))
        assert isinstance(fam, CounterMetricFamily)
        fam.add_metric([*base, *extra.values()], value)

    def histogram(self, name: str, doc: str, base: list[str], buckets: list[tuple[str, float]],
                  total: float, **extra: str) -> None:
        fam = self._fam("histogram", name, doc, list(extra))
        assert isinstance(fam, HistogramMetricFamily)
        fam.add_metric([*base, *extra.values()], buckets, total)


class MonitorCollector:
    """A prometheus-client collector reading monitors at scrape time.

    ``monitors``: ``(labels, monitor)`` pairs; every pair has the same label names."""

    def __init__(self, monitors: Sequence[tuple[dict[str, str], Any]]) -> None:
        self.monitors = list(monitors)
        names = [list(labels) for labels, _ in self.monitors]
        if any(n != names[0] for n in names):
            raise ValueError("every monitor needs the same label names")
        self.label_names = names[0] if names else []

    def collect(self) -> Iterable[Metric]:
        f = _Families(self.label_names)
        for labels, mon in self.monitors:
            try:
                self._one(f, list(labels.values()), mon)
            except Exception as exc:  # a scrape never takes the monitor down
                log.warning("metrics: reading the monitor failed (%s: %s)",
                            type(exc).__name__, exc)
        return list(f.fams.values())

    def _one(self, f: _Families, base: list[str], mon: Any) -> None:
        p = "monitor_"
        ready, _ = readiness(mon)
        f.gauge(p + "ready", "1 when every part is alive and no feed is down past its "
                "limit", base, 1.0 if ready else 0.0)
        for task, alive in sorted(mon.tasks_alive().items()):
            f.gauge(p + "task_alive", "1 while the supervised task runs", base,
                    1.0 if alive else 0.0, task=task)
        restarts: dict[str, int] = dict(mon.supervisor.restarts) if mon.supervisor else {}
        errors: dict[str, float] = {}
        calls: dict[tuple[str, str], float] = {}
        for shard in mon.shards:
            m = shard.manager
            restarts[f"ws-manager-{shard.conn_id}"] = m.crashes
            md = m.metrics_dict()
            for st in ConnState:
                f.gauge(p + "connection_state", "1 for the connection's current state", base,
                        1.0 if m.state is st else 0.0, conn=shard.conn_id, state=st.value)
            f.counter(p + "reconnects", "connections lost (then re-made)", base,
                      float(sum(md.get("disconnects", {}).values())), conn=shard.conn_id)
            f.gauge(p + "feed_healthy", "1 while heads flow on a connected socket", base,
                    1.0 if shard.healthy_now() else 0.0, conn=shard.conn_id)
            f.gauge(p + "fallback_active", "1 while explorer polling stands in for the feed",
                    base, 1.0 if shard.fallback.polling else 0.0, conn=shard.conn_id)
            head, node = shard.head, shard.node_head
            f.gauge(p + "head_block", "latest head from the feed", base,
                    float(head if head is not None else 0), conn=shard.conn_id)
            f.gauge(p + "node_head_block", "latest head of the node over HTTP (probe)", base,
                    float(node if node is not None else 0), conn=shard.conn_id)
            lag = max(0, node - head) if head is not None and node is not None else 0
            f.gauge(p + "head_lag_blocks", "node head minus feed head", base, float(lag),
                    conn=shard.conn_id)
            cur = shard.cursor()
            f.gauge(p + "cursor_block", "last block verified by a query", base,
                    float(cur if cur is not None else 0), conn=shard.conn_id)
            for method, n in md.get("api_calls", {}).get("calls", {}).items():
                key = ("rpc_ws", str(method))
                calls[key] = calls.get(key, 0) + n
            for kind, n in md.get("errors", {}).items():
                errors[f"ws_{kind}"] = errors.get(f"ws_{kind}", 0) + n
            for kind in ("sync_errors", "deliver_errors", "live_queue_overflow", "bad_head",
                         "head_jump", "bad_log"):
                if shard.counters.get(kind):
                    errors[kind] = errors.get(kind, 0) + shard.counters[kind]
        for task, n in sorted(restarts.items()):
            f.counter(p + "task_restarts", "crashes of a supervised task (each restarted)",
                      base, float(n), task=task)
        if mon.rpc is not None:
            for method, n in mon.rpc.calls.items():
                calls[("rpc_http", str(method))] = float(n)
            if mon.rpc.failures:
                errors["rpc_http"] = float(mon.rpc.failures)
        if mon.explorer is not None:
            for method, n in mon.explorer.calls.calls.items():
                calls[("explorer", str(method))] = float(n)
            for kind, n in mon.explorer.calls.failures.items():
                errors[f"explorer_{kind}"] = float(n)
        for (kind, method), n in sorted(calls.items()):
            f.counter(p + "api_calls", "API requests sent", base, float(n), kind=kind,
                      method=method)
        if mon.pipeline is not None:
            pc = mon.pipeline.counters
            for kind in ("decode_errors", "sink_errors", "store_rejected"):
                if pc.get(kind):
                    errors[kind] = float(pc[kind])
            for src in ("ws", "backfill", "poll"):
                f.counter(p + "trades_delivered", "trades handed to the sink", base,
                          float(pc.get(f"delivered_{src}", 0)), source=src)
            f.counter(p + "retractions", "retractions handed to the sink", base,
                      float(pc.get("retracted", 0)))
        if mon.poller is not None and mon.poller.counters.get("errors"):
            errors["polling"] = float(mon.poller.counters["errors"])
        for kind, n in sorted(errors.items()):
            f.counter(p + "errors", "errors by kind", base, float(n), kind=kind)
        if mon.store is not None:
            try:
                pending = float(mon.store.stats()["pending"])
            except Exception:
                pending = float("nan")
            f.gauge(p + "outbox_pending", "events not yet confirmed by the sink", base,
                    pending)
        f.counter(p + "history_dropped", "history rows that could not be written", base,
                  float(mon.history.dropped))
        for source, buckets, total in mon.latency.series():
            f.histogram(p + "detection_latency_seconds",
                        "sink wall clock minus block timestamp", base, buckets, total,
                        source=source)
        for (source, reason), n in sorted(mon.latency.unusable.items()):
            f.counter(p + "detection_latency_unusable",
                      "delivered trades whose latency could not be measured (not in the "
                      "histogram)", base, float(n), source=source, reason=reason)


#: connections the server holds at once: a scraper or two, a probe, a person with curl.
#: Past it a new one is answered 503 and closed, so a client that opens many (1,500
#: half-sent requests were all held) cannot take the file descriptors the monitor's own
#: WebSocket, HTTP and SQLite need.
MAX_CONNECTIONS = 64
#: seconds a connection may sit without a complete request (before its first one, or
#: between two) before it is closed: a request header sent slowly, or never finished,
#: no longer holds its socket for aiohttp's default of an hour.
IDLE_TIMEOUT_S = 10.0

#: seconds a scrape's answer is served again: reading the monitors runs on the event loop
#: (SQLite counts of the outbox among it), so a client asking /metrics in a loop, on many
#: connections, held the monitor's delivery for as long as it asked. Prometheus scrapes
#: every 15 s or so.
SCRAPE_EVERY_S = 1.0
#: seconds of a window of malformed-request lines: its first request is logged, the
#: count of the others is said at its end (polyvocab.http_log)
BAD_REQUEST_LOG_EVERY_S = 60.0


class OpsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` for one or more monitors.

    ``port = 0`` binds an ephemeral port (tests); :attr:`port` is the bound one. At most
    ``max_connections`` at once; a connection idle ``idle_timeout_s`` without a complete
    request is closed."""

    def __init__(self, monitors: Sequence[tuple[dict[str, str], Any]], *,
                 host: str = "127.0.0.1", port: int = 0,
                 max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S,
                 scrape_every_s: float = SCRAPE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.monitors = list(monitors)
        self.scrape_every_s, self._clock = scrape_every_s, clock
        self._scraped: tuple[float, bytes] | None = None  # (when, the answer)
        self.scrapes = 0  # times the monitors were read for /metrics
        self.host = host
        self.port = port
        self._cap = ConnectionCap(max_connections, lambda: self._runner.server
                                  if self._runner is not None else None,
                                  log=log, what="metrics")
        self.idle_timeout_s = idle_timeout_s
        # a client's malformed request: one WARNING a minute, the count of the others at
        # the minute's end; the request itself is not quoted (a scanner's bytes)
        self.http_log = BadRequestLog(logging.getLogger("monitor.ops.http"),
                                      level=logging.WARNING, prefix="metrics: ", first=1,
                                      every_s=BAD_REQUEST_LOG_EVERY_S, quote=0, clock=clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MonitorCollector(self.monitors))
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        ok, parts = True, {}
        for labels, mon in self.monitors:
            one, detail = readiness(mon)
            ok = ok and one
            parts[",".join(f"{k}={v}" for k, v in labels.items()) or "monitor"] = detail
        return ok, parts

    def _scrape_cached(self) -> bytes:
        """The last answer while younger than ``scrape_every_s``, else a new scrape."""
        now = self._clock()
        if self._scraped is None or not 0 <= now - self._scraped[0] < self.scrape_every_s:
            self._scraped = (now, self.scrape())
            self.scrapes += 1
        return self._scraped[1]

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self._scrape_cached()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, parts = self.ready()
        return web.Response(text=json.dumps({"ready": ok, "monitors": parts}, default=str),
                            status=200 if ok else 503, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        # keepalive_timeout: aiohttp closes a connection idle that long, from its start
        # (a request never finished) and between requests
        self._runner = web.AppRunner(app, access_log=None, logger=self.http_log,
                                     keepalive_timeout=self.idle_timeout_s,
                                     lingering_time=min(self.idle_timeout_s, 10.0),
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        try:  # our own listener, so that every new connection goes through _protocol
            self._listener = await asyncio.get_running_loop().create_server(
                self._cap.protocol, self.host, self.port)
        except OSError as exc:  # the port taken, a host that is not this machine's
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(f"metrics: cannot listen on {self.host}:{self.port}: "
                              f"{exc.strerror or exc}") from None
        self.port = int(self._listener.sockets[0].getsockname()[1])
        log.info("metrics on %s/metrics (/healthz, /readyz)", self.url)

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 past the cap."""
        return self._cap.refused

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # no new connections
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.http_log.close()
