"""Reconcile against awkward but real situations: a pilot killed mid-write and resumed,
a wall clock stepped while it ran, a pilot that watched other exchanges, a reorg at the
edge of the judged range. A fake but honest node on loopback serves the chain."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from exp_helpers import send_json

from experiments.reconcile import ReconcileOptions, reconcile
from monitor.pilot import PilotStore
from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_V2, address_topic, trade_id

WALLET = "0x" + "ab" * 20
T0 = 1_700_000_000  # block 0's timestamp; block n is at T0 + 2 n
S = 1_000_000_000


def ts(n: int) -> int:
    return T0 + 2 * n


def chain_log(n: int, *, tx: int, exchange: str = DEFAULT_EXCHANGES[0],
              block_hash: str | None = None) -> dict[str, Any]:
    return {"address": exchange.lower(), "blockNumber": hex(n),
            "blockHash": block_hash or "0x" + f"{n:064x}", "logIndex": "0x0",
            "transactionHash": "0x" + f"{tx:064x}", "blockTimestamp": hex(ts(n)),
            "topics": [ORDER_FILLED_V2, "0x" + "00" * 32, address_topic(WALLET)],
            "removed": False}


def tid_of(lg: dict[str, Any]) -> str:
    return trade_id(lg["transactionHash"], int(lg["logIndex"], 16))


class Node:
    """An honest JSON-RPC node: ``head``, and logs filtered as a node filters them (by
    address, topic0, maker topic and block range)."""

    def __init__(self, head: int, logs: list[dict[str, Any]]) -> None:
        self.head = head
        self.logs = logs
        self.chain_id = 137
        self.requests: list[dict[str, Any]] = []
        #: error objects the next eth_getLogs calls answer, one each
        self.log_errors: list[dict[str, Any]] = []
        #: an error object for an eth_getLogs request, or None to answer it
        self.refuse_logs: Callable[[dict[str, Any]], dict[str, Any] | None] = \
            lambda _req: None

    def answer(self, req: dict[str, Any]) -> Any:
        self.requests.append(req)
        method, params = req["method"], req["params"]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            return {"number": hex(n), "timestamp": hex(ts(n))} if n <= self.head else None
        if method == "eth_getLogs":
            f = params[0]
            lo, hi = int(f["fromBlock"], 16), int(f["toBlock"], 16)
            addrs = {a.lower() for a in f["address"]}
            makers = set(f["topics"][2])
            return [lg for lg in self.logs if lo <= int(lg["blockNumber"], 16) <= hi
                    and lg["address"] in addrs and lg["topics"][2] in makers]
        raise AssertionError(method)


@pytest.fixture
def node() -> Iterator[tuple[Node, str]]:
    state = Node(0, [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            refused = state.refuse_logs(req) if req["method"] == "eth_getLogs" else None
            if req["method"] == "eth_getLogs" and (state.log_errors or refused):
                state.requests.append(req)
                reply: dict[str, Any] = {"error": refused or state.log_errors.pop(0)}
            else:
                reply = {"result": state.answer(req)}
            send_json(self, {"jsonrpc": "2.0", "id": req["id"], **reply})

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def make_store(tmp_path: Path, *, start: int, head: int, wall0: int,
               meta: dict[str, Any] | None = None) -> Path:
    """A pilot store of one session from ``wall0``, start block ``start``, heads up to
    ``head`` (one a block, at the block's time) and a beat 200 s after the last."""
    store = tmp_path / "pilot"
    s = PilotStore(store)
    s.set_meta("start_block", start)
    s.set_meta("wallets", [WALLET])
    for k, v in (meta or {}).items():
        s.set_meta(k, v)
    sid = s.new_session(wall0, 0)
    for n in range(start, head + 1):
        wall = ts(n) * S
        for p in ("websocket", "polling"):
            s.beat(sid, p, dt_s=2, healthy=True, fallback=False, state="CONNECTED",
                   head=n, cursor=n - 1, wall_ns=wall, mono_ns=wall - wall0)
    s.beat(sid, "websocket", dt_s=2, healthy=True, fallback=False, state="CONNECTED",
           head=head, cursor=head - 1, wall_ns=(ts(head) + 200) * S,
           mono_ns=(ts(head) + 200) * S - wall0)
    s.close()
    return store


def sight(store: Path, path: str, kind: str, lg: dict[str, Any], *, wall_ns: int,
          mono_ns: int, generation: int = 1, session: int = 1) -> None:
    """A sighting as the pilot's recorder writes it (``PilotStore.record``)."""
    from monitor.sinks import SinkEvent
    from monitor.trades import Trade

    s = PilotStore(store)
    try:
        n = int(lg["blockNumber"], 16)
        trade = None
        if kind == "trade":
            trade = Trade.__new__(Trade)
            for k, v in {"wallet": WALLET, "block_number": n,
                         "block_timestamp": int(lg["blockTimestamp"], 16)}.items():
                object.__setattr__(trade, k, v)
        ev = SinkEvent(kind, tid_of(lg), generation, "ws", lg["blockHash"], trade)
        s.record(path, ev, wall_ns=wall_ns, mono_ns=mono_ns, session=session)
    finally:
        s.close()


def outcomes(run: Path, path: str) -> dict[str, str]:
    frame = pd.read_parquet(run / f"pilot_{path}" / "outcomes.parquet")
    return dict(zip(frame["trade_id"], frame["outcome"], strict=True))


def opts(url: str, out: Path, **kw: Any) -> ReconcileOptions:
    return ReconcileOptions(rpc_url=url, out=out, finality_depth=2, wait_s=1, grace_s=0,
                            rate_per_s=1000.0, **kw)


# -- a pilot killed mid-write, then resumed on the same store --------------------------------

def test_a_history_line_torn_by_a_crash_then_resumed_is_not_a_traceback(
        node: tuple[Node, str], tmp_path: Path) -> None:
    """SIGKILL (or a full disk) mid-line leaves a torn last line; the restarted pilot
    appends its next rows after it, so the torn line is no longer the last: reconcile
    raised JsonlError (a traceback in the CLI) and no report could be made of the pilot."""
    state, url = node
    state.head = 200
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    hist = store / "websocket" / "history.jsonl"
    hist.parent.mkdir()
    hist.write_text(
        json.dumps({"t_ns": 0, "event": "pilot_session", "session": 1,
                    "wall_ns": ts(99) * S, "mono_ns": 0}) + "\n"
        + '{"t_ns": 5000, "event": "fe'  # torn by the kill
        + json.dumps({"t_ns": 10 * S, "event": "pilot_session", "session": 2,
                      "wall_ns": ts(120) * S, "mono_ns": 10 * S}) + "\n"
        + json.dumps({"t_ns": 11 * S, "event": "feed", "healthy": True}) + "\n")
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    rows = [json.loads(x) for x in
            (run / "pilot_websocket" / "monitor_history.jsonl").read_text().splitlines()]
    # the second session's row, appended on the torn line, is kept: its clock is used
    assert [r["event"] for r in rows] == ["pilot_session", "pilot_session", "feed"]
    assert rows[-1]["t_ns"] == ts(120) * S + S
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pilot"]["history_lines_torn"] == {"websocket": 1, "polling": 0}


# -- the wall clock stepped while the pilot ran -----------------------------------------------

def test_a_wall_clock_stepped_back_does_not_reorder_a_trade_and_its_retraction(
        node: tuple[Node, str], tmp_path: Path) -> None:
    """Sightings were ordered and timed by the wall clock alone: NTP stepping it back 5 s
    between a trade and its retraction put the retraction first, and a trade the monitor
    took back (its block reorged away) was judged a phantom (NO-GO) instead of retracted.
    Within a session the monotonic clock orders them, as it does the histories."""
    state, url = node
    wall0 = ts(99) * S
    kept, gone = chain_log(110, tx=1), chain_log(111, tx=2, block_hash="0x" + "ee" * 32)
    state.head, state.logs = 200, [kept]  # block 111 was replaced: its trade is gone
    store = make_store(tmp_path, start=100, head=150, wall0=wall0)
    # timeline (true time): block 110 at ts(110), seen 1 s later; block 111 at ts(111),
    # seen 1 s later; its retraction 1 s after that, but the wall clock was stepped 5 s
    # back in between (the monotonic clock was not)
    for lg, n in ((kept, 110), (gone, 111)):
        sight(store, "websocket", "trade", lg, wall_ns=(ts(n) + 1) * S,
              mono_ns=(ts(n) + 1) * S - wall0)
    sight(store, "websocket", "retraction", gone, wall_ns=(ts(111) + 2 - 5) * S,
          mono_ns=(ts(111) + 2) * S - wall0)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(kept): "detected", tid_of(gone): "retracted"}


# -- a pilot that watched other exchanges than the defaults ------------------------------------

OTHER_EXCHANGE = "0x" + "e3" * 20  # say ExchangeV3, added with --exchanges


def test_the_truth_covers_the_exchanges_the_pilot_watched(node: tuple[Node, str],
                                                          tmp_path: Path) -> None:
    """The pilot ran with ``exchanges`` (a setting: V3 added, or V1 dropped) but reconcile
    asked the chain for the default exchanges' logs: every trade on the other exchange
    that both paths delivered was judged a phantom (NO-GO), and one they missed was not
    counted at all. The store now keeps the exchanges watched; the truth asks for them."""
    import asyncio

    from monitor.config import Settings
    from monitor.pilot import Pilot

    state, url = node
    wall0 = ts(99) * S
    store = tmp_path / "pilot"
    settings = Settings(websocket_url="ws://127.0.0.1:9/", rpc_url=url,
                        explorer_url="http://127.0.0.1:9/api", wallets=[WALLET],
                        start_block=100, exchanges=[OTHER_EXCHANGE, *DEFAULT_EXCHANGES])

    async def start_and_stop() -> None:  # endpoints down: the store is all that matters
        pilot = Pilot(settings, store)
        await pilot.start()
        await pilot.stop()

    asyncio.run(start_and_stop())
    make_store(tmp_path, start=100, head=150, wall0=wall0)  # the same store: beats
    seen, missed = (chain_log(110, tx=1, exchange=OTHER_EXCHANGE),
                    chain_log(120, tx=2, exchange=OTHER_EXCHANGE))
    state.head, state.logs = 200, [seen, missed]
    for p in ("websocket", "polling"):
        sight(store, p, "trade", seen, wall_ns=(ts(110) + 1) * S, mono_ns=(ts(110) + 1) * S,
              session=0)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    assert outcomes(run, "websocket") == {tid_of(seen): "detected", tid_of(missed): "missed"}


# -- this machine's clock behind the chain's ----------------------------------------------------

def test_a_clock_proven_behind_the_chain_leaves_latency_unjudged(node: tuple[Node, str],
                                                                 tmp_path: Path) -> None:
    """Latency is this machine's wall clock minus the block timestamp. With the clock 10 s
    behind, every trade was 'seen' before its block existed; the checker clamps that to
    0 s, so both paths showed latency 0 and no late trade: a latency gate passed on a
    broken clock. A delivery more than the tolerance before its block proves the clock
    behind: latency, detected and late are then not measured (the verdict cannot pass
    them), missed and duplicates still are, and the manifest says why."""
    state, url = node
    wall0 = ts(99) * S
    trades = [chain_log(n, tx=n) for n in (110, 120, 130)]
    state.head, state.logs = 200, trades
    store = make_store(tmp_path, start=100, head=150, wall0=wall0)
    behind = 10 * S
    for lg in trades:
        n = int(lg["blockNumber"], 16)
        for p, after in (("websocket", S // 2), ("polling", 8 * S)):
            wall = ts(n) * S + after - behind
            sight(store, p, "trade", lg, wall_ns=wall, mono_ns=wall - wall0)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    for p in ("websocket", "polling"):
        summary = json.loads((run / f"pilot_{p}" / "summary.json").read_text())
        assert summary["missed"] == 0 and summary["trades"] == 3
        assert summary["latency_p95_s"] is None and summary["latency_p50_s"] is None
        assert summary["late"] is None and summary["detected"] is None
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pilot"]["clock_behind_s"] == pytest.approx(9.5)


def test_a_clock_in_step_with_the_chain_keeps_latency(node: tuple[Node, str],
                                                      tmp_path: Path) -> None:
    """The same pilot on a synced clock: latency measured, one trade late on polling."""
    state, url = node
    wall0 = ts(99) * S
    trades = [chain_log(n, tx=n) for n in (110, 120, 130)]
    state.head, state.logs = 200, trades
    store = make_store(tmp_path, start=100, head=150, wall0=wall0)
    for lg in trades:
        n = int(lg["blockNumber"], 16)
        for p, after in (("websocket", S // 2), ("polling", 8 * S)):
            sight(store, p, "trade", lg, wall_ns=ts(n) * S + after,
                  mono_ns=ts(n) * S + after - wall0)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    ws = json.loads((run / "pilot_websocket" / "summary.json").read_text())
    poll = json.loads((run / "pilot_polling" / "summary.json").read_text())
    assert ws["latency_p95_s"] == pytest.approx(0.5) and ws["detected"] == 3
    assert poll["late"] == 3 and poll["latency_p50_s"] == pytest.approx(8.0)
    assert json.loads((run / "manifest.json").read_text())["pilot"]["clock_behind_s"] is None


# -- a load-balanced node behind the one that gave the head ------------------------------------

def test_a_node_refusing_a_range_beyond_its_head_is_asked_again_whole(
        node: tuple[Node, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """geth's -32602 'block range extends beyond current head block' (the node that
    answers eth_getLogs is behind the one that answered eth_blockNumber): asked again
    later with the same range, never split down to single blocks, and the truth is whole."""
    import itertools

    import experiments.reconcile as rec_mod

    state, url = node
    trades = [chain_log(n, tx=n) for n in (110, 120, 130)]
    state.head, state.logs = 200, trades
    state.log_errors = [{"code": -32602,
                         "message": "block range extends beyond current head block"}] * 2
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    fast = rec_mod._rpc

    def rpc(*a: Any, **kw: Any) -> Any:
        client = fast(*a, **kw)
        client._retry_policy = lambda: itertools.repeat(0.01)
        return client

    monkeypatch.setattr(rec_mod, "_rpc", rpc)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    asked = [(r["params"][0]["fromBlock"], r["params"][0]["toBlock"]) for r in state.requests
             if r["method"] == "eth_getLogs"]
    assert asked == [(hex(100), hex(150))] * 3 + [(hex(151), hex(200))]  # + past the end
    assert set(outcomes(run, "websocket").values()) == {"missed"}
    assert len(outcomes(run, "websocket")) == 3


# -- the pilot process down between two sessions ---------------------------------------------

HOUR = 3600 * S


def _session(store: Path, start_wall: int, hours: float, calls: int) -> None:
    """One pilot session from ``start_wall`` (monotonic 0: the machine rebooted) for
    ``hours``, a beat a minute; each path's history: its session row, the feed healthy
    (or the explorer answering) at once, ``calls`` explorer calls spread over it."""
    s = PilotStore(store)
    sid = s.new_session(start_wall, 0)
    span = int(hours * HOUR)
    for t in range(0, span + 1, 60 * S):
        head = 100 + (start_wall + t - ts(100) * S) // (2 * S)
        for p in ("websocket", "polling"):
            s.beat(sid, p, dt_s=60 if t else 0, healthy=True, fallback=False,
                   state="CONNECTED", head=head, cursor=head - 1, wall_ns=start_wall + t,
                   mono_ns=t)
    s.close()
    for p in ("websocket", "polling"):
        hist = store / p / "history.jsonl"
        hist.parent.mkdir(exist_ok=True)
        rows = [{"t_ns": 0, "event": "pilot_session", "session": sid, "wall_ns": start_wall,
                 "mono_ns": 0}]
        if p == "websocket":
            rows.append({"t_ns": S, "event": "feed", "healthy": True})
        rows += [{"t_ns": 2 * S + i * (span - 4 * S) // calls, "event": "api_call",
                  "kind": "explorer", "ok": True} for i in range(calls)]
        with open(hist, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)


def test_time_the_pilot_process_was_down_is_neither_covered_nor_an_hour_without_calls(
        node: tuple[Node, str], tmp_path: Path) -> None:
    """Killed after an hour, started again a day later, an hour more. The checker reads
    each path's history as one run: the state before the kill (feed healthy, explorer
    answering) lasted through the day the process was down, so coverage was ~1.0 (the
    docs: down time counts as down), and explorer calls per hour were divided by the 26
    hours of the window, not the 2 the paths ran (a rate 13 times too low, passing a cost
    gate). Coverage now counts the gap as uncovered; per-hour rates are per running hour."""
    state, url = node
    state.head = 200_000
    store = tmp_path / "pilot"
    s = PilotStore(store)
    s.set_meta("start_block", 100)
    s.set_meta("wallets", [WALLET])
    s.close()
    day1 = ts(100) * S
    _session(store, day1, 1.0, 120)
    _session(store, day1 + 25 * HOUR, 1.0, 120)
    run = reconcile(store, opts(url, tmp_path / "out", chunk_blocks=100_000),
                    log=lambda _m: None)
    for p in ("websocket", "polling"):
        summary = json.loads((run / f"pilot_{p}" / "summary.json").read_text())
        assert summary["coverage"] == pytest.approx(2 / 26, abs=0.01), p
        assert summary["explorer_calls_per_hour"] == pytest.approx(120, rel=0.02), p


def test_a_monotonic_clock_that_stood_still_through_a_suspend_keeps_latency(
        node: tuple[Node, str], tmp_path: Path) -> None:
    """The machine (or VM) suspended 60 s mid-session: the monotonic clock stood still,
    the wall clock did not. A sighting's time is its wall clock (only its order within a
    session is the monotonic clock's): timed by monotonic time since the session's start
    it came 60 s 'before its block', and latency was thrown away as a clock behind."""
    state, url = node
    wall0 = ts(99) * S
    lg = chain_log(120, tx=1)
    state.head, state.logs = 200, [lg]
    store = make_store(tmp_path, start=100, head=150, wall0=wall0)
    wall = ts(120) * S + S // 2
    sight(store, "websocket", "trade", lg, wall_ns=wall, mono_ns=wall - wall0 - 60 * S)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    ws = json.loads((run / "pilot_websocket" / "summary.json").read_text())
    assert ws["latency_p50_s"] == pytest.approx(0.5) and ws["detected"] == 1


# -- --end-block past what the pilot saw -------------------------------------------------------

def test_an_end_block_past_the_pilots_last_head_is_clamped_to_it(node: tuple[Node, str],
                                                                 tmp_path: Path) -> None:
    """``--end-block`` beyond the last head the pilot saw judged blocks the pilot never
    ran through: their trades were missed by both paths (a false NO-GO). It is clamped to
    the last head, and the log says so."""
    state, url = node
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    seen, after = chain_log(110, tx=1), chain_log(170, tx=2)  # 170: after the pilot stopped
    state.head, state.logs = 300, [seen, after]
    for p in ("websocket", "polling"):
        sight(store, p, "trade", seen, wall_ns=(ts(110) + 1) * S, mono_ns=(ts(110) + 1) * S)
    said: list[str] = []
    run = reconcile(store, opts(url, tmp_path / "out", end_block=200), log=said.append)
    assert outcomes(run, "websocket") == {tid_of(seen): "detected"}
    assert outcomes(run, "polling") == {tid_of(seen): "detected"}
    assert any("past the last head the pilot saw (150)" in m for m in said)


def test_an_end_block_before_the_start_block_is_a_clear_error(node: tuple[Node, str],
                                                              tmp_path: Path) -> None:
    from experiments.reconcile import ReconcileError

    _state, url = node
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    with pytest.raises(ReconcileError, match="before the pilot's start block 100"):
        reconcile(store, opts(url, tmp_path / "out", end_block=50), log=lambda _m: None)


# -- a reorg moving a trade across the end block ------------------------------------------------

def test_a_trade_a_reorg_moved_past_the_end_block_is_not_a_phantom(node: tuple[Node, str],
                                                                  tmp_path: Path) -> None:
    """Both paths saw a trade in the end block; a reorg then moved its transaction (same
    id) one block later, past the judged range. The truth of ``start..end`` lacks it, so it
    was judged a phantom on both paths (a false NO-GO). It is now left out of the judgement."""
    state, url = node
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    old = chain_log(150, tx=1, block_hash="0x" + "ee" * 32)  # the end block, replaced
    now = chain_log(151, tx=1)                               # the same transaction, later
    kept = chain_log(120, tx=2)
    state.head, state.logs = 300, [now, kept]
    for p in ("websocket", "polling"):
        for lg in (kept, old):
            n = int(lg["blockNumber"], 16)
            sight(store, p, "trade", lg, wall_ns=(ts(n) + 1) * S, mono_ns=(ts(n) + 1) * S)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    for p in ("websocket", "polling"):
        assert outcomes(run, p) == {tid_of(kept): "detected"}


def test_a_trade_a_reorg_moved_into_the_end_block_is_not_missed(node: tuple[Node, str],
                                                               tmp_path: Path) -> None:
    """The reverse: seen just past the end block, now in it. It was judged missed by both
    paths that had seen it."""
    state, url = node
    store = make_store(tmp_path, start=100, head=150, wall0=ts(99) * S)
    old = chain_log(151, tx=1, block_hash="0x" + "ee" * 32)
    now = chain_log(150, tx=1)
    state.head, state.logs = 300, [now]
    for p in ("websocket", "polling"):
        sight(store, p, "trade", old, wall_ns=(ts(150) + 1) * S, mono_ns=(ts(150) + 1) * S)
    run = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    for p in ("websocket", "polling"):
        assert outcomes(run, p)[tid_of(now)] != "missed"
