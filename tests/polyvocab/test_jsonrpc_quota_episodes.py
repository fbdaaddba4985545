"""A spent quota's episode in the JSON-RPC HTTP client: it ends when the refused kind of
call is answered again (or after a quiet period), not at any answer, and its alert comes
at most once every ``quota_alert_every``. The client against an aiohttp server on
loopback, its clock a hand-moved one; :class:`QuotaEpisode` alone is pure."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from polyvocab.errors import QuotaExhausted
from polyvocab.jsonrpc_http import JsonRpcHttpClient
from polyvocab.policies import QuotaEpisode

MONTHLY = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
    "code": 429, "message": "Monthly capacity limit exceeded. Visit https://dashboard."
    "alchemy.com/settings/billing to upgrade your scaling policy for continued service."}})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Rows:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def record(self, event: str, **fields: Any) -> None:
        self.rows.append(event)


async def _node(refused: set[str]) -> tuple[web.AppRunner, str]:
    """Refuses the methods in ``refused`` (read at each request) for a spent quota,
    answers the others."""
    async def handle(request: web.Request) -> web.Response:
        req = await request.json()
        if req["method"] in refused:
            return web.Response(status=429, text=MONTHLY, content_type="application/json")
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": "0x10"})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


def test_an_answer_of_another_method_does_not_end_the_episode() -> None:
    """eth_getLogs refused for the quota, eth_blockNumber answered, turn by turn (a sync
    loop's calls): each eth_blockNumber answered ended the episode and each eth_getLogs
    refused began another - a ``quota_exhausted`` alert every few seconds. One alert; the
    episode ends once eth_getLogs is answered again; a refusal soon after is not said
    again (one alert an ``quota_alert_every``), one later is."""
    refused = {"eth_getLogs"}

    async def main() -> None:
        runner, url = await _node(refused)
        clock, rows, told = Clock(), Rows(), []
        try:
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(url, session, clock=clock, history=rows,
                                           retry_policy=lambda: iter([0.01] * 10),
                                           on_quota_exhausted=told.append)
                for _ in range(5):
                    clock.t += 3.0
                    with pytest.raises(QuotaExhausted):
                        await client.call("eth_getLogs", [{}])
                    assert await client.call("eth_blockNumber") == "0x10"
                    assert client.quota_exhausted_since is not None
                assert len(told) == 1 and rows.rows.count("quota_exhausted") == 1
                refused.clear()  # the quota is back
                clock.t += 3.0
                assert await client.call("eth_getLogs", [{}]) == "0x10"
                assert client.quota_exhausted_since is None
                refused.add("eth_getLogs")  # spent again a minute later: not said again
                clock.t += 60.0
                with pytest.raises(QuotaExhausted):
                    await client.call("eth_getLogs", [{}])
                assert client.quota_exhausted_since is not None and len(told) == 1
                clock.t += 3600.0  # an hour on, the episode still going: still one alert
                with pytest.raises(QuotaExhausted):
                    await client.call("eth_getLogs", [{}])
                assert len(told) == 1
        finally:
            await runner.cleanup()
    asyncio.run(main())


def test_an_episode_ends_after_a_quiet_period() -> None:
    """The refused kind not asked any more (a backfill done by other means) and the
    other calls answered: the episode ends ``alert_every`` after the last refusal."""
    ep = QuotaEpisode(alert_every=100.0)
    assert ep.refused(["eth_getLogs"], 0.0) is True
    assert ep.answered(["eth_blockNumber"], 50.0) is False and ep.since == 0.0
    assert ep.answered(["eth_blockNumber"], 100.0) is True and ep.since is None
    # a new episode 150 s after the last said one: said (the bound is 100 s)
    assert ep.refused(["eth_getLogs"], 150.0) is True


def test_a_trickle_is_said_at_most_once_an_interval() -> None:
    """A quota that serves a trickle (Infura after its daily count: one call answered,
    the next refused) ends and begins episodes call after call: said once an
    ``alert_every``."""
    ep = QuotaEpisode(alert_every=3600.0)
    said = 0
    for i in range(1000):
        said += ep.refused(["eth_getLogs"], i * 2.0)
        ep.answered(["eth_getLogs"], i * 2.0 + 1.0)
    assert said == 1
    assert ep.refused(["eth_getLogs"], 3600.0 + 2.0) is True
    with pytest.raises(ValueError):
        QuotaEpisode(alert_every=-1.0)


def test_backoff_delay_is_the_capped_doubling_and_never_overflows() -> None:
    """One capped exponential backoff for callers that count their own streak (the
    poller's pauses, the sync loop, the supervisor's restarts): 2.0 ** 1024 was an
    OverflowError in three copies of it."""
    from polyvocab.policies import backoff_delay, retry_delays

    gen = retry_delays(0.5, 60.0)
    assert [backoff_delay(k, initial=0.5, maximum=60.0) for k in range(10)] == \
        [next(gen) for _ in range(10)]
    assert backoff_delay(-3, initial=2.0, maximum=60.0) == 2.0
    for k in (1023, 1024, 10**9):
        assert backoff_delay(k, initial=1.0, maximum=60.0) == 60.0
