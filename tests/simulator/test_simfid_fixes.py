"""Simulator fidelity against REFERENCE.md and geth where it is silent (geth v1.17, the
newest release): notifications held for a call not answered yet are bounded in bytes,
the error codes and texts of a filter's bounds, the block tag "earliest" in a filter.
Each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from simulator.server import Simulator, WsConn
from simulator.settings import NodeSettings, SimSettings
from simulator.source import SynthSource
from tests.simulator.node_fixtures import make_recording
from tests.simulator.test_sim_fidelity2 import TIMEOUT, _first_block, _old_logs


def _held_chars(conn: WsConn) -> int:
    """Characters of the notifications held for the connection's unanswered calls."""
    lists = {id(sub.held): sub for sub in conn.subs.values() if sub.held}
    return sum(len(sub.prefix) + len(payload) + 2
               for sub in lists.values() for _, payload in (sub.held or ()))


def test_notifications_held_for_an_unanswered_call_are_bounded_in_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: while a batch ``[eth_subscribe logs, eth_getLogs of old blocks]`` was being
    answered (old blocks rebuilt, up to a minute), the new subscription's notifications
    were held with a cap of 10,000 messages and no byte cap: ~800 KB in 0.6 s here, a
    busy block's logs at a time. Now they count with the queued ones against
    ``notify_buffer_bytes``, and past it the connection is dropped (as geth drops a
    subscriber that falls too far behind) while the call is still running."""
    cap = 64 << 10
    dropped_while_held: list[bool] = []
    abort = WsConn.abort

    def noting_abort(conn: WsConn) -> None:
        dropped_while_held.append(any(sub.held is not None for sub in conn.subs.values()))
        abort(conn)

    monkeypatch.setattr(WsConn, "abort", noting_abort)

    async def main() -> tuple[int, int, list[Any]]:
        sim = Simulator(SynthSource("default", seed=3, blocks=5000, checkpoint_every=16),
                        settings=SimSettings(history_blocks=400, window_blocks=8,
                                             node=NodeSettings(profile="geth",
                                                               notify_buffer_bytes=cap)),
                        speed=200.0)  # a block every 10 ms
        await sim.start()
        most = 0
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
                base = await _first_block(sim)
                (conn,) = sim.conns.values()
                req = _old_logs(2)
                req["params"][0].update(fromBlock=hex(base), toBlock=hex(base + 390))
                sub = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                       "params": ["logs", {}]}
                published = sim.chain.published
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal most
                    while not done.is_set():
                        most = max(most, _held_chars(conn))
                        await asyncio.sleep(0)

                sampler = asyncio.create_task(sample())
                await ws.send_str(json.dumps([sub, req]))
                kinds = []
                while True:  # a slow reader: it reads only once the batch is over
                    msg = await ws.receive(timeout=TIMEOUT)
                    kinds.append(msg.type)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                done.set()
                await sampler
                blocks = sim.chain.published - published
        finally:
            await sim.stop()
        return most, blocks, kinds

    most, blocks, kinds = asyncio.run(main())
    assert blocks >= 2, blocks
    assert dropped_while_held == [True], dropped_while_held
    assert most <= cap, most
    assert kinds[-1] in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                         aiohttp.WSMsgType.ERROR), kinds


# -- filter bounds: geth v1.17's codes and texts ------------------------------------------
async def _post(http: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with http.post(url, json=body) as resp:
        return await resp.json()


async def _ws(ws: Any, method: str, params: list[Any]) -> Any:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 8, "method": method,
                                  "params": params}))
    while True:
        answer = json.loads((await ws.receive(timeout=TIMEOUT)).data)
        if answer.get("id") == 8:
            return answer


def _addresses(n: int) -> list[str]:
    return ["0x" + f"{i:040x}" for i in range(1, n + 1)]


_INVALID = {"code": -32602, "message": "invalid block range params"}
_PENDING = {"code": -32602, "message": "pending logs are not supported"}
_LIMIT = {"code": -32000, "message": "exceed max addresses or topics per search position"}


def test_filter_bounds_are_refused_with_geth_v1_17_codes() -> None:
    """Issue: eth_newFilter and eth_subscribe "logs" refused pending logs and a bad range
    with -32000, where geth v1.17 (#33320) answers invalid params, -32602 (eth_getLogs did
    already); past 1,000 addresses all three answered -32602 "invalid argument 0: exceed
    max addresses" (geth v1.16.1-3), where geth v1.16.4+ checks its LogQueryLimit once the
    filter decoded: -32000 "exceed max addresses or topics per search position" (an
    undecodable address still comes first, invalid params); five topic positions are
    geth's "exceed max topics"."""
    async def main() -> None:
        async with Simulator(make_recording(4, first=1000), speed=1e6) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await sim.wait_published(4)
            url = sim.urls["http"]
            for bounds, err in [({"fromBlock": "pending"}, _PENDING),
                                ({"toBlock": "pending"}, _PENDING),
                                ({"fromBlock": "finalized"}, _INVALID),
                                ({"fromBlock": "0x3e9", "toBlock": "0x3e8"}, _INVALID),
                                ({"toBlock": "0x3e8"}, _INVALID),
                                ({"address": _addresses(1001)}, _LIMIT),
                                # the limit comes before the range checks, as geth's
                                ({"address": _addresses(1001), "fromBlock": "pending"},
                                 _LIMIT)]:
                assert (await _post(http, url, "eth_newFilter", [bounds]))["error"] == err, \
                    bounds
                assert (await _ws(ws, "eth_subscribe", ["logs", bounds]))["error"] == err, \
                    bounds
            for bounds, err in [({"fromBlock": "0x3e9", "toBlock": "0x3e8"}, _INVALID),
                                ({"fromBlock": "pending"}, _PENDING),
                                ({"address": _addresses(1001)}, _LIMIT),
                                ({"address": _addresses(1001), "fromBlock": "0x3e9",
                                  "toBlock": "0x3e8"}, _LIMIT)]:
                assert (await _post(http, url, "eth_getLogs", [bounds]))["error"] == err, \
                    bounds
            bad = {"address": [*_addresses(1001), "0x12"]}  # decoded before the limit
            for method in ("eth_getLogs", "eth_newFilter"):
                error = (await _post(http, url, method, [bad]))["error"]
                assert error["code"] == -32602 and error["message"].startswith(
                    "invalid argument 0: "), error
            five = {"topics": [None] * 5}
            assert (await _post(http, url, "eth_getLogs", [five]))["error"] == {
                "code": -32602, "message": "invalid argument 0: exceed max topics"}
            assert (await _ws(ws, "eth_subscribe", ["logs", five]))["error"] == {
                "code": -32602, "message": "invalid argument 1: exceed max topics"}
            assert "result" in await _post(http, url, "eth_getLogs",
                                           [{"address": _addresses(1000)}])
    asyncio.run(main())


def test_from_block_earliest_is_a_range_of_a_filter_and_a_subscription() -> None:
    """Issue: eth_newFilter and eth_subscribe "logs" refused fromBlock "earliest" ("invalid
    block range params"), which geth accepts since v1.15.8 (#31361) as its first block
    (the history pruning cutoff; here the node's first block): earliest..latest is every
    new block's logs, earliest..N those of the blocks up to N. toBlock "earliest" stays
    refused, as geth's."""
    rec = make_recording(6, first=1000)

    async def main() -> tuple[dict[str, set[int]], Any, Any]:
        async with Simulator(rec, speed=1000, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            subs = {}
            for name, bounds in [("open", {"fromBlock": "earliest"}),
                                 ("upto", {"fromBlock": "earliest", "toBlock": hex(1002)})]:
                answer = await _ws(ws, "eth_subscribe", ["logs", bounds])
                assert "result" in answer, (bounds, answer)
                subs[answer["result"]] = name
            refused = await _ws(ws, "eth_subscribe", ["logs", {"fromBlock": "latest",
                                                               "toBlock": "earliest"}])
            fid = await _post(http, sim.urls["http"], "eth_newFilter",
                              [{"fromBlock": "earliest"}])
            heads = (await _ws(ws, "eth_subscribe", ["newHeads"]))["result"]
            sim.begin()
            seen: dict[str, set[int]] = {name: set() for name in subs.values()}
            last = rec.blocks[-1].number
            while True:
                note = json.loads((await ws.receive(timeout=TIMEOUT)).data)["params"]
                if note["subscription"] == heads:
                    if int(note["result"]["number"], 16) == last:
                        break
                    continue
                seen[subs[note["subscription"]]].add(int(note["result"]["blockNumber"], 16))
            logs = await _post(http, sim.urls["http"], "eth_getFilterLogs", [fid["result"]])
        return seen, refused, logs

    seen, refused, logs = asyncio.run(main())
    numbers = [b.number for b in rec.blocks]
    assert seen == {"open": set(numbers), "upto": {1000, 1001, 1002}}, seen
    assert refused["error"] == _INVALID
    assert {int(log["blockNumber"], 16) for log in logs["result"]} == set(numbers)


# -- block numbers as geth's rpc.BlockNumber reads them -----------------------------------
@pytest.mark.parametrize(("number", "message"), [
    (None, "hex string without 0x prefix"),  # UnmarshalJSON("null")
    (1000, "hex string without 0x prefix"),
    ("", "empty hex string"),
    ("0x8000000000000000", "block number larger than int64"),
    ("0x" + "z" * 20, "invalid hex string"),  # ParseUint's syntax error comes first
    ("0x03e8", "hex number with leading zero digits"),
])
def test_a_bad_block_number_is_geths_invalid_argument(number: Any, message: str) -> None:
    """Issue: a block number past int64 was taken (null: no such block) where geth
    refuses it; null and JSON numbers were "json: cannot unmarshal NoneType into Go value
    of type hexutil.Uint64" (a Python type name); "" was "hex string without 0x prefix";
    20 letters were "hex number > 64 bits" where Go's ParseUint finds the bad digit
    first. In eth_getBlockByNumber and a filter's fromBlock alike."""
    async def main() -> list[Any]:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            url = sim.urls["http"]
            return [(await _post(http, url, "eth_getBlockByNumber", [number, False]))["error"],
                    (await _post(http, url, "eth_getLogs", [{"fromBlock": number}]))["error"]
                    if number is not None else None,
                    (await _post(http, url, "eth_newFilter", [{"toBlock": number}]))["error"]
                    if number is not None else None]

    want = {"code": -32602, "message": f"invalid argument 0: {message}"}
    got = asyncio.run(main())
    assert got[0] == want
    if number is not None:
        assert got[1] == want and got[2] == want, got


# -- eth_subscribe / eth_unsubscribe arguments as geth's handler reads them ----------------
def test_subscription_arguments_are_read_as_geths_handler_reads_them() -> None:
    """Issue: eth_subscribe took ["newHeads", anything] and ["logs"] without a filter,
    where geth's handleSubscribe parses the named subscription's arguments (the name is
    argument 0): NewHeads takes none ("too many arguments, want at most 1"), Logs a
    FilterCriteria it requires ("missing value for required argument 1"; null is an open
    filter). A missing name was "invalid argument 0: expected subscription name" (geth:
    "expected subscription name as first argument"). eth_unsubscribe found an id whatever
    its case (geth's ids are looked up as sent), took extra arguments and answered a
    number id with its own text; null is "" there, no subscription's id."""
    async def main() -> dict[str, Any]:
        settings = SimSettings(node=NodeSettings(profile="geth"))
        async with Simulator(make_recording(3), settings=settings, speed=1000) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            got = {
                "heads+1": await _ws(ws, "eth_subscribe", ["newHeads", {}]),
                "logs": await _ws(ws, "eth_subscribe", ["logs"]),
                "logs+1": await _ws(ws, "eth_subscribe", ["logs", {}, {}]),
                "logs null": await _ws(ws, "eth_subscribe", ["logs", None]),
                "pending+1": await _ws(ws, "eth_subscribe", ["newPendingTransactions", True,
                                                             1]),
                "pending str": await _ws(ws, "eth_subscribe", ["newPendingTransactions",
                                                               "yes"]),
                "no name": await _ws(ws, "eth_subscribe", []),
                "unsub none": await _ws(ws, "eth_unsubscribe", []),
                "unsub num": await _ws(ws, "eth_unsubscribe", [5]),
                "unsub null": await _ws(ws, "eth_unsubscribe", [None]),
            }
            sub = (await _ws(ws, "eth_subscribe", ["newHeads"]))["result"]
            got["unsub +1"] = await _ws(ws, "eth_unsubscribe", [sub, 1])
            got["unsub upper"] = await _ws(ws, "eth_unsubscribe", ["0x" + sub[2:].upper()])
            got["unsub"] = await _ws(ws, "eth_unsubscribe", [sub])
        return got

    got = asyncio.run(main())

    def err(code: int, message: str) -> dict[str, Any]:
        return {"code": code, "message": message}

    assert got["heads+1"]["error"] == err(-32602, "too many arguments, want at most 1")
    assert got["logs"]["error"] == err(-32602, "missing value for required argument 1")
    assert got["logs+1"]["error"] == err(-32602, "too many arguments, want at most 2")
    assert got["logs null"]["result"].startswith("0x")
    assert got["pending+1"]["error"] == err(-32602, "too many arguments, want at most 2")
    assert got["pending str"]["error"] == err(
        -32602, "invalid argument 1: json: cannot unmarshal string into Go value of type bool")
    assert got["no name"]["error"] == err(-32602, "expected subscription name as first argument")
    assert got["unsub none"]["error"] == err(-32602, "missing value for required argument 0")
    assert got["unsub num"]["error"] == err(
        -32602, "invalid argument 0: json: cannot unmarshal number into Go value of type rpc.ID")
    assert got["unsub null"]["error"] == err(-32000, "subscription not found")
    assert got["unsub +1"]["error"] == err(-32602, "too many arguments, want at most 1")
    assert got["unsub upper"]["error"] == err(-32000, "subscription not found")
    assert got["unsub"]["result"] is True


def test_a_hash_argument_that_is_no_string_is_geths_error() -> None:
    """Issue: eth_getBlockByHash [null, false] said "topic must be a hex string, got
    NoneType" (a Python type name, and no topic); geth's common.Hash says "json: cannot
    unmarshal non-string into Go value of type common.Hash"."""
    async def main() -> list[Any]:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            url = sim.urls["http"]
            return [(await _post(http, url, "eth_getBlockByHash", [None, False]))["error"],
                    (await _post(http, url, "eth_getTransactionByHash", [5]))["error"],
                    (await _post(http, url, "eth_getTransactionReceipt", [[]]))["error"]]

    want = {"code": -32602, "message": "invalid argument 0: json: cannot unmarshal "
                                       "non-string into Go value of type common.Hash"}
    assert asyncio.run(main()) == [want] * 3


def test_a_response_sent_to_the_node_gets_no_answer() -> None:
    """Issue: a response-shaped message (version, id, a result or an error, no method, no
    params) got -32600 "invalid request", alone or in a batch; geth's handleResponses takes
    it for an answer to a request of its own and drops it without a reply ("Unsolicited
    RPC response"), so a batch of one call and one response has one answer."""
    async def main() -> list[str]:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            bodies = [{"jsonrpc": "2.0", "id": 1, "result": "0x1"},
                      [{"jsonrpc": "2.0", "id": 2, "result": None},
                       {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId"},
                       {"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}},
                       # params or a method make it a request, answered
                       {"jsonrpc": "2.0", "id": 4, "result": "0x1", "params": []}]]
            texts = []
            for body in bodies:
                async with http.post(sim.urls["http"], json=body) as resp:
                    assert resp.status == 200
                    texts.append(await resp.text())
            return texts

    single, batch = asyncio.run(main())
    assert single == ""
    assert json.loads(batch) == [
        {"jsonrpc": "2.0", "id": 3, "result": "0x89"},
        {"jsonrpc": "2.0", "id": 4, "error": {"code": -32600, "message": "invalid request"}}]


def test_a_syncing_subscription_gets_a_synced_nodes_one_false() -> None:
    """Issue: eth_subscribe ["syncing"] (web3.py's SyncingSubscription) was -32601 'no
    "syncing" subscription in eth namespace'; geth serves it in the eth namespace
    (DownloaderAPI.Syncing), and a node in sync sends one notification, false, after the
    answer and nothing more; it takes no argument."""
    async def main() -> tuple[Any, Any, Any, list[Any]]:
        async with Simulator(make_recording(6), speed=1000, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(json.dumps([
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["syncing"]},
                {"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                 "params": ["newHeads"]}]))
            answer = json.loads((await ws.receive(timeout=TIMEOUT)).data)
            first = json.loads((await ws.receive(timeout=TIMEOUT)).data)
            extra = await _ws(ws, "eth_subscribe", ["syncing", True])
            sim.begin()
            rest = []
            heads = answer[1]["result"]
            while True:  # every block's head, and no other syncing notification
                note = json.loads((await ws.receive(timeout=TIMEOUT)).data)["params"]
                rest.append(note["subscription"])
                if note["subscription"] == heads and note["result"]["number"] == hex(1005):
                    break
        return answer, first, extra, rest

    answer, first, extra, rest = asyncio.run(main())
    sub = answer[0]["result"]
    assert first == {"jsonrpc": "2.0", "method": "eth_subscription",
                     "params": {"subscription": sub, "result": False}}
    assert extra["error"] == {"code": -32602, "message": "too many arguments, want at most 1"}
    assert sub not in rest and len(rest) == 6


_A = "0x" + "ab" * 20
_T = "0x" + "cd" * 32


@pytest.mark.parametrize(("flt", "message"), [
    ({"address": "0x12"}, "invalid address: hex has invalid length 1 after decoding; "
                          "expected 20 for address"),
    ({"address": [_A, "0x123"]}, "invalid address at index 1: hex string of odd length"),
    ({"address": [_A, 5]}, "non-string address at index 1"),
    ({"address": 5}, "invalid addresses in query"),
    ({"address": "ab" * 20}, "invalid address: hex string without 0x prefix"),
    ({"topics": ["0x12"]}, "hex has invalid length 1 after decoding; expected 32 for topic"),
    ({"topics": [[_T, 7]]}, "invalid topic(s)"),
    ({"topics": [7]}, "invalid topic(s)"),
    ({"topics": [["0xzz"]]}, "invalid hex string"),
    ({"topics": "x"}, "json: cannot unmarshal string into Go struct field input.topics of "
                      "type []interface {}"),
    # the block bounds decode before the addresses, and blockHash with one is refused
    ({"address": 5, "fromBlock": "0x01"}, "hex number with leading zero digits"),
    ({"blockHash": _T, "fromBlock": "0x1"},
     "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"),
])
def test_a_bad_filter_is_refused_with_geths_decoding_text(flt: dict[str, Any],
                                                          message: str) -> None:
    """Issue: a filter's bad address or topic had the texts of a common.Address /
    common.Hash argument ("hex string has length 2, want 40 for common.Address") or of
    the simulator ("address must be a hex string, got int", "topics must be an array"),
    and the addresses were read before the block bounds; geth's FilterCriteria decodes
    the bounds first, then addresses with decodeAddress ("invalid address at index N:
    ...") and topics with decodeTopic ("invalid topic(s)" for a non-string)."""
    async def main() -> list[Any]:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            url = sim.urls["http"]
            return [(await _post(http, url, "eth_getLogs", [flt]))["error"],
                    (await _ws(ws, "eth_subscribe", ["logs", flt]))["error"]]

    logs, sub = asyncio.run(main())
    assert logs == {"code": -32602, "message": f"invalid argument 0: {message}"}
    assert sub == {"code": -32602, "message": f"invalid argument 1: {message}"}


def test_topics_after_a_null_alternative_are_not_read() -> None:
    """geth stops reading an OR list at its first null (any); what comes before it is
    still decoded."""
    async def main() -> list[Any]:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            url = sim.urls["http"]
            return [await _post(http, url, "eth_getLogs", [{"topics": [[None, "0xzz"]]}]),
                    await _post(http, url, "eth_getLogs", [{"topics": [["0xzz", None]]}])]

    after, before = asyncio.run(main())
    assert "result" in after
    assert before["error"]["message"] == "invalid argument 0: invalid hex string"
