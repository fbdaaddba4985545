"""Read a run from the run store (``results/<run-id>/``, see docs/contracts.md).

Reading never raises on missing or damaged files: what could not be read is listed in
``problems`` (of the run or of the scenario), so that the verdict can say INCONCLUSIVE
instead of the report crashing. Only a path that is not a directory at all raises
:class:`RunStoreError`.

The functions here are the ones the notebook uses too (``notebooks/analysis.ipynb``).
"""

from __future__ import annotations

import json
import math
import numbers
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis import RELIABILITY_FILE, reliability_counts
from experiments.checker import (
    OUTCOME_COLUMNS,
    latency_bounds,
    latency_samples,
    outcome_counts,
    require_parquet,
)
from experiments.inputs import changed_since, fingerprint, sizes_only
from experiments.scenario import MODES
from experiments.seeds import basis_outcomes, bound_basis
from experiments.store import JsonlError, iter_jsonl, read_jsonl
from experiments.thresholds import METRICS, ThresholdError, number
from experiments.thresholds import evaluate as evaluate_threshold
from polyvocab.small_files import CONFIG_BYTES, JSON_BYTES, is_special, read_small_text

__all__ = [
    "BULK_EVENTS",
    "HISTORY_COLUMNS",
    "HISTORY_COUNTED",
    "HISTORY_LAST",
    "HISTORY_ROWS",
    "NOT_MEASURED_VIRTUAL",
    "OUTCOMES_KEPT",
    "OUTCOME_CATEGORIES",
    "VIRTUAL",
    "Run",
    "RunStoreError",
    "ScenarioData",
    "all_outcomes",
    "basis_fault_events",
    "fallback_intervals",
    "load_run",
    "outcome_seconds",
    "reliability_of",
    "run_clock",
    "seed_t0_ns",
    "sim_seconds",
    "state_intervals",
    "summaries_frame",
]

require_parquet()  # outcomes.parquet: a missing pyarrow is not every scenario "damaged"

# The per-block, per-index, per-request and per-delivery rows of the histories (a simulated
# week: ~1.5 million of them) are facts the analysis already turned into truth, detections
# and outcomes; the report and the notebook read the rest. ``iter_jsonl`` reads a whole file.
BULK_EVENTS = frozenset({"block_published", "explorer_indexed", "request", "delivered"})


def _not_bulk(row: dict[str, Any]) -> dict[str, Any] | None:
    return None if row.get("event") in BULK_EVENTS else row


#: the start of the run problem of a run summary that lists a scenario twice
TWICE = "summary.json lists scenario"


class RunStoreError(Exception):
    """The path given is not a run directory at all. Print it; exit code 2."""


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioData:
    """One scenario of a run: its summary plus the data frames that could be read. The
    histories are the rows the report reads of them (:data:`HISTORY_ROWS`; loaded with
    ``every_event``: all but their :data:`BULK_EVENTS` rows; of a scenario pooled over
    seeds: the first seed's). ``reliability``: what the analysis counted of the histories for the
    reliability section (every seed's, summed, when pooled: :func:`reliability_of`), None
    when the stored run has none that match its summary."""

    name: str
    path: Path
    summary: dict[str, Any]
    outcomes: pd.DataFrame | None
    monitor_history: pd.DataFrame | None
    sim_history: pd.DataFrame | None
    problems: tuple[str, ...] = ()
    reliability: dict[str, Any] | None = None

    @property
    def mode(self) -> str:
        return str(self.summary.get("mode") or "unknown")

    @property
    def status(self) -> str:
        if not self.summary:
            return "missing"
        return str(self.summary.get("status") or "missing")

    @property
    def ok(self) -> bool:
        """True when the scenario ran and its summary can be trusted: status ok and no
        data problem (files damaged, changed after the analysis, or contradicting the
        summary). A scenario with problems was left out of the verdict's gates but fed the
        claims, the cost and rollout sections and the figures: a damaged polling baseline
        (no gate of its own) was the 'before' of a GO report."""
        return self.status == "ok" and not self.problems

    @property
    def t0_ns(self) -> int | None:
        """When block 0 of the replay was due (simulator ``start`` row), if known."""
        df = self.sim_history
        if df is not None and "event" in df and "t0_ns" in df:
            starts = df[df["event"] == "start"]
            t0 = starts["t0_ns"].iloc[0] if not starts.empty else None
            # a text there (a damaged history) was a ValueError traceback: the outcomes'
            # first visible trade stands in, as for a history without its start row
            if isinstance(t0, numbers.Real) and not isinstance(t0, bool) \
                    and math.isfinite(t0):
                return int(float(t0)) if not isinstance(t0, numbers.Integral) else int(t0)
        if self.outcomes is not None and not self.outcomes.empty:
            vis = self.outcomes["visible_t_ns"].dropna()
            if not vis.empty:
                return int(vis.min())
        return None

    @property
    def speed(self) -> float:
        try:
            return float(self.summary.get("speed") or 1.0)
        except (TypeError, ValueError):
            return 1.0


@dataclass(frozen=True, slots=True, eq=False)
class Run:
    """A run: manifest, scenarios (in the order of ``summary.json``) and what was missing."""

    path: Path
    run_id: str
    manifest: dict[str, Any]
    scenarios: tuple[ScenarioData, ...]
    problems: tuple[str, ...] = field(default=())
    #: the clock every scenario's ``run.json`` names, when the manifest names none (gone,
    #: unreadable): see :func:`run_clock`
    scenario_clock: str | None = None

    def scenario(self, name: str) -> ScenarioData:
        for sc in self.scenarios:
            if sc.name == name:
                return sc
        raise KeyError(name)




def _read_json(path: Path, problems: list[str], limit: int = JSON_BYTES) -> dict[str, Any]:
    if is_special(path):
        problems.append(f"{path.name} is not a regular file")
        return {}
    try:
        data = json.loads(read_small_text(path, limit))
    except FileNotFoundError:
        problems.append(f"{path.name} is missing")
        return {}
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} could not be read ({type(exc).__name__})")
        return {}
    except RecursionError:  # [[[[...]]]]: was a traceback
        problems.append(f"{path.name} could not be read (JSON nested too deep)")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path.name} is not a JSON object")
        return {}
    return data


#: The rows of the histories the report reads (the reliability section, the timeline's
#: states and fallbacks, the replay's ``t0_ns``), and of them only :data:`HISTORY_COLUMNS`.
#: A history is read line by line and never held: a live monitor's week of per-call rows
#: (``api_call``, 2 GB) was a list of dicts and then a frame, gigabytes of memory for rows
#: no section reads. These are kept one by one: episodes on the timeline.
HISTORY_ROWS = frozenset({"state", "fallback", "fault_start"})
#: these are counted: one row per event and ``kind``, its first row's fields and the number
#: of rows in ``rows`` (a hostile scenario's rejected frames are one row a frame)
HISTORY_COUNTED = frozenset({"start", "bad_input", "decode_error", "malformed", "task_crash"})
#: of these the last row only (the task table at the end)
HISTORY_LAST = frozenset({"tasks"})
#: the columns of the history rows the report reads
HISTORY_COLUMNS = ("t_ns", "event", "from", "to", "active", "kind", "name", "alive", "t0_ns")
#: distinct kinds counted of one event at most; the rest are counted under OTHER_KINDS
MAX_KINDS = 1000
OTHER_KINDS = "(other kinds)"


class _Digest:
    """What the report reads of one history, taken row by row as it is read (a
    :data:`experiments.store.Select` that keeps nothing itself)."""

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []
        self.counted: dict[tuple[str, str], dict[str, Any]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.kinds: Counter[str] = Counter()  # distinct kinds counted, by event

    def __call__(self, row: dict[str, Any]) -> None:
        event = row.get("event")
        if not isinstance(event, str):
            return None
        if event in HISTORY_ROWS:
            self.kept.append(_columns(row))
        elif event in HISTORY_COUNTED:
            kind = row.get("kind")
            key = (event, kind if isinstance(kind, str) else "")
            have = self.counted.get(key)
            if have is None and self.kinds[event] >= MAX_KINDS:
                key = (event, OTHER_KINDS)
                have = self.counted.get(key)
                row = {**row, "kind": OTHER_KINDS}
            if have is None:
                self.kinds[event] += 1
                self.counted[key] = {**_columns(row), "rows": 1}
            else:
                have["rows"] += 1
        elif event in HISTORY_LAST:
            self.last[event] = _columns(row)
        return None

    def frame(self) -> pd.DataFrame:
        rows = [{**r, "rows": 1} for r in self.kept]
        rows.extend(self.counted.values())
        rows.extend({**r, "rows": 1} for r in self.last.values())
        return pd.DataFrame(rows)


def _columns(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in HISTORY_COLUMNS if k in row}


def _read_history(path: Path, problems: list[str], every_event: bool = False
                  ) -> pd.DataFrame | None:
    """The history's rows the report reads (:data:`HISTORY_ROWS`, :data:`HISTORY_COUNTED`
    with their ``rows`` counts, :data:`HISTORY_LAST`), read as a stream: memory as the
    rows kept, not as the file. ``every_event``: every row but :data:`BULK_EVENTS`, whole
    (the notebook's exploring; a long run's history is that large in memory)."""
    if not path.exists():
        problems.append(f"{path.name} is missing")
        return None
    digest = _Digest()
    try:
        if every_event:
            return pd.DataFrame(read_jsonl(path, _not_bulk))
        for _ in iter_jsonl(path, digest):
            pass  # every line is still checked; the digest keeps what the report reads
    except OSError as exc:
        problems.append(f"{path.name} could not be read ({type(exc).__name__})")
        return None
    except JsonlError as exc:
        problems.append(f"{path.name} is damaged at line {exc.line}: {exc.reason}")
        return None
    except ValueError as exc:  # bytes that are not UTF-8 (UnicodeDecodeError)
        problems.append(f"{path.name} could not be read ({type(exc).__name__})")
        return None
    return digest.frame()


#: the columns of ``outcomes.parquet`` that hold numbers (or nothing): each is checked as
#: it is read (texts, numbers that are not finite)
_NUMERIC_OUTCOMES = ("block_number", "visible_t_ns", "delivered_t_ns", "latency_s",
                     "deliveries")


#: the columns of ``outcomes.parquet`` read (``seed``: a pool's)
_OUTCOME_READ = frozenset({*OUTCOME_COLUMNS, "seed"})
#: the columns of ``outcomes.parquet`` kept (what the report, the checks of the summary and
#: the notebook read): ``delivered_t_ns`` and ``deliveries`` are checked and let go
OUTCOMES_KEPT = ("seed", "trade_id", "wallet", "block_number", "visible_t_ns", "latency_s",
                 "outcome", "source", "in_fault", "fault")
#: few-valued texts (a wallet of at most 10,000, an outcome, a source, a fault kind) kept as
#: categories: one code a row, not one string a row. The nanosecond times stay Int64 (exact:
#: a float64 rounds them above 2**53), as the table gives them.
OUTCOME_CATEGORIES = ("wallet", "outcome", "source", "fault")
#: rows of ``outcomes.parquet`` converted at a time (of a row group; a simulated week's
#: table is ~330,000 rows: held whole as pandas objects, then reduced, it was the largest
#: part of the peak of ``reports build``)
OUTCOME_BATCH_ROWS = 65_536


class _OutcomeChecks:
    """What is wrong with the numbers of ``outcomes.parquet``, gathered batch by batch
    (the same answer as of the whole table: each check is an 'any' over its rows)."""

    def __init__(self) -> None:
        self.texts: set[str] = set()
        self.endless: set[str] = set()
        self.negative = 0

    def add(self, df: pd.DataFrame) -> None:
        for c in _NUMERIC_OUTCOMES:
            if c not in df.columns:
                continue
            col = df[c]
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                if col.notna().any():
                    self.texts.add(c)
                continue
            if not np.isfinite(col.dropna().astype("float64")).all():
                self.endless.add(c)
        if "latency_s" in df.columns and pd.api.types.is_numeric_dtype(df["latency_s"]) \
                and not pd.api.types.is_bool_dtype(df["latency_s"]):
            self.negative += int((df["latency_s"].dropna().astype("float64") < 0).sum())

    def problems(self, name: str) -> tuple[list[str], bool]:
        """The problems, and whether the table can be used at all."""
        # texts where numbers belong were a traceback from the figures and the trades
        # tables (sorting by latency, seconds from the visible times)
        texts = [c for c in _NUMERIC_OUTCOMES if c in self.texts]
        if texts:
            return [f"{name} holds other values than numbers in {', '.join(texts)}"], False
        endless = [c for c in _NUMERIC_OUTCOMES if c in self.endless]
        if endless:  # int(inf): an OverflowError traceback
            return [f"{name} holds numbers that are not finite in {', '.join(endless)}"], False
        if self.negative:  # the checker writes none: a delivery before its block is 0 s
            return [f"{name} holds {self.negative:,} negative latencies"], True
        return [], True


def _reduced(df: pd.DataFrame) -> pd.DataFrame:
    """A batch of outcomes as kept: :data:`OUTCOMES_KEPT`, few-valued texts as
    categories."""
    out = df[[c for c in OUTCOMES_KEPT if c in df.columns]]
    # texts only (pandas' string dtype): a column of other objects (all None, say) stays
    # as it is, so that all_outcomes gives back what was read
    return out.astype({c: "category" for c in OUTCOME_CATEGORIES
                       if c in out.columns and isinstance(out[c].dtype, pd.StringDtype)})


def _joined(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The reduced batches as one frame, each category column's categories the union of
    its batches' (sorted: the same whatever the batches)."""
    if not parts:
        return pd.DataFrame(columns=columns)
    if len(parts) == 1:
        return _sorted_categories(parts[0])
    cats = {c: pd.api.types.union_categoricals([p[c] for p in parts], sort_categories=True)
            for c in OUTCOME_CATEGORIES if c in parts[0].columns
            and isinstance(parts[0][c].dtype, pd.CategoricalDtype)}
    rest = [c for c in parts[0].columns if c not in cats]
    df = pd.concat([p[rest] for p in parts], ignore_index=True)
    for c, values in cats.items():
        df[c] = pd.Categorical(values)
    return df[list(parts[0].columns)]


def _sorted_categories(df: pd.DataFrame) -> pd.DataFrame:
    for c in OUTCOME_CATEGORIES:
        if c in df.columns and isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].cat.reorder_categories(sorted(df[c].cat.categories))
    return df


def _read_outcomes(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """The scenario's ``outcomes.parquet``: the columns read (:data:`_OUTCOME_READ`), a
    batch of rows at a time, each batch checked and reduced to :data:`OUTCOMES_KEPT`
    (:data:`OUTCOME_CATEGORIES` as categories); None, with the problem said, when it
    cannot be read or used."""
    if not path.exists():
        problems.append(f"{path.name} is missing")
        return None
    if is_special(path):
        problems.append(f"{path.name} is not a regular file")
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq  # after require_parquet() said it is there

    checks = _OutcomeChecks()
    parts: list[pd.DataFrame] = []
    try:
        table = pq.ParquetFile(path)
        # the columns the report reads only: a table's other columns (a provider's raw
        # answer kept per trade) were read whole too, however large
        names = table.schema_arrow.names
        missing = [c for c in OUTCOME_COLUMNS if c not in names]
        if missing:
            problems.append(f"{path.name} lacks columns {', '.join(missing)}")
            return None
        read = [c for c in names if c in _OUTCOME_READ]
        # one thread: the decoders of a thread pool each kept their own heap of the arrow
        # memory pool (tens of MB more of the peak, for no time that counts here)
        for batch in table.iter_batches(batch_size=OUTCOME_BATCH_ROWS, columns=read,
                                        use_threads=False):
            # a batch converted as pd.read_parquet converts the table (its pandas dtypes)
            df = pa.Table.from_batches([batch]).to_pandas()
            checks.add(df)
            if not checks.texts:
                parts.append(_reduced(df))
            del df
    except Exception as exc:  # pyarrow raises many types for a damaged file
        problems.append(f"{path.name} could not be read ({type(exc).__name__})")
        return None
    finally:
        pa.default_memory_pool().release_unused()  # the batches' buffers, back to the system
    said, usable = checks.problems(path.name)
    problems.extend(said)
    if not usable:
        return None
    if not parts:  # no rows: the columns with their types all the same
        parts.append(_reduced(table.schema_arrow.empty_table().select(read).to_pandas()))
    return _joined(parts, [c for c in OUTCOMES_KEPT if c in read])


def _mode_from_toml(path: Path) -> str | None:
    if is_special(path):
        return None
    try:
        data = tomllib.loads(read_small_text(path, CONFIG_BYTES))
    except (OSError, tomllib.TOMLDecodeError, RecursionError):
        return None
    for table in (data, data.get("scenario", {}), data.get("monitor", {})):
        if isinstance(table, dict) and isinstance(table.get("mode"), str):
            return str(table["mode"])
    return None


_COUNTS = ("trades", "detected", "late", "missed", "duplicates", "phantoms", "retracted",
           "wallets")
_SHARES = ("uptime", "coverage")
#: numbers the report divides and multiplies by (time spans, rates): finite, >= 0
_NUMBERS = ("sim_duration_s", "speed", "actionable_window_s", "explorer_calls_per_hour",
            "explorer_calls_per_hour_per_wallet")
#: the other measures a threshold can name (:data:`experiments.thresholds.METRICS`): a
#: finite number or null (not measured); the seed names a run, it measures nothing
_MEASURES = METRICS - set(_COUNTS) - set(_NUMBERS) - {"seed"}
_AGREE = ("status", "trades", "detected", "late", "missed", "duplicates", "phantoms",
          "retracted")
#: summary count -> the outcomes it counts (``experiments.checker.outcome_counts``)
_COUNTED: dict[str, tuple[str, ...]] = {
    "trades": ("detected", "late", "missed", "duplicate"),
    "detected": ("detected",), "late": ("late",), "missed": ("missed",),
    "duplicates": ("duplicate",), "phantoms": ("phantom",), "retracted": ("retracted",),
}


def _table_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    counts = outcomes["outcome"].astype("string").value_counts()
    return {key: int(sum(int(counts.get(o, 0)) for o in kinds))
            for key, kinds in _COUNTED.items()}


def _disagreements(summary: dict[str, Any], counts: dict[str, int], where: str,
                   table: str) -> list[str]:
    out = []
    for key in _COUNTED:
        value = summary.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue  # absent (a pilot without a clock: detected, late) or not a count
        if value != counts[key]:
            out.append(f"{where} says {key} = {str(value)[:40]}, {table} counts "
                       f"{counts[key]:,}")
    return out


def _same(a: Any, b: Any) -> bool:
    """Two stored numbers equal but for the last digits of a float's text."""
    if a is None or b is None:
        return a is None and b is None
    x, y = number(a), number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def _bound_problems(stored: Any, want: dict[str, dict[str, Any]]) -> list[str]:
    """Where a summary's ``latency_bounds`` are not the bounds ``want`` (from the table)."""
    if not isinstance(stored, dict):
        return []  # written before the bounds were: the gates judge the point values
    out = []
    for metric, b in want.items():
        had = stored.get(metric)
        if not isinstance(had, dict):
            continue
        for key in ("lower", "upper", "n"):
            if not _same(had.get(key), b.get(key)):
                out.append(f"summary.json's latency_bounds say {metric} {key} = "
                           f"{str(had.get(key))[:40]}, outcomes.parquet gives {b.get(key)}")
                break
    return out


#: the point latencies of a summary, each a quantile of the outcomes' latencies
#: (:func:`experiments.checker.outcome_counts`; of a pool: of every seed's trades)
POINT_LATENCIES = ("latency_p50_s", "latency_p95_s", "latency_p99_s",
                   "latency_p95_in_fault_s", "latency_p95_outside_fault_s", "latency_max_s")


def _point_problems(summary: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Where a summary's point latencies are not the quantiles of its outcomes: a gate
    without bounds (a summary written before them, or a pilot's) judges the point
    value, and a p95 edited from 12 s to 0.3 s passed it over a table of 12-s trades.
    A value that is no number is said by :func:`summary_problems`."""
    out = []
    for key in POINT_LATENCIES:
        had = summary.get(key)
        if isinstance(had, bool) or not isinstance(had, int | float) \
                or not math.isfinite(had):
            continue
        if not _same(had, want.get(key)):
            gives = want.get(key)
            out.append(f"summary.json says {key} = {str(had)[:40]}, outcomes.parquet gives "
                       f"{'no latency' if gives is None else f'{gives:.6g}'}")
    return out


def _latency_problems(summary: dict[str, Any], table: pd.DataFrame, *,
                      bounds: bool, points: bool = True) -> list[str]:
    """Where the summary's latency quantiles (``points``) or their confidence bounds
    (``bounds``: of one seed; a pool's are checked by :func:`_basis_problems`) are not
    those of the outcomes they were computed from: a quantile gate is judged by its
    bounds (or, without them, its point value), and an edited value under a table that
    says otherwise passed it."""
    try:
        want = outcome_counts(table)
    except (KeyError, TypeError, ValueError):  # the table's own checks say what is wrong
        return []
    out = _point_problems(summary, want) if points else []
    if bounds:
        out.extend(_bound_problems(summary.get("latency_bounds"), want["latency_bounds"]))
    return out


def outcome_problems(summary: dict[str, Any], outcomes: pd.DataFrame | None,
                     sdir: Path) -> list[str]:
    """Where a scenario's summary counts (trades, detected, late, missed, duplicates,
    phantoms, retracted) are not those of its per-trade table ``outcomes.parquet``, which
    the analysis computed them from: a damaged or hand-edited run store, whose headline
    and tables would tell two stories. A scenario pooled over seeds is checked seed by
    seed too (``seeds/<seed>/summary.json`` against that seed's rows), and a trade of one
    seed listed twice (pooled twice) or a seed the summary does not list is said."""
    if outcomes is None or not summary or summary.get("status") != "ok" \
            or "outcome" not in outcomes.columns:
        return []
    out = _disagreements(summary, _table_counts(outcomes), "summary.json",
                         "outcomes.parquet")
    p95 = summary.get("latency_p95_s")
    emptied = isinstance(p95, int | float) and not isinstance(p95, bool) \
        and "latency_s" in outcomes.columns and not outcomes["latency_s"].notna().any()
    if emptied:
        # the quantiles are of the table's latencies: gone from it, the gates stand on nothing
        out.append(f"summary.json says latency_p95_s = {str(p95)[:40]}, outcomes.parquet "
                   "holds no latency")
    if "latency_s" in outcomes.columns and "in_fault" in outcomes.columns:
        pooled = "seed" in outcomes.columns
        out.extend(_latency_problems(summary, outcomes.drop(columns="seed", errors="ignore"),
                                     bounds=not pooled, points=not emptied))
    if "seed" not in outcomes.columns:
        dup = int(outcomes["trade_id"].duplicated().sum()) if "trade_id" in outcomes else 0
        if dup:
            out.append(f"outcomes.parquet lists {dup:,} trade ids more than once: one row "
                       "per trade")
        return out
    dup = int(outcomes.duplicated(["seed", "trade_id"]).sum())
    if dup:
        out.append(f"outcomes.parquet lists {dup:,} trade ids more than once for one seed "
                   "(a seed pooled twice?)")
    listed = summary.get("seeds")
    if not isinstance(listed, list):
        out.append("outcomes.parquet holds trades by seed, summary.json lists no seeds "
                   f"(seeds = {str(listed)[:40]})")
    else:
        out.extend(_basis_problems(summary, outcomes, sdir, listed))
        extra = sorted({str(s) for s in outcomes["seed"].dropna().unique()}
                       - {str(s) for s in listed})
        if extra:
            out.append(f"outcomes.parquet holds trades of seeds {', '.join(extra[:5])} that "
                       "summary.json does not list")
        for seed in listed:
            if isinstance(seed, bool) or not isinstance(seed, int):
                continue
            path = sdir / "seeds" / str(seed) / "summary.json"
            if not path.is_file():
                continue
            problems: list[str] = []
            own = _read_json(path, problems)
            if problems or own.get("status") != "ok":
                continue
            rows = outcomes[outcomes["seed"] == seed]
            out.extend(_disagreements(own, _table_counts(rows),
                                      f"seeds/{seed}/summary.json",
                                      f"outcomes.parquet (seed {seed})"))
            held = _seed_rows(path.parent / "outcomes.parquet")
            if held is not None and held != len(rows):
                out.append(f"seeds/{seed}/outcomes.parquet holds {held:,} "
                           f"row{'' if held == 1 else 's'}, the pooled outcomes.parquet "
                           f"{len(rows):,} of seed {seed}")
    return out


def _basis_problems(summary: dict[str, Any], outcomes: pd.DataFrame, sdir: Path,
                    seeds: list[Any]) -> list[str]:
    """Where a pooled summary's ``bound_basis`` (the counts its rates' confidence bounds
    are computed from: each distinct replay once) is not what the pooled outcomes and the
    seeds' own summaries give (:func:`experiments.seeds.bound_basis`): an edited basis
    (more trades, fewer misses) made a gate's bound as tight as it said, a GO on evidence
    the run does not hold. Not judged when a seed's summary cannot be read (said by
    :func:`seed_problems`) or the summary has no basis (pooled before it was written)."""
    basis = summary.get("bound_basis")
    if basis is None:
        return []
    if not isinstance(basis, dict):
        return [f"summary.json: bound_basis = {str(basis)[:40]} is not the seeds' counts"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) \
            or len(set(seeds)) != len(seeds):
        return [f"summary.json: seeds = {str(seeds)[:60]} is not a list of distinct seeds"]
    frames, own = [], []
    for seed in seeds:
        unread: list[str] = []
        doc = _read_json(sdir / "seeds" / str(seed) / "summary.json", unread)
        if unread:
            return []
        own.append(doc)
        frames.append(outcomes[outcomes["seed"] == seed].drop(columns="seed"))
    try:
        want = bound_basis(seeds, frames, own)
    except (KeyError, TypeError, ValueError):  # said by the table's own checks
        return []
    out = []
    if isinstance(summary.get("latency_bounds"), dict):
        # the bounds count each distinct replay once (experiments.seeds.pool)
        pooled_n = {m: len(v.dropna()) for m, v in latency_samples(outcomes).items()}
        base = basis_outcomes(seeds, frames, own) if want["same_as"] else outcomes
        out.extend(_bound_problems(summary["latency_bounds"],
                                   latency_bounds(base.drop(columns="seed", errors="ignore"),
                                                  n_all=pooled_n)))
    for key in ("trades", "missed", "late", "duplicates", "phantoms", "seeds"):
        if basis.get(key) != want[key]:
            out.append(f"summary.json's bound_basis says {key} = {str(basis.get(key))[:40]}, "
                       f"the pooled outcomes and the seeds' summaries give {want[key]}")
    return out


def seed_problems(summary: dict[str, Any], sdir: Path, run_dir: Path) -> list[str]:
    """What is wrong with the seeds a pooled scenario's results were pooled from
    (``seeds/<seed>/``): a seed's folder or summary gone or unreadable, or its files
    changed after they were analysed (by size). Only the first seed's files are copied beside the
    pooled summary (and checked there against its ``inputs``), so a later seed deleted or
    cut left the pooled numbers standing with nothing under them, where the same damage to
    a scenario of one seed is said; ``experiments analyze`` would find that seed failed.
    A summary without ``inputs`` (written by hand, or before the analysis recorded them)
    is not judged."""
    seeds = summary.get("seeds")
    if summary.get("status") != "ok" or not isinstance(seeds, list) \
            or not isinstance(summary.get("inputs"), dict):
        return []
    out: list[str] = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            continue
        seed_dir = sdir / "seeds" / str(seed)
        if not seed_dir.is_dir():
            out.append(f"seeds/{seed}/ is missing: the results pooled from it cannot be "
                       "checked")
            continue
        unread: list[str] = []
        own = _read_json(seed_dir / "summary.json", unread)
        if unread:
            out.append(f"seeds/{seed}/{unread[0]}")
            continue
        if own.get("status") != "ok":  # the pool would have been a harness error
            out.append(f"seeds/{seed}/summary.json says status "
                       f"{str(own.get('status'))[:40]}, the pooled summary ok: a seed "
                       "analysed again after the pool?")
            continue
        moved = changed_since(sizes_only(own.get("inputs")), fingerprint(seed_dir, 0))
        if moved is not None:
            out.append(f"seed {seed}'s files changed after they were analysed ({moved}): "
                       f"run `python -m experiments analyze {run_dir}` again")
            continue
        table = _seed_table_problem(seed_dir / "outcomes.parquet")
        if table:
            out.append(f"seeds/{seed}/outcomes.parquet {table}: the results pooled from it "
                       "cannot be checked")
    return out


def _seed_table_problem(path: Path) -> str | None:
    """What is wrong with a seed's own outcomes.parquet (the table the pool read its rows
    from), read by its footer only: None when it is a table. A seed's table deleted left
    the pooled numbers standing on rows nothing of the seed's analysis holds any more."""
    if not path.exists():
        return "is missing"
    if is_special(path):
        return "is not a regular file"
    import pyarrow.parquet as pq  # after require_parquet() said it is there

    try:
        pq.ParquetFile(path).metadata  # noqa: B018  (reads the footer: a table or not)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        return f"could not be read ({type(exc).__name__})"
    return None


def _seed_rows(path: Path) -> int | None:
    """The rows of a seed's own outcomes.parquet (by its footer), None when unreadable."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # said by seed_problems
        return None


def _written_passes(summary: dict[str, Any]) -> list[str]:
    """The scenario's own thresholds written as passed that its summary's numbers fail:
    the report takes them as written (the analysis evaluated them once, on this summary),
    and a latency_p99_s edited to 50 s beside 'latency_p99_s < 10: passed' was a GO."""
    raw = summary.get("thresholds")
    out = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or entry.get("passed") is not True \
                or not isinstance(entry.get("expr"), str):
            continue
        try:
            again = evaluate_threshold(entry["expr"], summary)
        except (ThresholdError, ArithmeticError, TypeError, ValueError):
            continue  # the verdict says what is wrong with the expression
        if again.get("passed") is False:
            out.append(f"summary.json: the threshold {entry['expr'][:60]!r} is written as "
                       f"passed, its summary's numbers fail it (measured "
                       f"{str(again.get('value'))[:40]})")
    return out


def summary_problems(summary: dict[str, Any], listed: dict[str, Any] | None = None
                     ) -> list[str]:
    """What makes a scenario's summary impossible or contradictory (none for what the
    analysis writes): a count that is not a whole number >= 0, trades that are not
    detected + late + missed + duplicated, a negative latency, a share outside 0..1, a
    mode no rule knows, or the run's summary.json (``listed``) saying otherwise."""
    if not summary or summary.get("status") != "ok":
        return []  # not used for numbers anyway
    out: list[str] = []
    counts: dict[str, float] = {}
    for key in _COUNTS:
        value = summary.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or not math.isfinite(value) or float(value) != int(value):
            out.append(f"summary.json: {key} = {str(value)[:40]} is not a count")
        else:
            counts[key] = float(value)
    parts = ("detected", "late", "missed", "duplicates")
    if all(k in counts for k in ("trades", *parts)) and \
            counts["trades"] != sum(counts[k] for k in parts):
        out.append(f"summary.json: trades = {counts['trades']:.0f} is not detected + late + "
                   f"missed + duplicates = {sum(counts[k] for k in parts):.0f}")
    for key, value in summary.items():
        if key.startswith("latency_") and isinstance(value, int | float) \
                and not isinstance(value, bool) and value < 0:
            out.append(f"summary.json: {key} = {value} is negative")
    for key in _NUMBERS:
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or value < 0):
            out.append(f"summary.json: {key} = {str(value)[:40]} is not a number >= 0")
    for key in _SHARES:
        value = summary.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value) and not 0.0 <= value <= 1.0:
            out.append(f"summary.json: {key} = {value} is not a share between 0 and 1")
    for key, value in summary.items():
        # the thresholds read a bool as 0/1 and a numeric text as its number: a latency
        # of true passed as 1 s, of "0.3" as 0.3 s; NaN read as 'not measured'
        if key in _MEASURES and value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)):
            shown_value = repr(value) if isinstance(value, str) else str(value)
            out.append(f"summary.json: {key} = {shown_value[:40]} is not a number")
    out.extend(_written_passes(summary))
    if summary.get("mode") not in MODES:
        out.append(f"summary.json: mode {str(summary.get('mode'))[:40]!r} is not one of "
                   f"{', '.join(MODES)}")
    if listed:
        for key in _AGREE:
            if key in listed and listed.get(key) != summary.get(key):
                out.append(f"the run's summary.json says {key} = {str(listed.get(key))[:40]}, "
                           f"the scenario's says {str(summary.get(key))[:40]}")
    return out


def basis_fault_events(sc: ScenarioData) -> int | None:
    """The fault events of a scenario pooled over seeds counting each distinct replay once
    (the seeds of its ``bound_basis``, from their own ``seeds/<seed>/summary.json``), or
    None when a seed's summary cannot be read."""
    basis = sc.summary.get("bound_basis")
    seeds = basis.get("seeds") if isinstance(basis, dict) else None
    if not isinstance(seeds, list):
        return None
    total = 0
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            return None
        problems: list[str] = []
        own = _read_json(sc.path / "seeds" / str(seed) / "summary.json", problems)
        faults = own.get("faults")
        if problems or not isinstance(faults, list):
            return None
        total += sum(1 for f in faults if isinstance(f, dict))
    return total


def _load_scenario(run_dir: Path, name: str, listed: dict[str, Any] | None,
                   every_event: bool = False) -> ScenarioData:
    sdir = run_dir / name
    problems: list[str] = []
    if not sdir.is_dir():
        # the run's summary may still list it, but nothing of it can be checked: its mode
        # is kept (which gates it was needed for), its numbers are not
        problems.append(f"directory {name}/ is missing")
        summary = {"scenario": name, "mode": (listed or {}).get("mode"), "status": "missing"}
        return ScenarioData(name, sdir, summary, None, None, None, tuple(problems))
    summary = _read_json(sdir / "summary.json", problems)
    if not summary and listed:
        summary = dict(listed)
    if summary and "mode" not in summary:
        mode = _mode_from_toml(sdir / "scenario.toml")
        if mode:
            summary["mode"] = mode
    if not summary:
        mode = _mode_from_toml(sdir / "scenario.toml")
        if mode:
            # keep the mode so the verdict knows which gates this scenario was needed for
            summary = {"scenario": name, "mode": mode, "status": "missing"}
    own_name = summary.get("scenario")
    if summary and isinstance(own_name, str) and own_name != name:
        # a scenario's folder copied or renamed: the same results judged under two names
        problems.append(f"summary.json is of scenario {own_name[:80]!r}, in the folder "
                        f"{name}/ (copied or renamed?)")
    problems.extend(summary_problems(summary, listed))
    moved = changed_since(summary.get("inputs"), fingerprint(sdir))
    if moved is not None:  # the stored results describe files that are no longer there
        problems.append(f"its files changed after they were analysed ({moved}): run "
                        f"`python -m experiments analyze {run_dir}` again")
    problems.extend(seed_problems(summary, sdir, run_dir))
    outcomes = _read_outcomes(sdir / "outcomes.parquet", problems)
    problems.extend(outcome_problems(summary, outcomes, sdir))
    monitor = _read_history(sdir / "monitor_history.jsonl", problems, every_event)
    sim = _read_history(sdir / "sim_history.jsonl", problems, every_event)
    return ScenarioData(name, sdir, summary, outcomes, monitor, sim, tuple(problems),
                        reliability_of(sdir, summary))


def reliability_of(sdir: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario's reliability counts (``reliability.json``, written by the analysis
    beside its summary; summed over the seeds by the pool) when they are of the analysis
    ``summary`` is (the same inputs and seeds), else None: a store written before the
    analysis noted them, or counts left from another analysis, are not shown as this
    one's."""
    path = sdir / RELIABILITY_FILE
    if not summary or not path.exists():
        return None
    unread: list[str] = []
    counts = reliability_counts(_read_json(path, unread))
    if unread or counts is None or counts["inputs"] != summary.get("inputs") \
            or counts["seeds"] != summary.get("seeds"):
        return None
    return counts


#: manifest ``clock`` of a run in virtual time (``experiments run --clock virtual``)
VIRTUAL = "virtual"
#: what the virtual clock does not measure (the process's CPU and memory)
NOT_MEASURED_VIRTUAL = frozenset({"cpu_s_per_hour", "rss_peak_mb"})


def run_clock(run: Run) -> str:
    """The run's clock as its manifest names it: ``real`` (the default of runs written
    before the manifest named it), ``virtual`` or ``wall`` (a live pilot)."""
    clock = run.manifest.get("clock")
    if isinstance(clock, str) and clock:
        return clock
    # a manifest gone or without its clock: the scenarios' own record of it (a virtual run
    # read as 'real' claimed its protocol latencies as speed-1 measurements)
    return run.scenario_clock or "real"


#: a ``run.json`` read whole for its clock at most: parsed, a file of a long ``watch`` list
#: takes ~4.5 times its size in memory (a 60 MB one, 267 MB). A larger one is scanned line
#: by line for its top-level ``"clock"`` (the runner writes it with ``indent=2``), never
#: held or parsed whole; a file written otherwise then names no clock.
CLOCK_JSON_BYTES = 16 << 20
_CLOCK_LINE = re.compile(rb'^  "clock": ("[^"\\\r\n]{1,40}")[ \t]*,?[ \t\r]*$', re.M)
#: bytes read at a time by that scan, and of a line cut in two by a read kept for the next
_CHUNK_BYTES = 1 << 20
_TAIL_BYTES = 128


def _run_clock(path: Path) -> Any:
    """The ``clock`` of a ``run.json`` (None: none, or it could not be read)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size <= CLOCK_JSON_BYTES:
        unread: list[str] = []
        return _read_json(path, unread, CLOCK_JSON_BYTES).get("clock")
    if is_special(path):
        return None
    try:
        with path.open("rb") as fh:
            buf = b""
            while chunk := fh.read(_CHUNK_BYTES):
                buf += chunk
                found = _CLOCK_LINE.search(buf)
                if found:
                    return json.loads(found.group(1))
                cut = buf.rfind(b"\n")  # the line cut by the read, to the next one
                # (a line longer than a clock's: its end, never read as a line's start)
                buf = buf[cut:] if cut >= 0 and len(buf) - cut <= _TAIL_BYTES \
                    else b"x" + buf[-_TAIL_BYTES:]
    except (OSError, ValueError):
        return None
    return None


def _scenarios_clock(scenarios: tuple[ScenarioData, ...]) -> str | None:
    """The clock the scenarios' ``run.json`` all name (the runner writes it in each), or
    None when one has none or they disagree."""
    clocks: set[Any] = set()
    for sc in scenarios:
        clocks.add(_run_clock(sc.path / "run.json"))
    if len(clocks) == 1:
        clock = clocks.pop()
        if isinstance(clock, str) and clock:
            return clock
    return None


def load_run(path: str | Path, *, every_event: bool = False) -> Run:
    """Load ``results/<run-id>/`` (or the ``results/latest`` symlink). The scenarios'
    histories are the rows the report reads (see :data:`HISTORY_ROWS`), read as a
    stream; ``every_event``: every row but :data:`BULK_EVENTS`, held whole (exploring a
    run in the notebook)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise RunStoreError(f"not a run directory: {run_dir}")
    run_dir = run_dir.resolve()
    problems: list[str] = []
    manifest = _read_json(run_dir / "manifest.json", problems)
    top = _read_json(run_dir / "summary.json", problems)
    listed: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for entry in top.get("scenarios", []) if isinstance(top.get("scenarios"), list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("scenario"), str):
            if entry["scenario"] in listed:  # judged twice, counted twice: was a GO's score
                problems.append(f"{TWICE} {entry['scenario'][:80]} more than once")
                continue
            listed[entry["scenario"]] = entry
            names.append(entry["scenario"])
    listed_in_manifest = manifest.get("scenarios")  # a number there was a TypeError
    for entry in listed_in_manifest if isinstance(listed_in_manifest, list) else []:
        # the runner lists {"name": ..., "file": ...}; older manifests, plain names
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and name not in names:
            names.append(name)
    markers = ("summary.json", "scenario.toml", "outcomes.parquet", "monitor_history.jsonl")
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if sub.name not in names and any((sub / m).exists() for m in markers):
            names.append(sub.name)
    if not names and not any((run_dir / f).exists() for f in ("manifest.json", "summary.json")) \
            and any(run_dir.iterdir()):
        # a folder of other things (a typo, /etc): not a run, and no report written into it
        # (an empty folder is a run that died before it wrote anything: INCONCLUSIVE)
        raise RunStoreError(f"not a run directory: {run_dir} (no manifest.json, summary.json "
                            "or scenario folders)")
    scenarios = tuple(_load_scenario(run_dir, n, listed.get(n), every_event) for n in names)
    run_id = str(top.get("run_id") or manifest.get("run_id") or run_dir.name)
    clock = manifest.get("clock")
    fallback = None if isinstance(clock, str) and clock else _scenarios_clock(scenarios)
    return Run(run_dir, run_id, manifest, scenarios, tuple(problems), fallback)


def sim_seconds(t_ns: Any, t0_ns: int, speed: float) -> Any:
    """Simulated seconds since ``t0_ns`` (docs/contracts.md "Clock"); works on Series."""
    return (t_ns - t0_ns) * speed / 1e9


def state_intervals(scenario: ScenarioData, end_s: float | None = None) -> list[
    tuple[float, float, str]
]:
    """The connection state over time as ``(start_s, stop_s, state)`` in simulated seconds.

    From the monitor history's ``state`` rows (the last change wins when several
    connections interleave). A polling scenario has no state rows: one ``POLLING`` band.
    """
    t0 = scenario.t0_ns
    end = end_s if end_s is not None else float(scenario.summary.get("sim_duration_s") or 0.0)
    df = scenario.monitor_history
    if t0 is None or df is None or "event" not in df:
        return [(0.0, end, "POLLING")] if scenario.mode == "polling" and end > 0 else []
    rows = df[df["event"] == "state"].sort_values("t_ns")
    if rows.empty:
        return [(0.0, end, "POLLING")] if scenario.mode == "polling" and end > 0 else []
    out: list[tuple[float, float, str]] = []
    times = [float(sim_seconds(t, t0, scenario.speed)) for t in rows["t_ns"]]
    states = [str(s) for s in rows["to"]]
    first_from = rows["from"].iloc[0] if "from" in rows else None
    if times[0] > 0 and isinstance(first_from, str):
        out.append((0.0, times[0], first_from))
    for i, (start, state) in enumerate(zip(times, states, strict=True)):
        stop = times[i + 1] if i + 1 < len(times) else max(end, start)
        if stop > start:
            out.append((max(start, 0.0), stop, state))
    return out


def fallback_intervals(scenario: ScenarioData, end_s: float | None = None) -> list[
    tuple[float, float]
]:
    """When polling fallback was active, from the monitor history's ``fallback`` rows."""
    t0 = scenario.t0_ns
    end = end_s if end_s is not None else float(scenario.summary.get("sim_duration_s") or 0.0)
    df = scenario.monitor_history
    if t0 is None or df is None or "event" not in df or "active" not in df:
        return []
    rows = df[df["event"] == "fallback"].sort_values("t_ns")
    out: list[tuple[float, float]] = []
    since: float | None = None
    for t, active in zip(rows["t_ns"], rows["active"], strict=True):
        s = float(sim_seconds(t, t0, scenario.speed))
        if bool(active) and since is None:
            since = s
        elif not bool(active) and since is not None:
            out.append((since, s))
            since = None
    if since is not None:
        out.append((since, max(end, since)))
    return out


#: how far into a seed's simulator history its ``start`` row is looked for (it comes after
#: the first few request rows)
_START_ROW_LINES = 2000


def _start_t0_ns(path: Path) -> int | None:
    """``t0_ns`` of the ``start`` row of a simulator history, read from its first lines
    only (a week's history is large); None when it cannot be had."""
    try:
        with path.open("rb") as f:
            for _ in range(_START_ROW_LINES):
                line = f.readline(JSON_BYTES)
                if not line:
                    return None
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    return None
                if isinstance(row, dict) and row.get("event") == "start":
                    t0 = row.get("t0_ns")
                    return int(t0) if isinstance(t0, int) and not isinstance(t0, bool) \
                        else None
    except OSError:
        return None
    return None


def seed_t0_ns(sc: ScenarioData) -> dict[Any, int | None]:
    """When block 0 was due in each seed of a scenario pooled over seeds (the ``seed``
    column of its outcomes): from ``<scenario>/seeds/<seed>/sim_history.jsonl``, else the
    seed's first visible trade. Every seed's run has its own clock: on the real clock the
    seeds run one after the other, and the scenario's own ``t0_ns`` (the first seed's)
    put the second seed's trades hundreds of seconds past the end of the run."""
    df = sc.outcomes
    if df is None or "seed" not in df.columns:
        return {}
    out: dict[Any, int | None] = {}
    for seed, rows in df.groupby("seed", sort=False):
        # a seed is a whole number (experiments.seeds): nothing else names a folder
        t0 = (_start_t0_ns(sc.path / "seeds" / str(int(seed)) / "sim_history.jsonl")
              if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) else None)
        if t0 is None:
            vis = rows["visible_t_ns"].dropna()
            t0 = int(vis.min()) if not vis.empty else None
        out[seed] = t0
    return out


def outcome_seconds(sc: ScenarioData, df: pd.DataFrame | None = None) -> pd.Series:
    """Simulated seconds since the first block of each trade's own run (``df``: rows of
    ``sc.outcomes``, default all of them); NaN where that is not known."""
    df = sc.outcomes if df is None else df
    if df is None:
        return pd.Series(dtype="float64")
    visible = df["visible_t_ns"].astype("float64")
    if "seed" in df.columns and df["seed"].nunique() > 1:
        t0s = seed_t0_ns(sc)
        base = df["seed"].map(lambda s: t0s.get(s)).astype("float64")
        return (visible - base) * sc.speed / 1e9
    t0 = sc.t0_ns
    if t0 is None:
        return pd.Series(float("nan"), index=df.index)
    return sim_seconds(visible, t0, sc.speed)


def all_outcomes(run: Run, *, categories: bool = False) -> pd.DataFrame:
    """Every scenario's outcomes in one frame, with ``scenario``, ``mode`` and ``t_s``
    (simulated seconds since the first block of the trade's run: of its seed's, when the
    scenario pools seeds) added for slicing. The columns a scenario holds as categories
    (:data:`OUTCOME_CATEGORIES`) are given back as the texts they were read as, unless
    ``categories``."""
    frames = []
    for sc in run.scenarios:
        if sc.outcomes is None:
            continue
        df = sc.outcomes.copy()
        if not categories:
            for c in OUTCOME_CATEGORIES:
                if c in df.columns and isinstance(df[c].dtype, pd.CategoricalDtype):
                    df[c] = df[c].astype(df[c].cat.categories.dtype)
        df.insert(0, "scenario", sc.name)
        df.insert(1, "mode", sc.mode)
        df["t_s"] = outcome_seconds(sc, sc.outcomes)  # 0: every virtual-time run
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["scenario", "mode", *OUTCOME_COLUMNS, "t_s"])
    return pd.concat(frames, ignore_index=True)


def summaries_frame(run: Run) -> pd.DataFrame:
    """One row per scenario with the scalar keys of its summary."""
    rows = []
    for sc in run.scenarios:
        row = {k: v for k, v in sc.summary.items() if not isinstance(v, dict | list)}
        row["scenario"] = sc.name
        row["mode"] = sc.mode
        row["status"] = sc.status
        rows.append(row)
    return pd.DataFrame(rows).set_index("scenario") if rows else pd.DataFrame()
