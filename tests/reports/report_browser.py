"""Drive headless Chromium over the DevTools protocol (``websockets``) for the report check.

:func:`inspect_page` opens a local HTML file at a given window size and returns what a
person would notice: console errors and uncaught exceptions, images that did not load,
whether the page is wider than the window, and a PNG screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import queue
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    images_failed: int = 0
    scroll_width: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    screenshots: dict[str, bytes] = field(default_factory=dict)


class _Cdp:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            else:
                self.events.append(msg)
                if msg.get("method") == "Page.loadEventFired":
                    self.loaded.set()

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        i = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))


def _devtools_url(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=timeout)
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            return m.group(1)


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Runtime.exceptionThrown":
            out.append(str(p.get("exceptionDetails", {}).get("text", "exception")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(str(p["entry"].get("text", "")))
    return out


async def _inspect(url: str, browser_ws: str,
                   sizes: dict[str, tuple[int, int, bool]]) -> PageReport:
    report = PageReport()
    async with websockets.connect(browser_ws, max_size=None) as ws:
        cdp = _Cdp(ws)
        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
        session = (await cdp.send("Target.attachToTarget",
                                  {"targetId": target["targetId"], "flatten": True}))["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            await cdp.send(f"{domain}.enable", session=session)
        first = True
        for name, (w, h, mobile) in sizes.items():
            await cdp.send("Emulation.setDeviceMetricsOverride",
                           {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
                           session=session)
            if first:
                await cdp.send("Page.navigate", {"url": url}, session=session)
                await asyncio.wait_for(cdp.loaded.wait(), 60)
                first = False
            probe = await cdp.send("Runtime.evaluate", {"returnByValue": True, "expression": (
                "JSON.stringify({imgs: Array.from(document.images).map("
                "i => i.complete && i.naturalWidth > 0), sw: document.documentElement.scrollWidth,"
                " attrs: Object.fromEntries(Array.from(document.documentElement.attributes)"
                ".map(a => [a.name, a.value]))})")}, session=session)
            data = json.loads(probe["result"]["value"])
            report.images = len(data["imgs"])
            report.images_failed = sum(1 for ok in data["imgs"] if not ok)
            report.scroll_width = max(report.scroll_width, data["sw"]) if name != "phone" \
                else report.scroll_width
            if name == "phone":
                report.attributes["phone_scroll_width"] = str(data["sw"])
            report.attributes.update({k: v for k, v in data["attrs"].items()
                                      if k.startswith("data-")})
            shot = await cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)
            report.screenshots[name] = base64.b64decode(shot["data"])
        report.console_errors = _console_errors(cdp.events)
        cdp.reader.cancel()
    return report


def inspect_page(path: Path, sizes: dict[str, tuple[int, int, bool]]) -> PageReport:
    """Load ``path`` in headless Chromium at each ``name: (width, height, mobile)``."""
    # Chromium's helper processes may still be writing the profile when the browser
    # itself has exited: a leftover file there is not the report's failure
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}",
                                 "about:blank"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            url = _devtools_url(proc)
            return asyncio.run(_inspect(path.resolve().as_uri(), url, sizes))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
