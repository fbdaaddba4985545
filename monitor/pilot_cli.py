"""``python -m monitor pilot``: the live shadow pilot, and ``pilot status``.

::

    python -m monitor pilot --ws-url URL --rpc-url URL [--explorer-url URL]
        --wallet ADDR [--wallet ...] --store DIR [--metrics-host H --metrics-port P]
        [--beat S] [--rotate-mb N] [--keep N] [any `monitor run` setting flag]
    python -m monitor pilot status --store DIR [--json]

Keys come from the environment or files (``EXPLORER_API_KEY`` / ``EXPLORER_API_KEY_FILE``,
``MONITOR_...``, ``WEBSOCKET_URL_FILE`` for a provider URL holding its key), never from
argv: ``--api-key``, ``--telegram-token`` (or ``--set`` of either) are refused here, and a
URL that looks like it carries a key is warned about, as ``run`` warns about all of them.
Prints ``READY`` when both paths run (a signal before that: no READY, a stop at once);
stops cleanly on SIGINT/SIGTERM; a SIGKILL loses nothing the store had confirmed (restart
resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from monitor.config import Settings, argv_secrets, load_settings
from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.private_files import NotRegularFile
from polyvocab.cli_args import reader_gone

__all__ = ["add_pilot_parser", "connected_or_stopped", "pilot_main"]

log = logging.getLogger("monitor.pilot")

_READY_WAIT_S = 15.0


#: ``pilot --help`` lists every ``monitor run`` flag: this says which the pilot refuses or
#: sets itself (the help offered --api-key, which the pilot then refused)
PILOT_DESCRIPTION = (
    "The live shadow pilot (docs/pilot.md). Keys never on the command line: --api-key, "
    "--telegram-token and --set of either are refused; give them in files named by "
    "EXPLORER_API_KEY_FILE and MONITOR_TELEGRAM_TOKEN_FILE, and the provider URLs (which "
    "carry the key) by MONITOR_WEBSOCKET_URL_FILE and MONITOR_RPC_URL_FILE. The pilot sets "
    "--mode, --websocket-enabled, --websocket-share, --db, --detections and --history "
    "itself (both paths, under --store); --start-block counts only at a store's first "
    "start. Exit status: 0 stopped, 1 failed, 2 bad settings (do not restart).")

PILOT_ACTIONS = ("run", "status")
#: an unusable ``--store`` path: no permission, a read-only file system, a path through a
#: file, a parent that cannot be made (/proc)
_STORE_SETTING_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                                   errno.ENOENT, errno.EISDIR})
MIN_BEAT_S, MAX_BEAT_S = 0.1, 3600.0
MIN_ROTATE_MB, MAX_ROTATE_MB = 1.0, 1_000_000.0
MAX_KEEP = 1000


def add_pilot_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "pilot", help="run the WebSocket and polling paths side by side (shadow pilot); "
                      "`pilot status --store DIR` shows how it goes",
        description=PILOT_DESCRIPTION)
    # no ``choices``: argparse checks them as it meets the word, before it says a flag is
    # unknown, so `pilot --duration -1` was "argument action: invalid choice: '-1'"
    p.add_argument("action", nargs="?", default="run", metavar="{run,status}",
                   help="run the pilot, or print the status of its store "
                        "(default: %(default)s)")
    p.add_argument("--store", type=_store_path, metavar="DIR",
                   help="pilot store directory (SQLite + JSON lines) (required)")
    p.add_argument("--beat", type=float, default=5.0, metavar="S",
                   help="seconds between state records (uptime resolution) "
                        "(default: %(default)s)")
    p.add_argument("--rotate-mb", type=float, default=64.0, metavar="MB",
                   help="rotate each JSON-lines file past this size (default: %(default)s)")
    p.add_argument("--keep", type=int, default=5, metavar="N",
                   help="rotated files kept per file (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="status: print JSON instead of text (default: off)")
    return p


def _store_path(text: str) -> Path:
    """``--store``'s folder (argparse type): ``''`` was the current folder, and the pilot
    wrote its store there."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _fail(msg: str) -> int:
    print(f"python -m monitor pilot: error: {msg}", file=sys.stderr)
    return 2


def pilot_main(ns: argparse.Namespace,
               cli_settings: Callable[[argparse.Namespace], tuple[dict[str, Any], Any]],
               install_filter: Callable[[], None]) -> int:
    if ns.action not in PILOT_ACTIONS:
        return _fail(f"unknown action {ns.action!r}: pilot [run] or pilot status (an "
                     "option's value that starts with '-' goes as --option=VALUE)")
    if ns.store is None:
        return _fail("--store DIR is needed")
    if ns.action == "status":
        from monitor.pilot import format_status, pilot_status

        try:
            st = pilot_status(ns.store)
        except (FileNotFoundError, OSError) as exc:
            return _fail(str(exc))
        except StoreError as exc:  # not a database, or not a pilot's
            return _fail(exc.message)
        try:
            print(json.dumps(st, indent=2) if ns.json else format_status(st), flush=True)
        except BrokenPipeError:  # `pilot status | head -1`: was a traceback
            return reader_gone()
        return 0
    found = argv_secrets(vars(ns), ns.set)  # as `run`'s test: a key or token refused here
    for secret in found:
        if secret.definite:
            return _fail(f"{secret.flag} is refused: keys on the command line are visible "
                         f"in `ps`; use {secret.instead()}")
    try:
        cli, config = cli_settings(ns)
        settings = load_settings(cli, config_file=config)
        if not settings.wallets:
            raise ConfigError("wallets: at least one --wallet (or --wallets-file) is needed")
        if not settings.websocket_url or not settings.rpc_url or not settings.explorer_url:
            raise ConfigError("the pilot needs --ws-url, --rpc-url and --explorer-url")
        from monitor.pilot import explorer_needs_key

        if not settings.api_key() and explorer_needs_key(settings.explorer_url):
            # Etherscan V2 refuses every call without one: the polling shadow never polled
            raise ConfigError("the explorer (Etherscan V2) needs an API key: put it in a "
                              "file named by EXPLORER_API_KEY_FILE (or EXPLORER_API_KEY)")
        # a beat of 1e-9 s spun the loop writing state rows; a rotation every few bytes
        # would have rotated the kept files' data away
        if not (MIN_BEAT_S <= ns.beat <= MAX_BEAT_S):
            raise ConfigError(f"--beat must be {MIN_BEAT_S:g} to {MAX_BEAT_S:g} seconds")
        if not (MIN_ROTATE_MB <= ns.rotate_mb <= MAX_ROTATE_MB):
            raise ConfigError(f"--rotate-mb must be {MIN_ROTATE_MB:g} to {MAX_ROTATE_MB:g}")
        if not 0 <= ns.keep <= MAX_KEEP:
            raise ConfigError(f"--keep must be 0 to {MAX_KEEP}")
        store = Path(ns.store)
        if store.exists() and not store.is_dir():
            raise ConfigError(f"--store {store}: not a folder")
    except ConfigError as exc:
        return _fail(exc.message)
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_filter()
    for secret in found:  # a URL that looks like it carries a key: a guess, so a warning
        log.warning("%s", secret.advice())
    try:
        return asyncio.run(_run(settings, ns))
    except (ConfigError, StoreError) as exc:
        return _fail(exc.message)
    except MonitorError as exc:
        print(f"python -m monitor pilot: error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # the store's folder or files (no permission, /proc, a full disk)
        name = f" {exc.filename}" if exc.filename else ""
        print(f"python -m monitor pilot: error: cannot write the pilot's store{name}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        # a folder the service user may not write, a path through a file, a folder or a
        # FIFO where a store file belongs: a setting to fix (2: the unit does not restart
        # into it every 5 s); a full disk may pass (1)
        return 2 if exc.errno in _STORE_SETTING_ERRNOS or isinstance(exc, NotRegularFile) \
            else 1
    except KeyboardInterrupt:
        return 130


async def _run(settings: Settings, ns: argparse.Namespace) -> int:
    from monitor.pilot import Pilot

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    pilot = Pilot(settings, ns.store, beat_s=ns.beat, rotate_bytes=int(ns.rotate_mb * 2**20),
                  keep=ns.keep, check_key=True)
    try:
        # a SIGTERM while the pilot starts (a provider that does not answer its first
        # eth_blockNumber: four tries of rpc_timeout) was held until the start gave up,
        # ~45 s, and then the pilot failed (exit 1) instead of stopping (exit 0)
        if not await _done_or_stopped(pilot.start(), stop):
            log.info("signal received while starting: stopping the pilot")
            pilot.note_stop("signal during start")
            return 0
        connected = await connected_or_stopped(pilot.wait_connected(_READY_WAIT_S), stop)
        if connected is False:
            log.warning("feed not connected after %.0f s: starting anyway", _READY_WAIT_S)
        if connected is not None:  # None: stopped before READY, which is not printed
            print("READY", flush=True)
            await stop.wait()
        log.info("signal received: stopping the pilot")
        pilot.note_stop("signal")
    finally:
        await pilot.stop()
    return 0


async def _done_or_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work``; True when it finished, False (``work`` cancelled) as soon as
    ``stop`` is set first. Its exception, if it raised first, is raised."""
    doing = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (doing, stopping):
            task.cancel()
        await asyncio.gather(doing, stopping, return_exceptions=True)
    if doing.cancelled():
        return False
    doing.result()
    return True


async def connected_or_stopped(connected: Awaitable[bool], stop: asyncio.Event
                               ) -> bool | None:
    """What ``connected`` says, or None as soon as ``stop`` is set: a SIGTERM while the
    feed connects was held for up to 15 s, and then READY was printed anyway. ``run``
    (:mod:`monitor.cli`) waits with it too."""
    waiting = asyncio.ensure_future(connected)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, stopping):
            task.cancel()
        await asyncio.gather(waiting, stopping, return_exceptions=True)
    if waiting.cancelled():  # the stop came first
        return None
    return waiting.result()
