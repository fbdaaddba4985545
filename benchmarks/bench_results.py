"""The results files the benchmarks write (``benchmarks/results/<name>.json``, git-ignored)
and the report's performance section reads (``reports/performance.py``).

One document per benchmark::

    {"benchmark": "wallets", "title": "...", "command": "...", "created": "2026-...Z",
     "git_sha": "...", "machine": {...},
     "figures": [{"name": "...", "value": 12.3, "unit": "ms", "target": "< 50 ms",
                  "met": true}, ...],
     ...anything else the benchmark keeps (its measured points)}

``met`` is ``None`` for a figure that has no target. Figures are printed beside their
target as they are written; nothing here asserts a timing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", str(ROOT / "benchmarks" / "results")))


def figure(name: str, value: float | int | None, unit: str = "", target: str = "",
           met: bool | None = None) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met}


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()``, often
    empty there, elsewhere): figures from two machines are not comparable, so every
    results file names its CPU."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "processor": cpu_model()}


def fmt_value(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def print_figures(title: str, figures: list[dict[str, Any]]) -> None:
    """One line a figure: name, value, target, met (to the real stdout, not captured)."""
    out = sys.__stdout__ or sys.stdout
    out.write(f"\n{title}\n")
    for f in figures:
        met = {True: "met", False: "NOT MET", None: ""}[f.get("met")]
        target = f"target {f['target']}" if f.get("target") else ""
        out.write(f"  {f['name']:<58} {fmt_value(f['value'], f.get('unit', '')):>16}"
                  f"  {target:<26} {met}\n")
    out.flush()


def write_results(name: str, title: str, command: str, figures: list[dict[str, Any]],
                  printed: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    """Write ``RESULTS_DIR/<name>.json`` and print the figures (or only ``printed``);
    returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "title": title, "command": command,
           "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "git_sha": _git_sha(), "machine": machine(), "figures": figures, **extra}
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    print_figures(f"{title} -> {path}", figures if printed is None else printed)
    return path
