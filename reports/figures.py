"""The report's figures (matplotlib, Agg). Each function returns a ``Figure``; the
notebook shows them as they are, the report embeds them with :func:`to_data_uri`.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so building many
in one process leaks nothing.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Sequence
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")  # headless; a notebook keeps its own backend

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter

from experiments.thresholds import metric_value, shown
from reports.cost import explorer_usage
from reports.load import (
    VIRTUAL,
    Run,
    ScenarioData,
    fallback_intervals,
    run_clock,
    sim_seconds,
    state_intervals,
)

__all__ = [
    "MODE_COLORS",
    "VIRTUAL_RESOURCES",
    "api_calls",
    "latency_ecdf",
    "latency_timeline",
    "outcomes",
    "resources",
    "to_data_uri",
    "to_png",
]

MODE_COLORS = {"polling": "#d9822b", "websocket": "#2b6cb0", "unknown": "#718096"}
STATE_COLORS = {
    "CONNECTED": "#38a169",
    "CONNECTING": "#ecc94b",
    "RECONNECTING": "#ed8936",
    "DISCONNECTED": "#e53e3e",
    "FAILED": "#9b2c2c",
    "POLLING": "#a0aec0",
}
OUTCOME_COLORS = {
    "detected": "#38a169",
    "late": "#ecc94b",
    "missed": "#e53e3e",
    "duplicates": "#805ad5",
    "phantoms": "#1a202c",
}
DELIVERED = ("detected", "late", "duplicate")
#: what the resource figure says on the virtual clock (the report says the same)
VIRTUAL_RESOURCES = "CPU and memory not measured (virtual clock)."
_FAULT = "#feb2b2"
_FALLBACK = "#805ad5"


def _fig(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig


def _style(ax: object) -> None:
    ax.spines[["top", "right"]].set_visible(False)  # type: ignore[attr-defined]
    ax.grid(True, alpha=0.25, linewidth=0.6)  # type: ignore[attr-defined]


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#4a5568")
    return fig


def to_png(fig: Figure, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (``IPython.display.Image(to_png(fig))`` in a notebook)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def to_data_uri(fig: Figure, *, dpi: int = 110) -> str:
    """The figure as a ``data:image/png;base64,...`` URI for an <img> tag."""
    return "data:image/png;base64," + base64.b64encode(to_png(fig, dpi=dpi)).decode("ascii")


def _latencies(sc: ScenarioData) -> pd.Series:
    """Every delivered trade's latency, 0 included (the summary's quantiles count them)."""
    df = sc.outcomes
    if df is None or df.empty:
        return pd.Series(dtype="float64")
    return df.loc[df["outcome"].isin(DELIVERED), "latency_s"].astype("float64").dropna()


#: where a log axis draws a latency of 0 s (virtual time: a trade delivered in the instant
#: its block became visible), unless a measured latency lies below it
ZERO_FLOOR_S = 1e-3


def zero_floor(latencies: Sequence[float] | pd.Series | np.ndarray) -> float:
    """The x (or y) a latency of 0 s is drawn at on a log axis: 1 ms, or a decade below the
    smallest positive latency when that is smaller."""
    xs = np.asarray(latencies, dtype="float64")
    pos = xs[xs > 0]
    smallest = float(pos.min()) if pos.size else ZERO_FLOOR_S
    return min(ZERO_FLOOR_S, smallest / 10.0)


def _zero_note(n_zero: int, n: int, floor: float) -> str:
    return (f"{n_zero:,} of {n:,} delivered trades at 0 s (no time passed between the "
            f"block and the delivery), drawn at {floor:g} s")


def latency_ecdf(run: Run) -> Figure:
    """Share of trades detected within x seconds, per mode (log x)."""
    fig = _fig(8, 4.2)
    by_mode: dict[str, list[pd.Series]] = {}
    for sc in run.scenarios:
        if sc.ok:
            by_mode.setdefault(sc.mode, []).append(_latencies(sc))
    pooled = {m: pd.concat(v) for m, v in by_mode.items() if v and not pd.concat(v).empty}
    if not pooled:
        return _empty(fig, "No delivered trades with a latency in this run")
    ax = fig.add_subplot()
    # a latency of 0 s has no place on a log axis: left out, the curve and its p95 stood
    # on the few trades that waited (17 of 831 on the virtual clock: "p95 3.04 s" beside
    # a summary p95 of 0 s); it is drawn at a floor, and the figure says so
    floor = zero_floor(pd.concat(list(pooled.values())))
    for mode, lat in sorted(pooled.items()):
        x = np.sort(lat.to_numpy())
        y = np.arange(1, len(x) + 1) / len(x)
        n_zero = int((x <= 0).sum())
        zeros = f"\n{_zero_note(n_zero, len(x), floor)}" if n_zero else ""
        ax.step(np.maximum(x, floor), y, where="post", color=MODE_COLORS.get(mode, "#718096"),
                linewidth=2, label=f"{mode}, every scenario, faults included (n={len(x):,}, "
                f"p95 {shown(float(lat.quantile(0.95)))} s){zeros}")
    ax.set_xscale("log")
    ax.axvline(1.0, color="#2d3748", linestyle="--", linewidth=1)
    ax.text(1.0, 0.02, " 1 s", color="#2d3748", fontsize=9)
    windows = [metric_value(s.summary, "actionable_window_s") for s in run.scenarios]
    window = next((w for w in windows if w), None)
    if window:
        ax.axvline(window, color="#c53030", linestyle=":", linewidth=1)
        ax.text(window, 0.5, f" actionable\n {window:g} s", color="#c53030", fontsize=9)
    ax.set_xlabel("detection latency (simulated seconds, log scale)")
    ax.set_ylabel("share of delivered trades")
    ax.set_ylim(0, 1.02)
    # one column: two labels side by side were wider than the figure, and the p95 of the
    # second was cut off
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1, fontsize=9,
              frameon=False)
    _style(ax)
    return fig


def fault_spans(faults: list[Any], measured_s: float
                ) -> tuple[list[tuple[float, float, str]], int]:
    """(start, stop, name) of the faults that start inside the measured window, stops
    clipped to it, and how many started after it (not drawn: the report says so). An
    instant fault (``ws_drop``: stop = start, or no stop) gets a sliver of 1/200 of the
    window, so its shading shows where the trades it delayed are."""
    spans: list[tuple[float, float, str]] = []
    outside = 0
    for f in faults:
        if not isinstance(f, dict) or f.get("start_s") is None:
            continue
        start = float(f["start_s"])
        if start >= measured_s:
            outside += 1
            continue
        stop = f.get("stop_s")
        sliver = start + measured_s / 200
        stop_f = max(float(stop), sliver) if stop is not None else sliver
        spans.append((start, min(stop_f, measured_s), str(f.get("name", "fault"))))
    return spans, outside


def label_rows(spans: list[tuple[float, float, str]], end: float, *, chars: int = 110,
               rows: int = 3) -> list[tuple[float, int, str]]:
    """Where each fault's label goes so that no two overlap: (x, row, text); a label that
    finds no free row within ``rows`` is left out (its shading stays). ``chars`` is how
    many label characters the axis holds across."""
    width = max(end, 1e-9) / chars
    free = [float("-inf")] * rows
    out: list[tuple[float, int, str]] = []
    for start, _stop, name in sorted(spans):
        need = (len(name) + 1) * width
        row = next((r for r in range(rows) if free[r] <= start), None)
        if row is None:
            out.append((start, 0, ""))
            continue
        free[row] = start + need
        out.append((start, row, name))
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    placed: list[tuple[float, int, str]] = [(0.0, 0, "")] * len(spans)
    for i, item in zip(order, out, strict=True):
        placed[i] = item
    return placed


def latency_timeline(sc: ScenarioData) -> Figure:
    """Latency of each trade over time, fault windows shaded, connection state below."""
    fig = _fig(8, 4.4)
    df = sc.outcomes
    t0 = sc.t0_ns
    if df is None or df.empty or t0 is None:
        return _empty(fig, f"{sc.name}: no outcomes to plot")
    duration = float(sc.summary.get("sim_duration_s") or 0.0)
    title = f"{sc.name} ({sc.mode})"
    if "seed" in df.columns and df["seed"].nunique() > 1:
        # seeds pooled: the scenario's histories and ``faults`` are its first seed's, its
        # ``sim_duration_s`` the seeds' sum. Drawn whole, every seed's trades stood over
        # the first seed's fault windows and the time axis ran to the sum, the feed shown
        # "disconnected" after the first seed's run ended. One seed's run is drawn.
        seeds = sc.summary.get("seeds")
        first = seeds[0] if isinstance(seeds, list) and seeds else df["seed"].iloc[0]
        n_seeds = int(df["seed"].nunique())
        if not (df["seed"] == first).any():
            first = df["seed"].iloc[0]
        df = df[df["seed"] == first]
        duration /= n_seeds
        title += f", seed {first} (one of {n_seeds} seeds pooled)"
    gs = fig.add_gridspec(2, 1, height_ratios=[6, 1])
    ax = fig.add_subplot(gs[0])
    band = fig.add_subplot(gs[1], sharex=ax)
    t = sim_seconds(df["visible_t_ns"].astype("float64"), t0, sc.speed)
    lat = df["latency_s"].astype("float64")
    end = float(max(float(t.max()), duration))
    raw_faults = sc.summary.get("faults") if isinstance(sc.summary.get("faults"), list) else []
    measured = float(duration or end)
    faults, outside = fault_spans(raw_faults or [], measured)
    for (start, stop, _name), (x, row, label) in zip(
            faults, label_rows(faults, end), strict=True):
        for a in (ax, band):
            a.axvspan(start, stop, color=_FAULT, alpha=0.45, linewidth=0)
        if label:
            ax.text(x, 0.02 + 0.075 * row, f" {label}", fontsize=8, color="#9b2c2c",
                    transform=ax.get_xaxis_transform(), va="bottom")
    if outside:
        ax.text(1.0, -0.02, f"{outside} fault start(s) after the measured window "
                f"({measured:.0f} s) not drawn", fontsize=7, color="#718096", ha="right",
                va="top", transform=ax.transAxes)
    legend = []
    # a trade delivered at 0 s (virtual time) is drawn at a floor of the log axis, not
    # left out: left out, a run of 585 trades showed the 2 that waited
    delivered = df["outcome"].isin(DELIVERED) & lat.notna()
    floor = zero_floor(lat[delivered])
    n_zero = int((delivered & (lat <= 0)).sum())
    for outcome, color, marker in (("detected", "#38a169", "o"), ("late", "#d69e2e", "o"),
                                   ("duplicate", "#805ad5", "D")):
        m = (df["outcome"] == outcome) & lat.notna()
        if m.any():
            ax.scatter(t[m], lat[m].clip(lower=floor), s=14, color=color, marker=marker,
                       label=outcome, alpha=0.8, linewidths=0)
    missed = df["outcome"] == "missed"
    if missed.any():
        ax.scatter(t[missed], np.full(int(missed.sum()), 0.97), marker="x", s=40,
                   color="#e53e3e", transform=ax.get_xaxis_transform(), label="missed",
                   clip_on=False)
    window = metric_value(sc.summary, "actionable_window_s")
    if window:
        ax.axhline(window, color="#c53030", linestyle=":", linewidth=1,
                   label=f"actionable {window:g} s")
    if delivered.any():
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter(""))
    if n_zero:
        ax.text(0.0, -0.02, _zero_note(n_zero, int(delivered.sum()), floor), fontsize=7,
                color="#718096", ha="left", va="top", transform=ax.transAxes)
        # the floor's row of points a quarter up the axis, clear of the fault labels
        top = float(np.log10(ax.get_ylim()[1]))
        ax.set_ylim(bottom=10 ** (np.log10(floor) - (top - np.log10(floor)) / 3))
    ax.set_ylabel("latency (s)")
    ax.set_title(title, fontsize=11, loc="left")
    if ax.get_legend_handles_labels()[0]:  # none when nothing is plotted (no trades)
        ax.legend(loc="lower right", fontsize=8, frameon=False, ncol=5,
                  bbox_to_anchor=(1.0, 1.0))
    _style(ax)
    ax.tick_params(labelbottom=False)
    states = state_intervals(sc, end)
    for start, stop, state in states:
        band.axvspan(start, stop, ymin=0.5, ymax=1.0, color=STATE_COLORS.get(state, "#cbd5e0"),
                     linewidth=0)
    for start, stop in fallback_intervals(sc, end):
        band.axvspan(start, stop, ymin=0.0, ymax=0.45, color=_FALLBACK, linewidth=0)
    seen = sorted({s for _, _, s in states})
    legend = [Patch(color=STATE_COLORS.get(s, "#cbd5e0"), label=s.lower()) for s in seen]
    if fallback_intervals(sc, end):
        legend.append(Patch(color=_FALLBACK, label="fallback polling"))
    if faults:
        legend.append(Patch(color=_FAULT, label="fault"))
    if legend:
        band.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.9), ncol=6,
                    fontsize=8, frameon=False)
    band.set_yticks([])
    band.set_ylabel("feed", rotation=0, ha="right", va="center", fontsize=9)
    band.set_xlabel("simulated seconds since the first block")
    band.set_xlim(0, end if end > 0 else 1)
    return fig


def _calm(scs: Sequence[ScenarioData]) -> list[ScenarioData]:
    return [s for s in scs if not s.summary.get("faults")] or list(scs)


def api_calls(run: Run, *, rate_limit_per_hour: float = 10_800.0,
              daily_limit_per_hour: float | None = 100_000 / 24) -> Figure:
    """Calls per hour per mode by kind, and explorer calls vs wallets with the limits."""
    fig = _fig(9, 4.2)
    modes = sorted({s.mode for s in run.scenarios if s.ok})
    if not modes:
        return _empty(fig, "No usable scenario")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.3])
    kinds = ("explorer", "rpc_http", "rpc_ws")
    kind_colors = {"explorer": "#d9822b", "rpc_http": "#4a5568", "rpc_ws": "#2b6cb0"}
    x = np.arange(len(modes))
    width = 0.27
    for i, kind in enumerate(kinds):
        vals = []
        for mode in modes:
            scs = _calm([s for s in run.scenarios if s.mode == mode and s.ok])
            per_h = []
            for s in scs:
                calls = s.summary.get("api_calls")
                hours = float(s.summary.get("sim_duration_s") or 0) / 3600
                if isinstance(calls, dict) and hours > 0:
                    per_h.append(float(calls.get(kind) or 0) / hours)
            vals.append(sum(per_h) / len(per_h) if per_h else 0.0)
        ax1.bar(x + (i - 1) * width, vals, width, label=kind, color=kind_colors[kind])
    ax1.set_xticks(x, modes)
    ax1.set_ylabel("calls per hour (fault-free runs)")
    ax1.set_title("API calls per hour", fontsize=11, loc="left")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8, frameon=False)
    _style(ax1)

    grid = np.logspace(0, 3, 50)
    for mode in modes:
        scs = _calm([s for s in run.scenarios if s.mode == mode and s.ok])
        pts = [(float(s.summary.get("wallets") or 0), v) for s in scs
               if (v := metric_value(s.summary, "explorer_calls_per_hour")) is not None]
        pts = [(w, v) for w, v in pts if w > 0]
        if not pts:
            continue
        color = MODE_COLORS.get(mode, "#718096")
        ax2.scatter([w for w, _ in pts], [max(v, 0.1) for _, v in pts], color=color, zorder=3)
        fit = explorer_usage(mode, pts)
        ax2.plot(grid, np.maximum([fit.at(w) for w in grid], 0.1), color=color,
                 label=f"{mode} ({shown(fit.per_wallet)}/h per wallet)")
    ax2.axhline(rate_limit_per_hour, color="#c53030", linestyle="--", linewidth=1)
    ax2.text(1.1, rate_limit_per_hour * 1.15,
             f"{rate_limit_per_hour / 3600:g}/s rate limit = {rate_limit_per_hour:,.0f}/h",
             fontsize=8, color="#c53030")
    if daily_limit_per_hour:
        ax2.axhline(daily_limit_per_hour, color="#9b2c2c", linestyle=":", linewidth=1)
        ax2.text(1.1, daily_limit_per_hour * 0.6,
                 f"{daily_limit_per_hour * 24:,.0f}/day = {daily_limit_per_hour:,.0f}/h",
                 fontsize=8, color="#9b2c2c")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("wallets watched (measured points, fitted line)")
    ax2.set_ylabel("explorer calls per hour")
    ax2.set_title("Explorer calls as wallets grow", fontsize=11, loc="left")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8, frameon=False, loc="lower right")
    _style(ax2)
    return fig


def outcomes(run: Run) -> Figure:
    """Per scenario: share of trades detected / late / missed, plus duplicates/phantoms."""
    scs = [s for s in run.scenarios if s.ok]
    fig = _fig(8, max(2.2, 0.42 * len(scs) + 1.3))
    if not scs:
        return _empty(fig, "No usable scenario")
    ax = fig.add_subplot()
    names = [s.name for s in scs][::-1]
    rows = scs[::-1]
    left = np.zeros(len(rows))
    for key in ("detected", "late", "missed", "duplicates", "phantoms"):
        vals = []
        for s in rows:
            trades = float(s.summary.get("trades") or 0)
            vals.append(100.0 * float(s.summary.get(key) or 0) / trades if trades else 0.0)
        ax.barh(names, vals, left=left, color=OUTCOME_COLORS[key], label=key, height=0.6)
        left += np.array(vals)
    for i, s in enumerate(rows):
        bad = [f"{s.summary.get(k) or 0} {k}" for k in ("late", "missed", "duplicates",
                                                          "phantoms") if s.summary.get(k)]
        # a scenario with no trade in its truth judged nothing: it is not "clean"
        none = not float(s.summary.get("trades") or 0)
        label = ", ".join(bad) if bad else ("no trades: nothing judged" if none else "clean")
        if bad and none:
            label = f"no trades; {label}"
        ax.text(min(left[i], 100) + 1, i, label, va="center", fontsize=8, color="#2d3748")
    ax.set_xlim(0, 135)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("% of trades in the truth")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(rows) < 4 else -0.12),
              ncol=5, fontsize=8, frameon=False)
    _style(ax)
    return fig


def resources(run: Run) -> Figure:
    """CPU seconds per simulated hour and peak RSS per scenario, coloured by mode. On the
    virtual clock (simulator and monitor in one process, computing costs no time) they are
    not the monitor's: the figure says so instead of drawing them."""
    scs = [s for s in run.scenarios if s.ok]
    fig = _fig(8, max(2.2, 0.42 * len(scs) + 1.2))
    if run_clock(run) == VIRTUAL:
        return _empty(fig, VIRTUAL_RESOURCES)
    if not scs:
        return _empty(fig, "No usable scenario")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    names = [s.name for s in scs][::-1]
    colors = [MODE_COLORS.get(s.mode, "#718096") for s in scs][::-1]
    # a scenario whose CPU or memory was not measured is said so, not drawn as 0
    cpu = [metric_value(s.summary, "cpu_s_per_hour") for s in scs][::-1]
    rss = [metric_value(s.summary, "rss_peak_mb") for s in scs][::-1]
    ax1.barh(names, [v or 0.0 for v in cpu], color=colors, height=0.6)
    ax1.set_xlabel("CPU seconds per simulated hour")
    ax2.barh(names, [v or 0.0 for v in rss], color=colors, height=0.6)
    ax2.set_xlabel("peak RSS (MB)")
    for ax, vals in ((ax1, cpu), (ax2, rss)):
        for i, v in enumerate(vals):
            if v is None:
                ax.text(0, i, " not measured", va="center", fontsize=8, color="#718096")
        _style(ax)
    fig.legend(handles=[Patch(color=c, label=m) for m, c in MODE_COLORS.items()
                        if any(s.mode == m for s in scs)], fontsize=8, frameon=False,
               loc="outside lower center", ncol=3)
    return fig
