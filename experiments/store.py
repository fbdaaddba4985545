"""The run store: ``results/<run-id>/`` exactly as docs/contracts.md 'Run store' lays it out.

``create_run`` makes the directory, ``write_manifest`` records how the run was made (git sha
when there is git, package versions, host, command line), ``write_run_summary`` gathers the
scenario summaries, and ``point_latest`` moves ``results/latest`` to the newest run.
``iter_jsonl`` is the one reader of the store's JSON-lines files (histories, detections):
the analysis, the report and the notebook all read them through it (``read_jsonl`` as a
list, ``JsonlRows`` as an iterable read again at each pass).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from polyvocab.bounds import guard_c_parser
from polyvocab.small_files import is_special

__all__ = [
    "PACKAGES",
    "JsonlError",
    "JsonlRows",
    "StoreError",
    "create_run",
    "git_sha",
    "iter_jsonl",
    "load_run_summary",
    "package_versions",
    "point_latest",
    "read_jsonl",
    "resolve_run",
    "write_manifest",
    "write_run_summary",
    "written_together",
]

PACKAGES = ("polymarket-ws-pilot", "websockets", "aiohttp", "eth-abi", "eth-utils", "pydantic",
            "pydantic-settings", "pandas", "pyarrow", "rich", "psutil", "matplotlib", "jinja2")


class StoreError(ValueError):
    """A run directory that does not exist or is not a run."""


class JsonlError(ValueError):
    """A JSON-lines file with a bad line (not JSON, or not an object) before its last line.
    The message names the file and the line; the data cannot be trusted: say so, do not
    guess."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class BadRow(ValueError):
    """Raised by a ``select`` of :func:`iter_jsonl` for a row it cannot use (a field missing
    or of the wrong type); :func:`iter_jsonl` names the file and line."""


Select = Callable[[dict[str, Any]], "dict[str, Any] | None"]

#: the longest line a history or detections file may have (its rows are ~0.1-10 kB; a
#: corrupt file of one endless line must not be read whole)
MAX_LINE_CHARS = 64 << 20


#: the C scanner of a default decoder: (text, index) -> (value, end); StopIteration when no
#: value starts at the index
_scan_once: Callable[[str, int], tuple[Any, int]] = (
    json.JSONDecoder().scan_once)  # type: ignore[attr-defined]


def _loads_line(line: str) -> Any:
    """``json.loads(line)`` for one line of a JSON-lines file, the same value or the same
    error: a line that opens with ``{`` and ends with its value and a newline is scanned
    straight away (``json.loads`` checks for a byte-order mark, skips leading and
    trailing whitespace with a regular expression and checks for extra data, ~40 % of the
    analysis's time in JSON on a day's histories); anything else, and any line the scan
    does not take whole, goes through ``json.loads`` itself. Nested too deep: a
    RecursionError, whatever the process's recursion limit."""
    guard_c_parser(line)
    if line[:1] == "{":
        try:
            value, end = _scan_once(line, 0)
        except (StopIteration, ValueError):
            return json.loads(line)  # raises as it raises
        if end == len(line) or line[end:] == "\n":
            return value
    return json.loads(line)


def iter_jsonl(path: str | Path, select: Select | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file, read line by line. A torn last line (a process killed
    mid-write) is dropped; a bad line elsewhere raises :class:`JsonlError` naming the file
    and line. Blank lines are skipped. ``OSError`` passes through.

    ``select`` sees every row as it is read and returns what to keep of it (the row, or a
    smaller dict) or None to drop it, or raises :class:`BadRow`. Every line is still
    checked."""
    path = Path(path)
    bad: tuple[int, str] | None = None  # a line that is not JSON: torn if nothing follows
    _refuse_special(path)
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(iter(lambda: fh.readline(MAX_LINE_CHARS + 1), "")):
            if len(line) > MAX_LINE_CHARS:  # refused before it is held whole
                raise JsonlError(path, i + 1, f"a line longer than {MAX_LINE_CHARS:,} "
                                              f"characters")
            if not line.strip():
                continue
            if bad is not None:
                raise JsonlError(path, *bad)
            try:
                row = _loads_line(line)
            except json.JSONDecodeError as exc:
                bad = (i + 1, f"not JSON ({exc.msg})")
                continue
            except RecursionError:  # [[[[...]]]]: was a traceback in analyze and the report
                raise JsonlError(path, i + 1, "JSON nested too deep") from None
            if not isinstance(row, dict):
                raise JsonlError(path, i + 1, "expected a JSON object")
            if select is not None:
                try:
                    row = select(row)
                except BadRow as exc:
                    raise JsonlError(path, i + 1, str(exc)) from None
                if row is None:
                    continue
            yield row


def _refuse_special(path: Path) -> None:
    """An ``OSError`` for a FIFO or a device (:func:`is_special`): opening a FIFO waits
    for a writer, and ``analyze`` or the report hung."""
    if is_special(path):
        raise OSError(errno.EINVAL, "not a regular file", str(path))


def read_jsonl(path: str | Path, select: Select | None = None) -> list[dict[str, Any]]:
    """:func:`iter_jsonl` as a list."""
    return list(iter_jsonl(path, select))


class JsonlRows:
    """The rows of a JSON-lines file as an iterable read again at each pass, so a long run's
    history (a simulated week: ~1.6 million rows, 4.4 GB as dicts) is never held whole:
    a pass holds one row at a time."""

    def __init__(self, path: str | Path, select: Select | None = None) -> None:
        self.path = Path(path)
        self.select = select

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter_jsonl(self.path, self.select)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def create_run(out: str | Path, run_id: str | None = None, *,
               private: bool = False) -> Path:
    """A fresh ``<out>/<run-id>/`` (run id from the UTC time, suffixed if taken).
    ``private``: made 0700 from the start, for runs holding a live pilot's data (the
    wallets watched and their trades, kept 0600 by the pilot); other runs are made with
    the umask, as before."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while True:
        try:
            (out / candidate).mkdir(mode=0o700 if private else 0o777)
            return out / candidate
        except FileExistsError:
            n += 1
            candidate = f"{base}-{n}"


def git_sha(cwd: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD``, or None without git or outside a repository."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_manifest(run_dir: Path, *, scenarios: list[dict[str, Any]], command: list[str],
                   started: str, quick: bool, jobs: int, executor: str = "local",
                   clock: str = "real", seeds: dict[str, list[int]] | None = None) -> Path:
    manifest = {
        "run_id": run_dir.name,
        "command": command,
        "scenarios": scenarios,
        "seeds": {s["name"]: (list(seeds[s["name"]]) if seeds and s["name"] in seeds
                              else s.get("seed")) for s in scenarios},
        "speed": {s["name"]: (1.0 if clock == "virtual" else s.get("speed"))
                  for s in scenarios},
        "clock": clock,
        "quick": quick,
        "jobs": jobs,
        "executor": executor,
        "git_sha": git_sha(Path(__file__).resolve().parent.parent),
        "versions": package_versions(),
        "host": {"platform": platform.platform(), "machine": platform.machine(),
                 "node": platform.node(), "cpus": os.cpu_count(),
                 "python": sys.version.split()[0]},
        "started": started,
        "finished": _now_iso(),
    }
    path = run_dir / "manifest.json"
    with written_together() as stage:
        stage(path).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def write_run_summary(run_dir: Path, summaries: list[dict[str, Any]]) -> Path:
    path = run_dir / "summary.json"
    doc = {"run_id": run_dir.name, "scenarios": summaries}
    with written_together() as stage:
        stage(path).write_text(json.dumps(doc, indent=2, default=str) + "\n",
                               encoding="utf-8")
    return path


@contextlib.contextmanager
def written_together() -> Iterator[Callable[[Path], Path]]:
    """Files written as one: ``stage(path)`` is the temporary file (beside ``path``) to
    write ``path``'s new contents to. When the block ends, each staged file replaces its
    path (a rename: no space needed); when it raises, none does and the temporary files
    are removed. A disk that fills up (ENOSPC, EFBIG) mid-write cut the file being
    rewritten (an analysis's truth.parquet, a run's summary.json) and left the earlier
    results damaged; now they stand whole. An ``OSError`` without a file name (pyarrow's,
    a failed close) is raised again naming the file that was being written."""
    staged: dict[Path, Path] = {}
    last: list[Path] = []

    def stage(path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged[path] = tmp
        last[:] = [path]
        return tmp

    try:
        yield stage
    except BaseException as exc:
        for tmp in staged.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename and last:
            raise OSError(exc.errno, exc.strerror or str(exc), str(last[0])) from None
        raise
    for path, tmp in staged.items():
        os.replace(tmp, path)


def load_run_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    _refuse_special(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # a ValueError as any other JSON that cannot be read
        raise ValueError(f"{path}: JSON nested too deep") from None
    return data


def point_latest(run_dir: Path) -> Path:
    """Make ``<out>/latest`` a relative symlink to ``run_dir`` (atomically replaced)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
    return link


def resolve_run(run: str | Path) -> Path:
    """A stored run given by path (``results/latest`` works). Raises :class:`StoreError`."""
    path = Path(run)
    if not path.is_dir():
        raise StoreError(f"{run}: no such run directory")
    path = path.resolve()
    if not (path / "manifest.json").exists():
        raise StoreError(f"{run}: not a run directory (no manifest.json)")
    return path


def started_now() -> str:
    return _now_iso()
