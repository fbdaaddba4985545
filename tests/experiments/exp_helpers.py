"""Hand-made histories for checker tests: times given in simulated seconds at SPEED."""

from __future__ import annotations

import http.server
import json
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w

from experiments.checker import CheckParams
from experiments.scenario import scenario_from_dict

SPEED = 10.0
T0 = 5_000_000_000_000
WALLET = "0x" + "a1" * 20
OTHER = "0x" + "b2" * 20
END_S = 100.0


def ns(sim_s: float) -> int:
    """Machine clock (ns) at ``sim_s`` simulated seconds after T0."""
    return T0 + round(sim_s * 1e9 / SPEED)


def tid(n: int) -> str:
    return f"0x{n:064x}:{n % 7}"


def bhash(number: int, fork: str = "") -> str:
    return "0x" + f"{number:x}{fork}".rjust(64, "0").replace(" ", "0")


def params(**kw: Any) -> CheckParams:
    base: dict[str, Any] = dict(speed=SPEED, window_start_ns=ns(0), window_end_ns=ns(END_S),
                                actionable_window_s=5.0, wallets=(WALLET,), mode="websocket")
    base.update(kw)
    return CheckParams(**base)


class Sim:
    """Builds a simulator history."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = [
            {"t_ns": ns(0) - 1000, "event": "start", "speed": SPEED, "t0_ns": ns(0),
             "first_block": 100, "ts0": 1_700_000_000, "chain_id": 137, "recording": {},
             "urls": {}}]

    def block(self, sim_s: float, number: int, trades: list[str], *, maker: str = WALLET,
              fork: str = "") -> Sim:
        self.rows.append({"t_ns": ns(sim_s), "event": "block_published", "number": number,
                          "hash": bhash(number, fork), "parent_hash": bhash(number - 1),
                          "timestamp": 1_700_000_000 + number,
                          "order_filled": [[t, maker] for t in trades]})
        return self

    def fault(self, name: str, start_s: float, stop_s: float | None, fid: str = "f1") -> Sim:
        self.rows.append({"t_ns": ns(start_s), "event": "fault_start", "fault_id": fid,
                          "name": name, "target": "ws", "params": {}})
        if stop_s is not None:
            self.rows.append({"t_ns": ns(stop_s), "event": "fault_stop", "fault_id": fid,
                              "name": name, "target": "ws", "params": {}})
        return self

    def sorted(self, *, stop: bool = True) -> list[dict[str, Any]]:
        """The rows in time order, ending with the ``stop`` row a finished run writes."""
        rows = sorted(self.rows, key=lambda r: r["t_ns"])
        if stop and not any(r["event"] == "stop" for r in rows):
            rows.append({"t_ns": max(ns(END_S + 10), rows[-1]["t_ns"]), "event": "stop",
                         "head": 0})
        return rows


def trade(sim_s: float, trade_id: str, *, wallet: str = WALLET, source: str = "ws",
          block: int = 1) -> dict[str, Any]:
    tx, li = trade_id.split(":")
    return {"t_ns": ns(sim_s), "kind": "trade", "source": source,
            "trade": {"id": trade_id, "tx_hash": tx, "log_index": int(li), "wallet": wallet,
                      "block_number": block, "block_hash": bhash(block)}}


def retraction(sim_s: float, trade_id: str, block: int = 1) -> dict[str, Any]:
    return {"t_ns": ns(sim_s), "kind": "retraction", "trade_id": trade_id,
            "block_hash": bhash(block)}


def monitor(mode: str = "websocket", extra: list[dict[str, Any]] | None = None,
            ) -> list[dict[str, Any]]:
    rows = [{"t_ns": ns(0) - 500, "event": "start", "mode": mode, "wallets": 1,
             "speed": SPEED, "settings": {}}]
    rows += extra or []
    shards = {"ws0": {"ws": {"bytes_received": 1000}}, "ws1": {"ws": {"bytes_received": 234}}}
    rows.append({"t_ns": ns(END_S + 10), "event": "stop", "metrics": {"shards": shards},
                 "cpu_s": 0.5, "rss_peak_bytes": 50_000_000})
    return sorted(rows, key=lambda r: r["t_ns"])


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


THRESHOLDS = ["missed_pct < 1", "duplicates == 0", "latency_p95_s < 1"]


def make_scenario_dir(run_dir: Path, name: str = "hand_made", *, status: str = "ok") -> Path:
    sdir = run_dir / name
    sdir.mkdir(parents=True)
    scenario = scenario_from_dict({
        "name": name, "recording": "default", "sim_duration_s": 100, "speed": SPEED,
        "wallets": {"list": [WALLET]}, "thresholds": THRESHOLDS})
    (sdir / "scenario.toml").write_bytes(tomli_w.dumps(scenario.to_toml_dict()).encode())
    sim = (Sim().fault("ws_drop", 20, 20.5).block(10, 1, [tid(1)]).block(22, 2, [tid(2)])
           .block(30, 3, [tid(3)], fork="ee").block(32, 3, [], fork="ff").block(50, 4, [tid(4)]))
    write_jsonl(sdir / "sim_history.jsonl", sim.sorted())
    write_jsonl(sdir / "monitor_history.jsonl", monitor(extra=[
        {"t_ns": ns(0), "event": "feed", "healthy": True, "cause": "subscribed"}]))
    write_jsonl(sdir / "detections.jsonl", [
        trade(10.2, tid(1)), trade(24, tid(2), source="backfill"), trade(30.1, tid(3)),
        retraction(32.1, tid(3))])
    run = {"scenario": name, "description": "", "mode": "websocket", "speed": SPEED,
           "seed": 0, "sim_duration_s": 100, "actionable_window_s": 5.0,
           "thresholds": THRESHOLDS, "wallets": [WALLET], "status": status,
           "error": "simulator exited with code 1 before READY" if status != "ok" else None,
           "window_start_ns": ns(0), "window_end_ns": ns(100)}
    (sdir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return sdir


def outcome_of(outcomes: pd.DataFrame, trade_id: str) -> pd.Series:
    rows = outcomes[outcomes["trade_id"] == trade_id]
    assert len(rows) == 1, f"{trade_id} has {len(rows)} outcome rows"
    return rows.iloc[0]


def send_json(handler: http.server.BaseHTTPRequestHandler, obj: Any) -> None:
    """Answer a stub server's request with ``obj`` as a JSON body, HTTP 200."""
    body = json.dumps(obj).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
