"""The checker: one outcome per trade, and the measures of DESIGN.md, from the histories.

Pure functions of rows and DataFrames (no I/O). Outcomes, for every trade id in the truth
window or delivered to the sink:

The bot holds a trade while some delivery of it *stands*: each delivery stands until a
retraction takes it back (one retraction, one delivery); a retraction while none stands
takes nothing back (the bot ignores a retraction of a trade it does not hold) and covers no
later delivery. What stands at the end decides, the same way for every trade id:

==========  ==========================================================================
detected    canonical, stands, never delivered while a delivery stood, latency <=
            actionable window
late        canonical, stands, never delivered while a delivery stood, latency >
            actionable window
missed      canonical, nothing stands at the end: never delivered, or every delivery
            retracted (the bot was told it did not happen), duplicated or not
duplicate   canonical, stands, and once delivered while a delivery stood (more than once
            without a retraction in between)
phantom     not canonical (orphaned, unknown, or not a watched wallet's), a delivery
            stands at the end (never retracted, or retracted fewer times than delivered)
retracted   not canonical, delivered, nothing stands at the end (correct on a reorg)
==========  ==========================================================================

So a trade delivered twice and retracted once stands: a canonical one is a duplicate, an
orphaned one a phantom. Orphaned trades that were never delivered are correct and get no
row, even when retracted (nothing reached the bot to take back). Latency is in
simulated seconds: ``(t_delivered - t_visible) * speed / 1e9``, measured from the first
delivery of the standing sequence (the delivery since which the trade stood without a
break) to the first time a block holding the trade was published. A trade is *in a fault*
when its detection span overlaps a fault window: the span runs from when it became
visible to its standing delivery (an undelivered or retracted one's: to the end of its
actionable window, by when it was due), the window from a ``fault_start`` to its
``fault_stop`` plus the actionable window (the recovery tail; instantaneous faults such as
``ws_drop`` are thus covered by the window after them). A trade visible just before a
fault and delayed by it is in the fault.

Anything missing or malformed raises :class:`CheckerError`; the caller turns it into an
INCONCLUSIVE scenario, never a pass.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from experiments.confidence import quantile_bound
from experiments.thresholds import CONFIDENCE, QUANTILE_METRICS, evaluate_all
from experiments.truth import TruthError, build_truth, sim_start

__all__ = [
    "OUTCOMES",
    "OUTCOME_COLUMNS",
    "TRADE_OUTCOMES",
    "CheckParams",
    "CheckerError",
    "CountedRows",
    "FaultWindow",
    "classify",
    "detections_frame",
    "fault_windows",
    "mean_watched",
    "measured_faults",
    "monitor_metrics",
    "require_parquet",
    "run_checker",
]

OUTCOMES = ("detected", "late", "missed", "duplicate", "phantom", "retracted")
OUTCOME_COLUMNS = ["trade_id", "wallet", "block_number", "visible_t_ns", "delivered_t_ns",
                   "latency_s", "outcome", "deliveries", "source", "in_fault", "fault"]
DETECTION_COLUMNS = ["t_ns", "kind", "source", "trade_id", "wallet", "block_number",
                     "block_hash"]
_NS = 1_000_000_000


class CheckerError(ValueError):
    """The data cannot be checked; the scenario is INCONCLUSIVE."""


def require_parquet() -> None:
    """Raise :class:`ModuleNotFoundError` (``name="pyarrow"``) when pyarrow cannot be
    imported. pandas imports it only when a parquet table is read or written, and then
    raises a bare ImportError: ``python -m experiments run`` ran its scenarios and ended in
    a traceback, ``python -m reports build`` called every scenario's outcomes "damaged".
    The modules that read or write the run store's tables call this on import, so the
    commands' harness-extra handler says which package is missing and how to install it,
    before anything runs."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(f"No module named 'pyarrow' ({exc})",
                                  name="pyarrow") from exc


@dataclass(frozen=True, slots=True)
class CheckParams:
    """What the checker needs to know about the run besides the rows."""

    speed: float
    window_start_ns: int
    window_end_ns: int
    actionable_window_s: float = 5.0
    wallets: tuple[str, ...] = ()
    mode: str = "websocket"
    #: wallets watched on average over the measured window, when a restart changed the
    #: list (:func:`mean_watched`; None: ``wallets`` were watched throughout)
    watched_mean: float | None = None

    def sim_s(self, dt_ns: float) -> float:
        return dt_ns * self.speed / _NS

    @property
    def sim_hours(self) -> float:
        return self.sim_s(self.window_end_ns - self.window_start_ns) / 3600.0


@dataclass(frozen=True, slots=True)
class FaultWindow:
    name: str
    start_ns: int
    stop_ns: int


def fault_windows(sim_rows: Iterable[Mapping[str, Any]], end_ns: int) -> list[FaultWindow]:
    """``fault_start``/``fault_stop`` pairs by ``fault_id``; an unstopped fault runs to the end."""
    open_: dict[str, tuple[str, int]] = {}
    windows: list[FaultWindow] = []
    for row in sim_rows:
        ev = row.get("event")
        if ev not in ("fault_start", "fault_stop"):
            continue
        fid = str(row.get("fault_id"))
        if ev == "fault_start":
            open_[fid] = (str(row.get("name")), int(row["t_ns"]))
        elif fid in open_:
            name, start = open_.pop(fid)
            windows.append(FaultWindow(name, start, max(start, int(row["t_ns"]))))
    for name, start in open_.values():
        windows.append(FaultWindow(name, start, max(start, end_ns)))
    return sorted(windows, key=lambda w: (w.start_ns, w.name))


def measured_faults(windows: Iterable[FaultWindow], params: CheckParams
                    ) -> list[FaultWindow]:
    """The fault windows that overlap the measured window: a fault that started in the
    grace period (an ``every`` schedule's last round) met no trade that is judged, so it
    is no fault the run measured."""
    return [w for w in windows
            if w.start_ns <= params.window_end_ns and w.stop_ns >= params.window_start_ns]


def detections_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The sink's rows (docs/contracts.md 'Detections file') as one flat table."""
    records = []
    for i, row in enumerate(rows):
        kind = row.get("kind")
        try:
            t_ns = int(row["t_ns"])
            if kind == "trade":
                trade = row["trade"]
                records.append((t_ns, "trade", row.get("source"), str(trade["id"]).lower(),
                                str(trade.get("wallet", "")).lower() or None,
                                trade.get("block_number"), trade.get("block_hash")))
            elif kind == "retraction":
                records.append((t_ns, "retraction", None, str(row["trade_id"]).lower(), None,
                                None, row.get("block_hash")))
            else:
                raise CheckerError(f"detections row {i + 1}: unknown kind {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckerError):
                raise
            raise CheckerError(f"detections row {i + 1}: malformed ({exc!r})") from None
    frame = pd.DataFrame.from_records(records, columns=DETECTION_COLUMNS)
    return frame.astype({"t_ns": "int64", "kind": "string", "source": "string",
                         "trade_id": "string", "wallet": "string", "block_number": "Int64",
                         "block_hash": "string"})


def _fault_of(t_ns: int, windows: Sequence[FaultWindow], tail_ns: int,
              until_ns: int | None = None) -> str | None:
    """The first of ``windows`` (in their order) whose span plus the tail overlaps
    ``[t_ns, until_ns]`` (``until_ns`` None: the instant ``t_ns``) (the reference
    :class:`_FaultLookup` answers with)."""
    hi = t_ns if until_ns is None else max(t_ns, until_ns)
    for w in windows:
        if w.start_ns <= hi and t_ns <= w.stop_ns + tail_ns:
            return w.name
    return None


class _FaultLookup:
    """:func:`_fault_of` by binary search: a day's soak has ~450 fault windows and
    ~60,000 trades, and the scan was a third of the analysis's CPU. For windows in
    start order (as :func:`fault_windows` gives them), the first window whose end (stop
    plus the tail) reaches ``t_ns`` is the first whose running maximum of ends does;
    it overlaps ``[t_ns, until_ns]`` if it starts by ``until_ns``, and no later one
    (starting later still) can. Windows out of start order are scanned as before."""

    __slots__ = ("_ends", "_starts", "_tail_ns", "_windows")

    def __init__(self, windows: Sequence[FaultWindow], tail_ns: int) -> None:
        self._windows = windows
        self._tail_ns = tail_ns
        starts = [w.start_ns for w in windows]
        ordered = all(a <= b for a, b in itertools.pairwise(starts))
        self._starts = starts if ordered else None
        ends: list[int] = []
        top: int | None = None
        for w in windows:
            end = w.stop_ns + tail_ns
            top = end if top is None or end > top else top
            ends.append(top)
        self._ends = ends

    def __call__(self, t_ns: int, until_ns: int | None = None) -> str | None:
        if self._starts is None:
            return _fault_of(t_ns, self._windows, self._tail_ns, until_ns)
        hi = t_ns if until_ns is None else max(t_ns, until_ns)
        i = bisect.bisect_left(self._ends, t_ns)
        if i < len(self._starts) and self._starts[i] <= hi:
            return self._windows[i].name
        return None


def _tuples(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame.itertuples(index=False)``, built from each column's ``tolist()``: the same
    values in the same order (nullable integers as ``int`` rather than ``numpy.int64``),
    without iterating the string columns' Arrow arrays an element at a time (a day's
    truth and detections, ~127,000 rows: ~0.45 -> ~0.2 s)."""
    row = collections.namedtuple("Row", list(frame.columns), rename=True)  # type: ignore[misc]
    return map(row._make, zip(*(frame[c].tolist() for c in frame.columns), strict=True))


class _Absent:
    """A column the frame lacks, read as a row tuple's missing attribute is."""

    def __init__(self, column: str) -> None:
        self.column = column

    def __getitem__(self, _i: int) -> Any:
        raise AttributeError(f"'Row' object has no attribute {self.column!r}")


def _values(frame: pd.DataFrame, column: str, *, few: bool = False) -> list[Any] | _Absent:
    """A column's values as ``_tuples`` gives them (:class:`_Absent` when it has none).
    ``few``: a column of few distinct values (kinds, sources, wallets), each given as one
    object (:func:`_shared`)."""
    if column not in frame.columns:
        return _Absent(column)
    return _shared(frame[column])[0] if few else frame[column].tolist()


def _shared(col: pd.Series) -> tuple[list[Any], list[bool]]:
    """``col.tolist()`` and where it is missing (``pd.isna`` of each). A text column's
    values are made as Python strings a distinct value at a time, each repeat the same
    object: a simulated week's 340,000 detections' kinds, sources and wallets and 330,000
    trades' wallets were as many strings (~100 MB of the analysis's peak)."""
    if not isinstance(col.dtype, pd.StringDtype) or col.dtype.na_value is not pd.NA:
        return col.tolist(), col.isna().tolist()  # missing values of several kinds
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    distinct = [*uniques.tolist(), pd.NA]  # code -1: missing
    return [distinct[c] for c in codes.tolist()], (codes < 0).tolist()


def _text(frame: pd.DataFrame, column: str) -> tuple[list[Any], list[bool]]:
    """A column of few values (:func:`_shared`) and where they are missing."""
    if column not in frame.columns:
        if len(frame):
            _Absent(column)[0]
        return [], []
    return _shared(frame[column])


#: detections made as Python values at a time by :func:`classify`
_PART_ROWS = 65_536


def classify(truth: pd.DataFrame, detections: pd.DataFrame, windows: list[FaultWindow],
             params: CheckParams) -> pd.DataFrame:
    """One row per trade id (``OUTCOME_COLUMNS``)."""
    for col in ("trade_id", "visible_t_ns", "canonical", "in_window"):
        if col not in truth.columns:
            raise CheckerError(f"truth has no column {col!r}")
    for col in ("t_ns", "kind", "trade_id"):
        if col not in detections.columns:
            raise CheckerError(f"detections have no column {col!r}")
    tail_ns = int(params.actionable_window_s * _NS / params.speed)
    fault_of = _FaultLookup(windows, tail_ns)
    # the columns read, as lists (values as ``_tuples`` gives them): no row objects, and
    # none of the columns not read (a simulated week's 330,000 truth rows and 340,000
    # detections held as row tuples of every column were ~200 MB of the analysis's peak)
    t_ids = [str(t) for t in truth["trade_id"].tolist()]
    t_wallet = _values(truth, "wallet", few=True)
    t_block, t_visible, t_canonical, t_in_window = (
        _values(truth, c) for c in ("block_number", "visible_t_ns", "canonical", "in_window"))
    by_id = {tid: i for i, tid in enumerate(t_ids)}  # a repeated id: its last row
    events: dict[str, list[tuple[int, str, str | None, str | None]]] = {}
    det = detections[[c for c in ("t_ns", "kind", "source", "wallet", "trade_id")
                      if c in detections.columns]].sort_values("t_ns", kind="stable")
    # a part at a time, each id the truth's string when it has one: a week's detections
    # made as strings at once were ~40 MB more of the peak, and as many again kept
    for lo in range(0, len(det), _PART_ROWS):
        part = det.iloc[lo:lo + _PART_ROWS]
        for t_ns, kind, src, src_na, wallet, wallet_na, tid in zip(
                part["t_ns"].tolist(), _shared(part["kind"])[0], *_text(part, "source"),
                *_text(part, "wallet"), part["trade_id"].tolist(), strict=True):
            key = str(tid)
            i = by_id.get(key)
            events.setdefault(key if i is None else t_ids[i], []).append(
                (int(t_ns), str(kind), None if src_na else str(src),
                 None if wallet_na else str(wallet)))

    ids = [t for t, i in by_id.items() if t_in_window[i] and t_canonical[i]]
    seen = set(ids)
    ids += [t for t in events if t not in seen]
    records = []
    for tid in dict.fromkeys(ids):
        t = by_id.get(tid)
        if t is not None and not t_in_window[t]:
            continue  # visible before the monitor was up or after the measured span
        evs = events.get(tid, [])
        deliveries = sum(1 for e in evs if e[1] == "trade")
        if deliveries == 0 and (t is None or not t_canonical[t]):
            continue  # retracted, never delivered: nothing reached the bot to take back
        duplicate = False  # some delivery came while another stood
        standing: int | None = None   # t_ns of the first delivery of the standing sequence
        source: str | None = None
        held = 0  # deliveries no retraction took back (one that found none took nothing)
        wallet = str(t_wallet[t]) if t is not None else None
        for t_ns, kind, src, w in evs:
            if kind == "trade":
                if held > 0:
                    duplicate = True
                else:
                    standing, source = t_ns, src
                held += 1
                wallet = wallet or w
            elif held > 0:
                held -= 1
                if held == 0:
                    standing = None
        canonical = t is not None and bool(t_canonical[t])
        visible = int(t_visible[t]) if t is not None else None
        delivered_t = standing
        if delivered_t is None and evs and any(e[1] == "trade" for e in evs):
            delivered_t = next(e[0] for e in evs if e[1] == "trade")
        latency = None
        if canonical and standing is not None and visible is not None:
            latency = max(0.0, params.sim_s(standing - visible))
        if canonical:
            if held == 0:
                outcome = "missed"
            elif duplicate:
                outcome = "duplicate"
            elif latency is not None and latency > params.actionable_window_s:
                outcome = "late"
            else:
                outcome = "detected"
        else:  # a delivery the retractions did not cover still stands in the sink
            outcome = "phantom" if held > 0 else "retracted"
        fault = None
        if visible is not None:  # the detection span [visible, standing delivery]
            fault = fault_of(visible, standing if held > 0 and standing is not None
                             else visible + tail_ns)
        records.append((tid, wallet, int(t_block[t]) if t is not None else None, visible,
                        delivered_t, latency, outcome, deliveries, source, fault is not None,
                        fault))
    frame = pd.DataFrame.from_records(records, columns=OUTCOME_COLUMNS)
    return frame.astype({"trade_id": "string", "wallet": "string", "block_number": "Int64",
                         "visible_t_ns": "Int64", "delivered_t_ns": "Int64",
                         "latency_s": "Float64", "outcome": "string", "deliveries": "int64",
                         "source": "string", "in_fault": "bool", "fault": "string"})


# -- monitor measures ----------------------------------------------------------------------

def _share(changes: list[tuple[int, bool]], start: int, end: int) -> float:
    """Time-weighted share of [start, end] during which the step function is True."""
    if end <= start:
        return 0.0
    changes = sorted(changes, key=lambda c: c[0])
    state = False
    for t, v in changes:
        if t <= start:
            state = v
    on, last = 0, start
    for t, v in changes:
        if t <= start:
            continue
        if t >= end:
            break
        if state:
            on += t - last
        state, last = v, t
    if state:
        on += end - last
    return on / (end - start)


#: a shard's connection id at the head of its ``feed`` and ``fallback`` rows' cause
#: (``"ws1: stale heads"``): the rows carry no ``conn`` field of their own
_SHARD_CAUSE = re.compile(r"(ws\d+): ")


def _shard_of(row: Mapping[str, Any]) -> str | None:
    """The WebSocket shard a ``feed``/``fallback`` row is of (None: not said, one feed)."""
    conn = row.get("conn")
    if isinstance(conn, str):
        return conn
    m = _SHARD_CAUSE.match(str(row.get("cause") or ""))
    return m.group(1) if m else None


def _planned_shards(rows: Sequence[Mapping[str, Any]]) -> int:
    """The WebSocket connections the monitor said it opens (its ``subscription_mode``
    row), 0 when it did not say."""
    n = 0
    for r in rows:
        if r.get("event") == "subscription_mode":
            c = r.get("connections")
            if isinstance(c, int) and not isinstance(c, bool):
                n = max(n, c)
    return n


class _Shards:
    """Each shard's last value of a per-shard flag (feed healthy, fallback active). The
    monitor writes one ``feed``/``fallback`` row per shard and change: the last row of any
    shard is not the state of the others (shard 0 back while shard 1 is still down read as
    the whole feed back). Shards the monitor planned but never wrote a row of count as
    off; rows that name no shard are one feed, as before."""

    def __init__(self, planned: int) -> None:
        self.planned = planned
        self.on: dict[str | None, bool] = {}

    def set(self, row: Mapping[str, Any], value: bool) -> None:
        self.on[_shard_of(row)] = value

    def every(self) -> bool:
        """Every shard on (and every planned shard heard of)."""
        return self.each(lambda shard: self.on[shard])

    def some(self) -> bool:
        return any(self.on.values())

    def each(self, covered: Callable[[str | None], bool]) -> bool:
        """``covered(shard)`` for every shard (and a planned shard never heard of is not)."""
        named = None not in self.on
        return (bool(self.on) and all(covered(k) for k in self.on)
                and (not named or len(self.on) >= self.planned))


def _by_time(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: int(r["t_ns"]))


def _feed_changes(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, bool]] | None:
    """The real-time feed healthy: every WebSocket shard healthy (a shard down leaves its
    wallets without a live feed)."""
    feed_rows = [r for r in _by_time(rows) if r.get("event") == "feed"]
    if feed_rows:
        shards = _Shards(_planned_shards(rows))
        out = []
        for r in feed_rows:
            shards.set(r, bool(r["healthy"]))
            out.append((int(r["t_ns"]), shards.every()))
        return out
    states = [r for r in rows if r.get("event") == "state"]
    if not states:
        return None
    current: dict[str, bool] = {}
    out = []
    for r in states:
        current[str(r.get("conn"))] = str(r.get("to", "")).upper() == "CONNECTED"
        out.append((int(r["t_ns"]), any(current.values())))
    return out


def _coverage_changes(rows: Sequence[Mapping[str, Any]], mode: str) -> list[tuple[int, bool]]:
    """Some source working for every shard: its feed healthy, or its fallback polling an
    explorer that answers (polling mode: the explorer answering). A history without
    ``feed`` rows is one feed, healthy while some connection is connected."""
    feed_rows = any(r.get("event") == "feed" for r in rows)
    planned = _planned_shards(rows) if feed_rows else 0
    feed, fallback = _Shards(planned), _Shards(planned)
    explorer_ok: bool | None = None
    conn_state: dict[str, bool] = {}
    out = []

    def covered(shard: str | None) -> bool:
        return feed.on.get(shard, False) or (
            (mode == "polling" or fallback.on.get(shard, False)) and explorer_ok is True)

    for r in _by_time(rows):
        ev = r.get("event")
        shard = _shard_of(r) if feed_rows else None
        if ev == "feed":
            feed.on[shard] = bool(r.get("healthy"))
        elif ev == "state" and not feed_rows:
            conn_state[str(r.get("conn"))] = str(r.get("to", "")).upper() == "CONNECTED"
            feed.on[None] = any(conn_state.values())
        elif ev == "fallback" and mode != "polling":
            fallback.on[shard] = bool(r.get("active"))
            feed.on.setdefault(shard, False)  # a shard that fell back before it was healthy
        elif ev == "api_call" and r.get("kind") == "explorer":
            explorer_ok = bool(r.get("ok"))
        else:
            continue
        # polling mode: no shards, the explorer answering
        ok = explorer_ok is True if mode == "polling" and not feed.on else feed.each(covered)
        out.append((int(r["t_ns"]), ok))
    return out


def _fallback_changes(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, bool]]:
    """Fallback engaged: some shard polling the explorer."""
    shards = _Shards(0)
    out = []
    for r in _by_time(rows):
        if r.get("event") == "fallback":
            shards.set(r, bool(r.get("active")))
            out.append((int(r["t_ns"]), shards.some()))
    return out


def _bytes_received(metrics: Any) -> int | None:
    """The sum of every ``bytes_received`` counter in the (nested) metrics of the stop row."""
    found: list[int] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if (key == "bytes_received" and isinstance(value, (int, float))
                        and not isinstance(value, bool)):
                    found.append(int(value))
                else:
                    walk(value)

    walk(metrics)
    return sum(found) if found else None


def _counted(row: Mapping[str, Any], window: tuple[int, int]) -> str | None:
    """The kind of API call ``row`` counts as in the measured ``window``, or None."""
    if row.get("event") == "api_call" and window[0] <= int(row["t_ns"]) <= window[1]:
        return str(row.get("kind"))
    return None


class CountedRows(list[dict[str, Any]]):
    """The monitor's history rows as :func:`monitor_metrics` reads them, without the API
    calls it only counts: ``api_call`` rows of any kind but ``explorer`` (whose answers
    the coverage follows) are counted by kind in the measured ``window`` as they go by
    (:meth:`add`) and not kept, but for the first and the last row. A simulated day's
    monitor history has ~44,000 of them (rpc_http, rpc_ws) among ~45,000 rows the checker
    reads; a week's, held as dicts, were ~200 MB of its analysis's peak."""

    def __init__(self, window: tuple[int, int]) -> None:
        super().__init__()
        self.window = window
        self.api_calls: dict[str, int] = {}
        self._tail: dict[str, Any] | None = None  # the last row, when not kept

    def add(self, row: dict[str, Any]) -> None:
        kind = _counted(row, self.window)
        if kind is not None:
            self.api_calls[kind] = self.api_calls.get(kind, 0) + 1
        if self and row.get("event") == "api_call" and row.get("kind") != "explorer":
            self._tail = row
        else:
            self._tail = None
            self.append(row)

    def close(self) -> CountedRows:
        """The rows, the last one kept: call once the last row was added."""
        if self._tail is not None:
            self.append(self._tail)
            self._tail = None
        return self


def mean_watched(watch: Any, window_s: float) -> float | None:
    """The wallets watched on average over a measured window of ``window_s`` simulated
    seconds, from ``run.json`` ``watch`` (each wallet's ``from_s`` / ``to_s``, None: the
    window's start / end), or None when there is no such list or an interval in it is
    not numbers (a per-wallet figure then divides by every wallet of the run). A
    restart that adds and removes wallets makes ``wallets`` every wallet watched at
    some time: the API calls per wallet divide by those watched at a time."""
    if not isinstance(watch, list) or not watch or not window_s > 0:
        return None
    total = 0.0
    for w in watch:
        if not isinstance(w, Mapping):
            return None
        a, b = w.get("from_s"), w.get("to_s")
        a = 0.0 if a is None else a
        b = window_s if b is None else b
        if not all(isinstance(x, int | float) and not isinstance(x, bool)
                   and math.isfinite(x) for x in (a, b)):
            return None
        total += max(0.0, min(float(b), window_s) - max(float(a), 0.0))
    return total / window_s if total > 0 else None


def monitor_metrics(monitor_rows: Sequence[Mapping[str, Any]], params: CheckParams,
                    resources: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """API calls, uptime, coverage, reconnects, fallback time and resources.
    ``monitor_rows``: the rows, or :class:`CountedRows` of them (for this window)."""
    if not monitor_rows:
        raise CheckerError("monitor history is empty")
    start, end = params.window_start_ns, params.window_end_ns
    hours = params.sim_hours
    calls: dict[str, int] = {}
    if isinstance(monitor_rows, CountedRows):
        if monitor_rows.window != (start, end):
            raise CheckerError("the monitor's API calls were counted in another window")
        calls = dict(monitor_rows.api_calls)
    else:
        for r in monitor_rows:
            kind = _counted(r, (start, end))
            if kind is not None:
                calls[kind] = calls.get(kind, 0) + 1
    total = sum(calls.values())
    per_hour = total / hours if hours > 0 else None
    n_wallets = (params.watched_mean if params.watched_mean
                 else max(1, len(params.wallets)))
    if params.mode == "polling":
        uptime: float | None = 0.0
    else:
        feed = _feed_changes(monitor_rows)
        uptime = _share(feed, start, end) if feed is not None else None
    coverage = _share(_coverage_changes(monitor_rows, params.mode), start, end)
    fb = _fallback_changes(monitor_rows)
    fallback_s = params.sim_s(_share(fb, start, end) * (end - start)) if fb else 0.0
    reconnects = sum(1 for r in monitor_rows if r.get("event") == "state"
                     and str(r.get("to", "")).upper() == "RECONNECTING"
                     and start <= int(r["t_ns"]) <= end)
    stop = next((r for r in reversed(monitor_rows) if r.get("event") == "stop"), None)
    first = next((r for r in monitor_rows if r.get("event") == "start"), monitor_rows[0])
    res = dict(resources or {})
    cpu_s = stop.get("cpu_s") if stop else None
    if not isinstance(cpu_s, (int, float)):
        cpu_s = res.get("cpu_s")
    rss = stop.get("rss_peak_bytes") if stop else None
    if not isinstance(rss, (int, float)):
        rss = res.get("rss_peak_bytes")
    life_end = int(stop["t_ns"]) if stop else int(monitor_rows[-1]["t_ns"])
    life_hours = params.sim_s(life_end - int(first["t_ns"])) / 3600.0
    cpu_per_hour = (float(cpu_s) / life_hours
                    if isinstance(cpu_s, (int, float)) and life_hours > 0 else None)
    return {
        "api_calls": dict(sorted(calls.items())),
        "api_calls_per_hour": per_hour,
        "explorer_calls_per_hour": calls.get("explorer", 0) / hours if hours > 0 else None,
        "api_calls_per_hour_per_wallet": per_hour / n_wallets if per_hour is not None else None,
        "uptime": uptime,
        "coverage": coverage,
        "reconnects": reconnects,
        "fallback_s": fallback_s,
        "cpu_s": float(cpu_s) if isinstance(cpu_s, (int, float)) else None,
        "cpu_s_per_hour": cpu_per_hour,
        "rss_peak_bytes": int(rss) if isinstance(rss, (int, float)) else None,
        "bytes_received": _bytes_received(stop.get("metrics") if stop else None),
    }


def _q(values: pd.Series, q: float) -> float | None:
    vals = values.dropna().astype(float)
    if vals.empty:
        return None
    return float(vals.quantile(q))


#: the outcomes that are trades: a phantom or a retraction is a delivery the chain did not
#: keep, counted apart and in no latency quantile
TRADE_OUTCOMES = ("detected", "late", "missed", "duplicate")


def latency_samples(outcomes: pd.DataFrame) -> dict[str, pd.Series]:
    """Each latency quantile metric (:data:`experiments.thresholds.QUANTILE_METRICS`) and
    the latencies it is a quantile of: every trade's, those of trades in a fault, those of
    the others (a missed trade has none)."""
    canonical = outcomes[outcomes["outcome"].isin(TRADE_OUTCOMES)]
    lat = canonical["latency_s"]
    in_fault = canonical["in_fault"].astype(bool)
    return {"latency_p50_s": lat, "latency_p95_s": lat, "latency_p99_s": lat,
            "latency_p95_in_fault_s": lat[in_fault], "latency_p95_outside_fault_s": lat[~in_fault]}


def latency_bounds(outcomes: pd.DataFrame, n_all: Mapping[str, int] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """The summary's ``latency_bounds``: each latency quantile's distribution-free bounds
    (:func:`experiments.confidence.quantile_bound`) from the trades of ``outcomes``.
    ``n_all``: the samples the point value stands on, where the bounds count fewer (seeds
    that replayed the same run counted once); else the bounds' own ``n``."""
    out = {}
    for metric, values in latency_samples(outcomes).items():
        xs = values.dropna().astype(float).tolist()
        b = quantile_bound(xs, QUANTILE_METRICS[metric], CONFIDENCE).to_dict()
        b["n_all"] = int(n_all[metric]) if n_all and metric in n_all else b["n"]
        out[metric] = b
    return out


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, Any]:
    counts = outcomes["outcome"].value_counts()
    trades = int(outcomes["outcome"].isin(TRADE_OUTCOMES).sum())
    samples = latency_samples(outcomes)
    missed = int(counts.get("missed", 0))
    return {
        "trades": trades,
        "detected": int(counts.get("detected", 0)),
        "late": int(counts.get("late", 0)),
        "missed": missed,
        "duplicates": int(counts.get("duplicate", 0)),
        "phantoms": int(counts.get("phantom", 0)),
        "retracted": int(counts.get("retracted", 0)),
        "missed_pct": 100.0 * missed / trades if trades else None,  # no trades: unknown
        **{metric: _q(values, QUANTILE_METRICS[metric]) for metric, values in samples.items()},
        "latency_max_s": _q(samples["latency_p95_s"], 1.0),
        "latency_bounds": latency_bounds(outcomes),
    }


def run_checker(sim_rows: Iterable[Mapping[str, Any]],
                monitor_rows: Sequence[Mapping[str, Any]]
                | Callable[[], Sequence[Mapping[str, Any]]],
                detection_rows: Iterable[Mapping[str, Any]], params: CheckParams, *,
                thresholds: Iterable[str] = (),
                resources: Mapping[str, Any] | None = None,
                sim_end_ns: int | Callable[[], int] | None = None,
                fault_rows: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
                detections_of: Callable[[], pd.DataFrame] | None = None,
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Truth, detections, outcomes and the measures (a partial scenario summary).

    ``sim_end_ns``: the last ``t_ns`` of the whole simulator history when ``sim_rows`` is
    a selection of it (an unstopped fault runs to there), or a function giving it, called
    after the truth is built (a pass that can note it); else taken from ``sim_rows``.
    ``fault_rows``: likewise, a function giving the history's fault rows (kept by that
    pass), so the fault windows cost no pass over ``sim_rows`` of their own.
    ``monitor_rows``: the rows, or a function giving them, called after the truth is built
    (read elsewhere meanwhile). ``detections_of``: a function giving
    :func:`detections_frame` of ``detection_rows`` (built elsewhere meanwhile), called
    after the truth is built.
    Raises :class:`CheckerError` when the data cannot support a verdict.
    """
    try:
        start = sim_start(sim_rows)
        truth = build_truth(sim_rows, params.wallets,
                            window=(params.window_start_ns, params.window_end_ns))
    except TruthError as exc:
        raise CheckerError(str(exc)) from None
    if not math.isclose(float(start.get("speed", params.speed)), params.speed):
        raise CheckerError(f"simulator ran at speed {start.get('speed')}, "
                           f"scenario says {params.speed}")
    if callable(monitor_rows):
        monitor_rows = monitor_rows()
    if not any(r.get("event") == "start" for r in monitor_rows):
        raise CheckerError("monitor history has no 'start' row")
    detections = (detections_frame(detection_rows) if detections_of is None
                  else detections_of())
    if callable(sim_end_ns):
        sim_end_ns = sim_end_ns()
    if sim_end_ns is None:
        sim_end_ns = max((int(r["t_ns"]) for r in sim_rows), default=0)
    windows = fault_windows(fault_rows() if fault_rows is not None else sim_rows,
                            max(params.window_end_ns, sim_end_ns))
    outcomes = classify(truth, detections, windows, params)
    summary: dict[str, Any] = {}
    summary.update(outcome_counts(outcomes))
    summary.update(monitor_metrics(monitor_rows, params, resources))
    t0 = params.window_start_ns
    summary["faults"] = [{"name": w.name, "start_s": params.sim_s(w.start_ns - t0),
                          "stop_s": params.sim_s(w.stop_ns - t0)}
                         for w in measured_faults(windows, params)]
    summary["thresholds"] = evaluate_all(list(thresholds), summary)
    return truth, detections, outcomes, summary
