"""The wallet list of a scenario whose restarts changed it (``run.json`` ``watch`` and the
``added`` / ``removed`` of its ``restarts``, docs/contracts.md "restarts").

A restart may add and remove wallets: ``wallets`` is then every wallet watched at some
time, each judged only inside its own interval (the blocks published while a monitor
stopped or started around a change are judged for none), and the API calls per wallet
divide by the wallets watched on average (:func:`experiments.checker.mean_watched`).
The report shows that account; a run without ``watch`` shows nothing of it.

:func:`parse_watch` is the logic (a ``run.json`` object in, a :class:`Watch` out, no I/O):
whatever is damaged in it (another type, a key missing, a list longer than any run
writes) becomes a line of ``problems``, never an exception. :func:`scenario_watches`
reads the ``run.json`` of a scenario (of each seed, when it pools several); the mean
shown is the one the scenario's (each seed's) ``summary.json`` records, what the calls
per wallet-hour were divided by (:func:`with_recorded`), recomputed for a store from
before the analysis recorded it. A pool has no mean of its own: each seed's is its own.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.checker import mean_watched
from reports.load import ScenarioData, _read_json

__all__ = [
    "MAX_SEEDS_SHOWN",
    "MAX_WATCH",
    "RANGES_SHOWN",
    "RECORDED",
    "TABLE_ROWS",
    "Restart",
    "Watch",
    "WatchedWallet",
    "parse_watch",
    "restarts_frame",
    "scenario_watches",
    "shown_path",
    "watch_frame",
    "with_recorded",
]

#: entries of ``watch`` read at most: a run watches 10,000 wallets at most
#: (docs/contracts.md); a longer list is damaged, and only its first entries are shown
MAX_WATCH = 20_000
#: bytes of a ``run.json`` read for its wallet list. A run of 10,000 wallets writes a few
#: MB (``indent=2``: ~300 bytes a wallet, its restarts' lists); parsed, a list is ~4.5
#: times its bytes in memory (a 60 MB ``watch`` took ``reports build`` from 212 to 479 MB
#: of RSS), so a larger file is not read but said, with this cap
WATCH_JSON_BYTES = 16 << 20
#: restarts read at most, and ``unjudged_blocks`` ranges of one wallet (one a restart)
MAX_RESTARTS = 1_000
#: rows of the table of the wallets added or removed; the rest are counted ("N more")
TABLE_ROWS = 20
#: unjudged ranges shown in one row of that table
RANGES_SHOWN = 3
#: the seeds of a pooled scenario whose lists are shown (each seed draws its own)
MAX_SEEDS_SHOWN = 5
#: characters of a wallet (or other text) shown: a wallet is 42
TEXT_SHOWN = 60
#: problems listed of one ``watch`` (the rest are counted)
PROBLEMS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class WatchedWallet:
    """One wallet's interval: watched from ``from_s`` to ``to_s`` (simulated s into the
    measured window; None: from its start / to its end), its trades the bot's after block
    ``after_block`` up to ``until_block`` (None: no bound), but for ``unjudged``."""

    wallet: str
    from_s: float | None
    to_s: float | None
    after_block: int | None
    until_block: int | None
    unjudged: tuple[tuple[int, int], ...]

    @property
    def unjudged_blocks(self) -> int:
        return sum(b - a + 1 for a, b in self.unjudged)


@dataclass(frozen=True, slots=True)
class Restart:
    """A restart as ``run.json`` ``restarts`` records it; ``added`` / ``removed`` counts
    (None: the restart changed no wallet), the four heads (None: not recorded) and how
    many added wallets' stored launch point is not the harness's ``launch_block``."""

    number: int
    at_s: float | None
    kind: str
    down_s: float | None
    added: int | None
    removed: int | None
    heads: tuple[int | None, int | None, int | None, int | None]
    launches_differ: int


@dataclass(frozen=True, slots=True)
class Watch:
    """What the report shows of one ``run.json``'s ``watch``. ``seed``: whose run it is
    (a pooled scenario's seeds each draw their own lists), None for a scenario of one."""

    wallets: tuple[WatchedWallet, ...]
    restarts: tuple[Restart, ...]
    window_s: float | None
    entries: int
    problems: tuple[str, ...]
    mean: float | None
    seed: int | None = None
    #: False: the ``run.json`` could not be read (``problems`` says why): nothing of its
    #: list is known, and the page shows only that line
    readable: bool = True
    #: True: ``mean`` is the one the scenario's (or the seed's) ``summary.json`` records
    #: (:func:`with_recorded`); False: recomputed from the list (a store from before)
    mean_recorded: bool = False

    @property
    def at_start(self) -> int:
        return sum(1 for w in self.wallets if w.from_s is None or w.from_s <= 0)

    @property
    def at_end(self) -> int:
        end = self.window_s
        return sum(1 for w in self.wallets
                   if w.to_s is None or (end is not None and w.to_s >= end))

    @property
    def changed(self) -> tuple[WatchedWallet, ...]:
        """The wallets not watched the whole window (added or removed at a restart) or
        with unjudged blocks."""
        return tuple(w for w in self.wallets if w.from_s is not None or w.to_s is not None
                     or w.after_block is not None or w.until_block is not None
                     or w.unjudged)

    @property
    def unjudged_ranges(self) -> int:
        return sum(len(w.unjudged) for w in self.wallets)

    @property
    def unjudged_blocks(self) -> int:
        return sum(w.unjudged_blocks for w in self.wallets)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "..."


def _seconds(value: Any) -> float | None:
    """A finite number >= 0 as float; raises ValueError for anything else but None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{_text(value)!r} is not a number of seconds >= 0")
    return float(value)


def _block(value: Any) -> int | None:
    """A block number (a whole number >= 0); raises ValueError for anything else but None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{_text(value)!r} is not a block number")
    return value


def _ranges(value: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise ValueError(f"unjudged_blocks {_text(value)!r} is not a list")
    if len(value) > MAX_RESTARTS:
        raise ValueError(f"unjudged_blocks lists {len(value):,} ranges, more than "
                         f"{MAX_RESTARTS:,}")
    out = []
    for r in value:
        if not isinstance(r, list) or len(r) != 2:
            raise ValueError(f"unjudged_blocks range {_text(r)!r} is not [first, last]")
        first, last = _block(r[0]), _block(r[1])
        if first is None or last is None or last < first:
            raise ValueError(f"unjudged_blocks range {_text(r)!r} is not [first, last]")
        out.append((first, last))
    return tuple(out)


_KEYS = ("wallet", "from_s", "to_s", "after_block", "until_block", "unjudged_blocks")


def _wallet(entry: Any) -> WatchedWallet:
    if not isinstance(entry, dict):
        raise ValueError(f"{_text(entry)!r} is not an object")
    missing = [k for k in _KEYS if k not in entry]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    wallet = entry["wallet"]
    if not isinstance(wallet, str) or not wallet:
        raise ValueError(f"wallet {_text(wallet)!r} is not an address")
    from_s, to_s = _seconds(entry["from_s"]), _seconds(entry["to_s"])
    if from_s is not None and to_s is not None and to_s < from_s:
        raise ValueError(f"{_text(wallet)}: to_s {to_s} is before from_s {from_s}")
    return WatchedWallet(_text(wallet), from_s, to_s, _block(entry["after_block"]),
                         _block(entry["until_block"]), _ranges(entry["unjudged_blocks"]))


def _count(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{key} {_text(value)!r} is not a list of wallets")
    return len(value)


_HEADS = ("stop_block", "removed_block", "launch_block", "started_block")


def _restart(number: int, entry: Any) -> Restart:
    if not isinstance(entry, dict):
        raise ValueError(f"{_text(entry)!r} is not an object")
    heads = tuple(_block(entry.get(k)) for k in _HEADS)
    stored = entry.get("launches_stored")
    launch = heads[2]
    differ = (sum(1 for v in stored.values() if v != launch)
              if isinstance(stored, dict) and launch is not None else 0)
    kind = entry.get("kind")
    return Restart(number, _seconds(entry.get("at_s")),
                   _text(kind) if isinstance(kind, str) else "-",
                   _seconds(entry.get("down_s")), _count(entry.get("added"), "added"),
                   _count(entry.get("removed"), "removed"),
                   (heads[0], heads[1], heads[2], heads[3]), differ)


def parse_watch(run: dict[str, Any], seed: int | None = None) -> Watch | None:
    """The ``watch`` of a ``run.json`` object, None when it has none (the scenario changed
    no wallet list). Never raises: what is damaged is a line of ``problems`` and is left
    out (a damaged list gives no mean)."""
    if "watch" not in run:
        return None
    raw = run["watch"]
    problems: list[str] = []
    window = run.get("sim_duration_s")
    try:
        window_s = _seconds(window)
    except ValueError:
        window_s = None
        problems.append(f"run.json: sim_duration_s {_text(window)!r} is not a number of "
                        "seconds: the wallets watched on average are not known")
    if not isinstance(raw, list):
        problems.append(f"run.json: watch is not a list of wallets ({type(raw).__name__})")
        return Watch((), (), window_s, 0, tuple(problems), None, seed)
    wallets: list[WatchedWallet] = []
    bad: list[str] = []
    for i, entry in enumerate(raw[:MAX_WATCH]):
        try:
            wallets.append(_wallet(entry))
        except ValueError as exc:
            bad.append(f"entry {i + 1}: {exc}")
    if len(raw) > MAX_WATCH:
        problems.append(f"run.json: watch lists {len(raw):,} wallets, more than a run "
                        f"watches: only the first {MAX_WATCH:,} were read")
    if bad:
        more = f" (and {len(bad) - PROBLEMS_SHOWN:,} more)" if len(bad) > PROBLEMS_SHOWN \
            else ""
        problems.append(f"run.json: {len(bad):,} entr{'y' if len(bad) == 1 else 'ies'} of "
                        f"watch could not be read and are left out: "
                        f"{'; '.join(bad[:PROBLEMS_SHOWN])}{more}")
    names = [w.wallet for w in wallets]
    if len(set(names)) != len(names):
        problems.append(f"run.json: watch lists {len(names) - len(set(names)):,} wallets "
                        "more than once")
    restarts: list[Restart] = []
    raw_restarts = run.get("restarts", [])
    if not isinstance(raw_restarts, list):
        problems.append(f"run.json: restarts is not a list ({type(raw_restarts).__name__})")
        raw_restarts = []
    for i, entry in enumerate(raw_restarts[:MAX_RESTARTS]):
        try:
            restarts.append(_restart(i + 1, entry))
        except ValueError as exc:
            problems.append(f"run.json: restart {i + 1} could not be read: {exc}")
    if len(raw_restarts) > MAX_RESTARTS:
        problems.append(f"run.json: {len(raw_restarts):,} restarts, only the first "
                        f"{MAX_RESTARTS:,} were read")
    mean = None
    if not problems and window_s:
        mean = mean_watched(raw, window_s)
    return Watch(tuple(wallets), tuple(restarts), window_s, len(raw), tuple(problems),
                 mean, seed)


def _seeds(sc: ScenarioData) -> list[int]:
    seeds = sc.summary.get("seeds")
    if not isinstance(seeds, list):
        return []
    return [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)]


#: the key of a scenario summary that records the wallets watched on average (written by
#: the analysis when ``run.json`` has a ``watch``; absent in a store from before it)
RECORDED = "wallets_watched_mean"


def with_recorded(watch: Watch, summary: dict[str, Any], source: str) -> Watch:
    """``watch`` with the mean its summary (``source``: which file) records, the figure
    ``api_calls_per_hour_per_wallet`` was divided by, in place of the one recomputed from
    the list; a mean recomputed that differs, or one recorded that is not a number, is a
    line of ``problems``. A summary without it (written before the analysis recorded it)
    or with null (the analysis found no mean) leaves the recomputed mean."""
    if RECORDED not in summary or summary[RECORDED] is None:
        return watch
    value = summary[RECORDED]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        return replace(watch, problems=(*watch.problems, (
            f"{source}: {RECORDED} {_text(value)!r} is not a number of wallets: the mean "
            "shown is recomputed from run.json")))
    recorded = float(value)
    problems = watch.problems
    if watch.mean is not None and not math.isclose(watch.mean, recorded, rel_tol=1e-6):
        problems = (*problems, f"{source} records {recorded:.6g} wallets watched on "
                               f"average, run.json's watch gives {watch.mean:.6g}: the "
                               "recorded mean is shown (the one the calls per wallet-hour "
                               "were divided by)")
    return replace(watch, mean=recorded, problems=problems, mean_recorded=True)


def _read_run(path: Path) -> tuple[dict[str, Any], str | None]:
    """A ``run.json`` object and None, or ``{}`` and why it could not be read (a clause:
    "it is missing", "JSONDecodeError", ...)."""
    try:
        size = path.stat().st_size
    except OSError:  # gone or unreadable: said by _read_json below
        size = 0
    if size > WATCH_JSON_BYTES:
        return {}, (f"it is {size / (1 << 20):,.1f} MiB, more than the "
                    f"{WATCH_JSON_BYTES >> 20} MiB read for a wallet list")
    unread: list[str] = []
    run = _read_json(path, unread, WATCH_JSON_BYTES)
    if not unread:
        return run, None
    why = unread[0].removeprefix(f"{path.name} ")
    inner = why.removeprefix("could not be read (")
    return {}, (inner[:-1] if inner != why and inner.endswith(")") else f"it {why}")


def _size_capped(why: str) -> bool:
    """Whether :func:`_read_run`'s reason is the size cap."""
    return why.endswith(f"{WATCH_JSON_BYTES >> 20} MiB read for a wallet list")


def _unread(seed: int | None, why: str) -> Watch:
    """The note of a ``run.json`` that could not be read (a seed's, or the scenario's:
    ``seed`` None)."""
    whose = "its" if seed is None else f"seed {seed}'s"
    line = (f"{'run.json' if seed is None else f'seeds/{seed}/run.json'} could not be "
            f"read ({_text(why)}): whether {whose} wallets changed at its restarts is not "
            "known, and none of its list is shown")
    return Watch((), (), None, 0, (line,), None, seed, readable=False)


def scenario_watches(sc: ScenarioData) -> tuple[list[Watch], int]:
    """The wallet lists of a scenario's ``run.json`` (of each seed's, up to
    :data:`MAX_SEEDS_SHOWN`, when it pools several: each draws its own), and how many
    seeds more there are; ``([], 0)`` when its runs changed no wallet list.

    A pooled seed whose ``run.json`` cannot be read (gone, cut, not JSON) is a
    :class:`Watch` that is not ``readable``, its one problem saying which and why, when
    the scenario's lists changed (another seed's ``run.json``, or the scenario's own copy
    of the first seed's, has a ``watch``, or the seed's summary records a mean) or when
    none of them could be read (nothing says whether they changed): it showed nothing,
    as if that seed's list had not changed. A ``run.json`` past
    :data:`WATCH_JSON_BYTES` is not read (its list, parsed, would take several times
    its size in memory) and is said so, a scenario's of one seed too."""
    seeds = _seeds(sc)
    if len(seeds) <= 1:
        run, why = _read_run(sc.path / "run.json")
        if why is not None and (_size_capped(why) or RECORDED in sc.summary):
            # a file too big to read, or one whose summary says it had a list
            return [_unread(None, why)], 0
        watch = parse_watch(run)
        if watch is None:
            return [], 0
        return [with_recorded(watch, sc.summary, "summary.json")], 0
    out: list[Watch] = []
    changed = read = False
    for seed in seeds[:MAX_SEEDS_SHOWN]:
        run, why = _read_run(sc.path / "seeds" / str(seed) / "run.json")
        unread: list[str] = []  # said by the seeds' problems (load.seed_problems)
        if why is not None:
            out.append(_unread(seed, why))
            # a file too big to read, or one whose summary says it had a list
            changed = changed or _size_capped(why) or RECORDED in _read_json(
                sc.path / "seeds" / str(seed) / "summary.json", unread)
            continue
        read = True
        watch = parse_watch(run, seed)
        if watch is not None:
            own = _read_json(sc.path / "seeds" / str(seed) / "summary.json", unread)
            out.append(with_recorded(watch, own, f"seeds/{seed}/summary.json"))
            changed = True
    if not changed and any(not w.readable for w in out):
        own, why = _read_run(sc.path / "run.json")
        changed = "watch" in own or (why is not None and not read)
    if not changed:
        return [], 0
    return out, max(0, len(seeds) - MAX_SEEDS_SHOWN)


def watch_frame(watch: Watch) -> pd.DataFrame:
    """One row a wallet: its interval, its unjudged ranges and blocks (the notebook's)."""
    return pd.DataFrame(
        [{"wallet": w.wallet, "from_s": w.from_s, "to_s": w.to_s,
          "after_block": w.after_block, "until_block": w.until_block,
          "unjudged_blocks": list(w.unjudged), "unjudged_n": w.unjudged_blocks}
         for w in watch.wallets],
        columns=["wallet", "from_s", "to_s", "after_block", "until_block",
                 "unjudged_blocks", "unjudged_n"]
    ).astype({"from_s": "float64", "to_s": "float64", "after_block": "Int64",
              "until_block": "Int64", "unjudged_n": "int64"})


def restarts_frame(watch: Watch) -> pd.DataFrame:
    """One row a restart: when, how, the wallets added and removed and the four heads."""
    return pd.DataFrame(
        [{"restart": r.number, "at_s": r.at_s, "kind": r.kind, "down_s": r.down_s,
          "added": r.added, "removed": r.removed,
          **dict(zip(_HEADS, r.heads, strict=True)), "launches_differ": r.launches_differ}
         for r in watch.restarts],
        columns=["restart", "at_s", "kind", "down_s", "added", "removed", *_HEADS,
                 "launches_differ"]
    ).astype({"at_s": "float64", "down_s": "float64", "added": "Int64", "removed": "Int64",
              **dict.fromkeys(_HEADS, "Int64")})


def shown_path(watch: Watch) -> str:
    """Which file the list was read from, for the page."""
    return "run.json" if watch.seed is None else f"seeds/{watch.seed}/run.json"

