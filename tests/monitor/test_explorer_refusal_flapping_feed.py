"""The explorer refuses the key (or a setting) while a WebSocket feed flaps: the shard
builds a new fallback poller at each fallback, and each new poller said the refusal
again (one ``explorer_key_refused`` alert a fallback). The episode is the shard's: one
alert until a poller sees it recovered, and a refusal long after the last one seen is a
new episode."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from hostile_node import HostileNode
from test_reliability import first_sync, run_monitor, until

from monitor.explorer_client import ExplorerSettingRefused
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

KEY = json.dumps({"status": "0", "message": "NOTOK", "result": "Invalid API Key"})
V1 = json.dumps({"status": "0", "message": "NOTOK", "result":
                 "You are using a deprecated V1 endpoint, switch to Etherscan API V2 using "
                 "https://docs.etherscan.io/v2-migration"})


def alerts(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"ALERT {kind}:" in r.getMessage()]


@pytest.mark.parametrize(("answer", "kind"), [(KEY, "explorer_key_refused"),
                                              (V1, "explorer_setting_refused")])
def test_a_refusal_is_one_alert_across_the_fallbacks_of_a_flapping_feed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: str, kind: str) -> None:
    # speed 20, fallback_after 1 s (0.05 s real), staleness 2 blocks (0.2 s real)
    caplog.set_level(logging.INFO)

    async def go() -> None:
        async with HostileNode() as node:
            node.explorer = lambda _q: answer

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                for fallback in range(1, 4):  # heads stop, then flow again: 3 times
                    await until(lambda: shard._poller is not None
                                and shard._poller.polls >= 2, f"fallback {fallback}")
                    while shard._poller is not None:  # heads again: handed back
                        node.head += 1
                        await node.new_head(node.head)
                        await asyncio.sleep(0.05)
                    assert shard.counters["fallbacks"] == fallback

            await run_monitor(node, tmp_path, body, fallback_after=1.0, staleness_blocks=2)
    asyncio.run(go())
    assert len(alerts(caplog, kind)) == 1, alerts(caplog, kind)


def test_an_episode_ends_at_its_recovery_or_long_after_its_last_refusal() -> None:
    from monitor.polling import REFUSAL_EPISODE_KEEP_S, RefusalEpisodes

    episodes = RefusalEpisodes()
    keep = REFUSAL_EPISODE_KEEP_S
    assert episodes.key_refused("Invalid API Key", 0.0, keep)  # new: said
    assert not episodes.key_refused("Invalid API Key", 10.0, keep)  # same episode
    assert episodes.key_open(10.0 + keep - 1, keep) == "Invalid API Key"
    assert episodes.key_refused("Invalid API Key", 10.0 + keep + 1, keep)  # a new one
    episodes.key_back()
    assert episodes.key_open(10.0 + keep + 2, keep) is None
    exc = ExplorerSettingRefused("V1", setting="explorer_url", remedy="a V2 URL")
    assert episodes.setting_refused(exc, 0.0, keep)
    assert not episodes.setting_refused(exc, 1.0, keep)
    episodes.setting_back()
    assert episodes.setting_refused(exc, 2.0, keep)


def test_a_later_poller_that_sees_the_key_accepted_ends_the_episode(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # fallback 1: refused (said); fallback 2: accepted (recovered said, by the new
    # poller); fallback 3: refused again (a new episode, said again)
    caplog.set_level(logging.INFO)
    refusing = {"on": True}

    async def go() -> None:
        async with HostileNode() as node:
            def explorer(q: dict[str, str]) -> str:
                if refusing["on"]:
                    return KEY
                if q.get("module") == "proxy":
                    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(node.head)})
                return json.dumps({"status": "0", "message": "No records found",
                                   "result": []})
            node.explorer = explorer

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                for fallback, refused in ((1, True), (2, False), (3, True)):
                    refusing["on"] = refused
                    await until(lambda: shard._poller is not None
                                and shard._poller.polls >= 2, f"fallback {fallback}")
                    while shard._poller is not None:
                        node.head += 1
                        await node.new_head(node.head)
                        await asyncio.sleep(0.05)

            await run_monitor(node, tmp_path, body, fallback_after=1.0, staleness_blocks=2)
    asyncio.run(go())
    assert len(alerts(caplog, "explorer_key_refused")) == 2
    assert len(alerts(caplog, "explorer_key_recovered")) == 1
