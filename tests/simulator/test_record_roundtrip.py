"""Round trip: record from a running ``python -m simulator serve``, replay that, record again.

The three block lists (the original, the first recording, the second) are identical:
the node serves recordings byte-faithfully and the recorder stores what it is served.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.record import RecordSettings, record_range
from simulator.recording import RecordedBlock, Recording, load_recording, save_recording
from simulator.synth import synthesise

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = RecordSettings(rate_per_s=1000.0, backoff_base_s=0.01, logs_chunk=7,
                          batch_blocks=4, progress=False)


async def _head(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                       "params": []}) as resp:
        return int((await resp.json())["result"], 16)


async def record_from_server(path: Path, first: int, last: int) -> Recording:
    """Serve ``path`` at speed 1000, wait until block ``last`` is out, record first..last."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "serve", "--recording", str(path), "--port", "0",
        "--speed", "1000", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        urls: dict[str, Any] = {}
        while not urls:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            if not line:
                err = b"" if proc.stderr is None else await proc.stderr.read()
                raise AssertionError(f"serve exited before READY: {err.decode()[-2000:]}")
            if line.startswith(b"READY "):
                urls = json.loads(line[6:])
        http = urls["http"]
        async with aiohttp.ClientSession() as session:
            async def wait_head() -> None:
                while await _head(session, http) < last:
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(wait_head(), timeout=60)
        return await record_range(http, first, last, SETTINGS)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)


def rows(blocks: list[RecordedBlock]) -> list[tuple[Any, Any, Any]]:
    return [(b.block, b.logs, b.transactions) for b in blocks]


@pytest.mark.slow
def test_record_replay_record_is_identical(tmp_path: Path) -> None:
    original = synthesise("steady", seed=7, blocks=25)
    first, last = original.first_block, original.last_block
    src = save_recording(original, tmp_path / "original.jsonl.gz")

    once = asyncio.run(record_from_server(src, first, last))
    a = save_recording(once, tmp_path / "once.jsonl.gz")
    twice = asyncio.run(record_from_server(a, first, last))
    b = save_recording(twice, tmp_path / "twice.jsonl.gz")

    assert rows(load_recording(a).blocks) == rows(load_recording(b).blocks)
    assert rows(once.blocks) == rows(load_recording(src).blocks)
    assert sum(len(blk.logs) for blk in once.blocks) > 0
    assert sum(len(blk.transactions) for blk in once.blocks) > 0
    assert once.source["kind"] == "recorded" and once.source["rpc"].startswith("http://127.0.0.1:")
