"""Embedding the monitor in the copy-trading bot: every trade and retraction reaches the
bot's executor exactly once, across restarts. An event that may have reached it before (the
process died inside its callback) comes marked ``uncertain``, and the executor looks first.

    python examples/bot_integration.py --wallet 0x... --state DIR
        (provider and explorer from the environment: MONITOR_WEBSOCKET_URL or
        WEBSOCKET_URL, MONITOR_RPC_URL, EXPLORER_API_KEY or EXPLORER_API_KEY_FILE, ...;
        or --ws-url / --rpc-url / --explorer-url for URLs without keys)

The fake executor below appends each event to ``DIR/executor.jsonl``; a real bot calls its
trade executor there (copy a BUY/SELL; undo on a retraction). Prints READY when watching;
SIGINT/SIGTERM stop it cleanly; after a SIGKILL, start it again with the same ``--state``.
A bad setting (a wallet that is no address, a missing URL) is one line on stderr, exit 2;
a monitor that cannot start (its state DB in use by another process) one line, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from monitor import CallbackSink, ConfigError, MonitorError, SinkEvent, WalletMonitor, load_settings


class FakeExecutor:
    """Stands in for the bot's trade executor: records what it was asked to do."""

    def __init__(self, log_path: Path, die_after: int | None = None) -> None:
        self.log_path = log_path
        self._die_after = die_after  # tests: SIGKILL itself inside the n-th call
        self._calls = 0

    def _acted_on(self, key: str) -> bool:
        """A real executor asks the exchange for the order whose client id is ``key``."""
        if not self.log_path.exists():
            return False
        with self.log_path.open(encoding="utf-8") as fh:
            return any(f'"key": {json.dumps(key)},' in line for line in fh)

    async def on_event(self, event: SinkEvent) -> None:
        # uncertain: redelivered after a restart, or retried after this raised: an
        # earlier call may have acted; look before acting again
        if event.uncertain and self._acted_on(event.key):
            return
        if event.kind == "trade" and event.trade is not None:
            t = event.trade
            row = {"key": event.key, "action": "copy", "trade_id": t.id, "side": t.side,
                   "token_id": t.token_id, "price": t.price, "usdc": t.usdc,
                   "source": event.source}
        else:
            row = {"key": event.key, "action": "undo", "trade_id": event.trade_id}
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        self._calls += 1
        if self._calls == self._die_after:  # acted, then died before returning
            os.kill(os.getpid(), signal.SIGKILL)


async def run(args: argparse.Namespace) -> None:
    cli = {"wallets": args.wallet, "state_db": str(args.state / "monitor.db")}
    for name in ("websocket_url", "rpc_url", "explorer_url", "speed", "start_block"):
        value = getattr(args, name)
        if value is not None:
            cli[name] = value
    settings = load_settings(cli)
    if settings.use_websocket and settings.websocket_share > 0 and not (
            settings.websocket_url and settings.rpc_url):
        raise ConfigError("websocket mode needs the provider's URLs: MONITOR_WEBSOCKET_URL "
                          "and MONITOR_RPC_URL (or their _FILE), or --ws-url and --rpc-url")
    executor = FakeExecutor(args.state / "executor.jsonl", args.die_inside_callback)
    # keys_db: the sink remembers what the executor already got, across restarts
    sink = CallbackSink(executor.on_event, keys_db=args.state / "sink_keys.db")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with WalletMonitor(settings, sink=sink) as monitor:
        if not await monitor.wait_connected(15.0):
            print("feed not connected after 15 s: watching anyway (reconnects and the "
                  "explorer fallback take over)", file=sys.stderr, flush=True)
        print("READY", flush=True)
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n", 1)[0].split()))
    p.add_argument("--wallet", action="append", required=True, metavar="ADDR",
                   help="a wallet to watch; repeat for more (required)")
    p.add_argument("--state", type=Path, required=True, metavar="DIR",
                   help="directory of the monitor's state DB, the sink's keys and the fake "
                        "executor's executor.jsonl; the same DIR after a restart (required)")
    p.add_argument("--ws-url", dest="websocket_url", metavar="URL",
                   help="provider wss:// URL without a key in it (default: the environment, "
                        "MONITOR_WEBSOCKET_URL or WEBSOCKET_URL or their _FILE)")
    p.add_argument("--rpc-url", dest="rpc_url", metavar="URL",
                   help="provider https:// URL without a key in it (default: the "
                        "environment, MONITOR_RPC_URL or RPC_URL_FILE)")
    p.add_argument("--explorer-url", dest="explorer_url", metavar="URL",
                   help="explorer API URL (default: Etherscan V2, or MONITOR_EXPLORER_URL)")
    p.add_argument("--speed", type=float, help="simulator only (loopback endpoints) "
                   "(default: 1)")
    p.add_argument("--start-block", type=int, metavar="N",
                   help="first block to watch (default: the head, or the stored cursor)")
    p.add_argument("--die-inside-callback", type=int, metavar="N", help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        args.state.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args))
    except ConfigError as exc:  # were tracebacks: one line, exit 2 for a bad setting
        print(f"{p.prog}: error: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except MonitorError as exc:  # the state DB in use or unusable, an endpoint
        print(f"{p.prog}: error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # --state not a directory we can write
        print(f"{p.prog}: error: {args.state}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
