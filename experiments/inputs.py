"""What an analysis read, so that a later reader can tell whether its results still
describe the files beside them.

A scenario's analysis (``summary.json`` and the parquet tables) is written once, from the
run's histories and detections. A file cut, appended to, or replaced afterwards left a
report built from the stored analysis showing results that the files no longer support.
The analysis records each input's size (and, for small files such as ``scenario.toml``
whose thresholds it evaluated, its SHA-256); :func:`changed_since` compares. Sizes, not
modification times: a run directory copied elsewhere keeps its sizes.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

#: the files an analysis reads, in a scenario's directory
ANALYSED_FILES = ("run.json", "scenario.toml", "sim_history.jsonl", "monitor_history.jsonl",
                  "detections.jsonl")
#: files up to this size are hashed too (the small ones: run.json, scenario.toml)
HASHED_BYTES = 1 << 20


def fingerprint(sdir: Path, hashed_bytes: int = HASHED_BYTES) -> dict[str, dict[str, Any]]:
    """Each analysed file that exists: ``{"bytes": n}``, plus ``"sha256"`` when it is at
    most ``hashed_bytes`` (0: sizes only, see :func:`sizes_only`)."""
    out: dict[str, dict[str, Any]] = {}
    for name in ANALYSED_FILES:
        path = sdir / name
        try:
            st = path.stat()
            entry: dict[str, Any] = {"bytes": st.st_size}
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read below
                entry["regular"] = False
            elif st.st_size <= hashed_bytes and hashed_bytes > 0:
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
        out[name] = entry
    return out


def sizes_only(recorded: Any) -> Any:
    """A recorded fingerprint without its hashes, to compare with ``fingerprint(sdir, 0)``
    (the many seeds of a pool are checked by size: hashing each seed's small histories
    again made a report of hundreds of seeds read them all)."""
    if not isinstance(recorded, dict):
        return recorded
    return {name: ({k: v for k, v in entry.items() if k != "sha256"}
                   if isinstance(entry, dict) else entry)
            for name, entry in recorded.items()}


def changed_since(recorded: Any, now: dict[str, dict[str, Any]]) -> str | None:
    """Why the files ``now`` are not the ones ``recorded`` by the analysis, or None. An
    analysis that recorded nothing (written before this existed) is not judged."""
    if not isinstance(recorded, dict):
        return None
    changes = []
    for name in ANALYSED_FILES:
        was, is_ = recorded.get(name), now.get(name)
        if was == is_:
            continue
        if not isinstance(was, dict):
            changes.append(f"{name} appeared")
        elif is_ is None:
            changes.append(f"{name} is gone")
        elif was.get("bytes") != is_.get("bytes"):
            changes.append(f"{name} was {_size(was.get('bytes'))}, is {_size(is_['bytes'])}")
        else:
            changes.append(f"{name} has other contents")
    if not changes:
        return None
    return "; ".join(changes)


def _size(n: Any) -> str:
    return f"{n:,} bytes" if isinstance(n, int) else "of unknown size"
