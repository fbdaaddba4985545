"""The report's figures and tables against the run's own files: a latency of 0 s (every
trade of a virtual-time run that waited for nothing) is a measured latency, and a scenario
pooled over seeds is many runs, each on its own clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from report_fixtures import DURATION_S, T0_NS, point_latencies

from reports import figures
from reports.criteria import load_criteria
from reports.load import all_outcomes, load_run
from reports.render import build_report, render_report

MakeRun = Callable[..., Path]


def _zero_latency_run(make_run: MakeRun) -> Path:
    """The default run with every websocket trade delivered at 0 s but the late one of
    ws_drop (8 s) and five of ws_healthy (2 s), as a virtual-time run gives them."""
    run = make_run()
    for name in ("ws_healthy", "ws_drop", "ws_10w"):
        path = run / name / "outcomes.parquet"
        df = pd.read_parquet(path)
        delivered = df["latency_s"].notna() & (df["outcome"] != "late")
        df.loc[delivered, "latency_s"] = 0.0
        if name == "ws_healthy":
            df.loc[df.index[:5], "latency_s"] = 2.0
        df.to_parquet(path, index=False)
        # and its summary, as the analysis writes it of that table
        summary = json.loads((run / name / "summary.json").read_text(encoding="utf-8"))
        summary.update(point_latencies(df))
        (run / name / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run


def test_the_latency_ecdf_counts_the_trades_delivered_at_zero_seconds(
        make_run: MakeRun) -> None:
    run = load_run(_zero_latency_run(make_run))
    ws = pd.concat([sc.outcomes for sc in run.scenarios if sc.mode == "websocket"])
    delivered = ws.loc[ws["outcome"].isin(["detected", "late", "duplicate"]), "latency_s"]
    fig = figures.latency_ecdf(run)
    label = next(t.get_text() for t in fig.axes[0].get_legend().get_texts()
                 if t.get_text().startswith("websocket"))
    # before: n=6, p95 7.7 s (only the trades that waited), beside a p95 of 0 s
    assert f"n={len(delivered):,}," in label
    assert f"p95 {float(delivered.quantile(0.95)):.3g} s" in label
    assert f"{int((delivered == 0).sum()):,} of {len(delivered):,} delivered trades at 0 s" \
        in label
    curve = next(line for line in fig.axes[0].get_lines()
                 if line.get_color() == figures.MODE_COLORS["websocket"])
    assert len(curve.get_xdata()) == len(delivered)
    assert min(curve.get_xdata()) > 0  # on the log axis, at its floor


def test_the_timeline_draws_every_delivered_trade_and_says_which_are_at_zero(
        make_run: MakeRun) -> None:
    run = load_run(_zero_latency_run(make_run))
    sc = run.scenario("ws_drop")
    delivered = int(sc.outcomes["latency_s"].notna().sum())
    fig = figures.latency_timeline(sc)
    drawn = sum(len(c.get_offsets()) for c in fig.axes[0].collections
                if c.get_label() in ("detected", "late", "duplicate"))
    assert drawn == delivered  # before: 1 of 599 (the late one)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(f"{delivered - 1:,} of {delivered:,} delivered trades at 0 s" in t
               for t in texts)


# --- a scenario pooled over seeds ------------------------------------------------------------

SEED2_OFFSET_NS = 1_000 * 10**9  # the second seed ran 1,000 s after the first (real clock)


def _pooled_run(make_run: MakeRun) -> Path:
    """ws_drop pooled over seeds 1 and 2 as experiments.seeds.pool writes it: the outcomes
    of both with a ``seed`` column, the first seed's histories and faults, the summed
    simulated time, each seed's files under ``seeds/<seed>/``."""
    run = make_run()
    sdir = run / "ws_drop"
    first = pd.read_parquet(sdir / "outcomes.parquet")
    second = first.copy()
    second["visible_t_ns"] += SEED2_OFFSET_NS
    second["delivered_t_ns"] += SEED2_OFFSET_NS
    pooled = pd.concat([first.assign(seed=1), second.assign(seed=2)], ignore_index=True)
    pooled.insert(0, "seed", pooled.pop("seed"))
    pooled.to_parquet(sdir / "outcomes.parquet", index=False)
    summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    for key in ("trades", "detected", "late", "missed", "sim_duration_s"):
        summary[key] *= 2
    summary["seeds"] = [1, 2]
    (sdir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    top = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    top["scenarios"] = [summary if s["scenario"] == "ws_drop" else s for s in top["scenarios"]]
    (run / "summary.json").write_text(json.dumps(top), encoding="utf-8")
    for seed, offset in ((1, 0), (2, SEED2_OFFSET_NS)):
        seed_dir = sdir / "seeds" / str(seed)
        seed_dir.mkdir(parents=True)
        rows = [{"t_ns": T0_NS + offset - 5000, "event": "request", "api": "rpc_ws"},
                {"t_ns": T0_NS + offset - 1000, "event": "start", "speed": 1.0,
                 "t0_ns": T0_NS + offset}]
        (seed_dir / "sim_history.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run


def test_each_seeds_trades_are_timed_from_their_own_runs_first_block(
        make_run: MakeRun) -> None:
    run = load_run(_pooled_run(make_run))
    df = all_outcomes(run)
    drop = df[df["scenario"] == "ws_drop"]
    for seed in (1, 2):
        t = drop.loc[drop["seed"] == seed, "t_s"]
        # before: seed 2's trades at 1,000-1,600 s of a 600-s run
        assert t.min() >= 0 and t.max() <= DURATION_S
    missed = drop[drop["outcome"] == "missed"].sort_values("seed")
    assert list(missed["t_s"].round(1)) == [211.5, 211.5]


def test_the_worst_trades_say_which_seed_each_came_from(make_run: MakeRun) -> None:
    run = load_run(_pooled_run(make_run))
    html = render_report(build_report(run, load_criteria(), bench_dir=Path("/nonexistent")))
    missed = html.split('id="worst"')[1].split("<h3>Slowest")[0]
    assert missed.count("seed 1</span>") == 1 and missed.count("seed 2</span>") == 1
    assert missed.count(">212<") == 2 and ">1,212<" not in missed


def test_the_timeline_of_pooled_seeds_draws_one_seeds_run(make_run: MakeRun) -> None:
    run = load_run(_pooled_run(make_run))
    sc = run.scenario("ws_drop")
    fig = figures.latency_timeline(sc)
    ax, band = fig.axes[0], fig.axes[1]
    assert band.get_xlim() == (0.0, DURATION_S)  # before: 0 .. 1,200 (the seeds' sum)
    drawn = sum(len(c.get_offsets()) for c in ax.collections
                if c.get_label() in ("detected", "late", "duplicate"))
    assert drawn == int((sc.outcomes["seed"] == 1).sum()) - 1  # every seed-1 trade but the
    assert "seed 1" in ax.get_title(loc="left")                # missed one
    # the feed band ends with the seed's run, not "disconnected" to the seeds' sum
    assert all(p.get_x() + p.get_width() <= DURATION_S + 1e-6 for p in band.patches)


# --- a rule of the criteria that no scenario of the run was for -------------------------------

def test_a_run_without_a_fault_scenario_is_not_go_on_the_calm_checks_alone(
        make_run: MakeRun) -> None:
    from report_fixtures import SCENARIOS

    from reports.cli import main, verdict_document
    from reports.rollout import plan_rollout
    from reports.verdict import Verdict, evaluate

    run_dir = make_run(scenarios=[s for s in SCENARIOS if s["name"] == "ws_healthy"])
    run = load_run(run_dir)
    result = evaluate(run, load_criteria())
    # before: GO, score 1.000, on one calm scenario: no fault ever injected
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.score is None
    assert any("latency p95 while a fault is active" in r and "with faults" in r
               for r in result.reasons), result.reasons
    from reports.verdict import NO_SCENARIO

    gate = next(g for g in verdict_document(result, run)["gates"]
                if g["scenario"] == NO_SCENARIO)
    assert gate["status"] == "unknown" and gate["expr"] == "latency_p95_in_fault_s < 5s"
    plan = plan_rollout(run, result.verdict, load_criteria(), result.checks)
    assert "run the default matrix" in plan.recommendation
    assert main(["build", str(run_dir), "--exit-code"]) == 4


def test_a_run_of_fault_scenarios_only_is_not_go_without_a_calm_latency(
        make_run: MakeRun) -> None:
    from report_fixtures import SCENARIOS

    from reports.verdict import Verdict, evaluate

    run = load_run(make_run(scenarios=[s for s in SCENARIOS if s["name"] == "ws_drop"]))
    result = evaluate(run, load_criteria())
    assert result.verdict is Verdict.INCONCLUSIVE  # before: GO on the fault checks alone
    calm = [r for r in result.reasons if "without faults" in r]
    assert any("latency_p95_s < 1s" in r for r in calm), result.reasons


def test_a_polling_scenario_shows_no_feed_uptime_rather_than_zero(make_run: MakeRun) -> None:
    """A polling scenario has no real-time feed; its row said 'uptime 0 %' (down the whole
    run) where the websocket rows say 100 %."""
    from reports.render import SCENARIO_COLUMNS, _scenario_rows

    rows = {r["name"]: r for r in _scenario_rows(load_run(make_run()))}
    col = [m for _, m, _k in SCENARIO_COLUMNS]
    polling = [r for r in rows.values() if r["mode"] == "polling"]
    websocket = [r for r in rows.values() if r["mode"] == "websocket"]
    assert polling and websocket
    for r in polling:
        assert r["cells"][col.index("uptime")] == "-"
        assert r["cells"][col.index("reconnects")] == "-"
        assert r["cells"][col.index("trades")] != "-"  # the rest is measured
    assert all(r["cells"][col.index("uptime")].endswith("%") for r in websocket)


def test_an_instant_fault_is_shaded_not_drawn_zero_wide() -> None:
    """ws_drop is recorded with stop = start: the timeline drew no shading for it, while
    the trades after it counted as in a fault."""
    spans, outside = figures.fault_spans(
        [{"name": "ws_drop", "start_s": 50.0, "stop_s": 50.0},
         {"name": "ws_stall", "start_s": 100.0, "stop_s": 160.0}], 200.0)
    assert outside == 0
    assert spans[0][0] == 50.0 and spans[0][1] == 51.0  # 1/200 of the window
    assert spans[1] == (100.0, 160.0, "ws_stall")  # a real span is kept as it is


def test_a_cost_section_without_a_usable_window_says_why(make_run: MakeRun) -> None:
    """After make experiment-quick the cost section said 'no usable scenario reported API
    calls', although every scenario had: their windows were too short for a call rate."""
    run = make_run()
    names = [s.name for s in load_run(run).scenarios]
    short = make_run(run_id="short", overrides={n: {"sim_duration_s": 30.0} for n in names})
    html = render_report(build_report(load_run(short), load_criteria(),
                                      bench_dir=Path("/nonexistent")))
    assert "no scenario was measured long enough to give a call rate" in html
    assert "no usable scenario reported API calls" not in html
