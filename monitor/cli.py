"""Command line: ``python -m monitor run ...``.

::

    python -m monitor run --mode websocket|polling --ws-url URL --rpc-url URL
        --explorer-url URL --api-key KEY --wallet ADDR [--wallet ADDR ...]
        [--wallets-file FILE] --db PATH --detections PATH --history PATH [--speed X]
        [--config TOML] [--set NAME=VALUE ...] [--<any-setting-name> VALUE ...]

Every setting of :class:`monitor.config.Settings` is also a flag (``--fallback-after 5``).
Precedence: flags > environment > ``--config`` file > defaults. Prints ``READY`` on stdout
when the sources are started and every WebSocket shard is connected (at most 15 s; a
signal before that stops at once, without READY); stops cleanly on SIGINT/SIGTERM
(flushes the outbox, the detections file and the history, writes the ``stop`` row). Bad
arguments or settings: one line on stderr, exit 2, no traceback; so is a provider that
refuses the key at the first WebSocket handshake of all (HTTP 401/403: the URL named with
its key masked; see :meth:`monitor.wallet_monitor.WalletMonitor.wait_connected`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.config import (
    DEPRECATED,
    ENV_ALIASES,
    ENV_PREFIX,
    NOT_FROM_ENV,
    Settings,
    argv_secrets,
    explorer_needs_key,
    load_settings,
    normalise_address,
)
from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.private_files import check_regular
from monitor.redact import redact
from polyvocab.cli_args import OneLineParser
from polyvocab.small_files import LIST_BYTES, read_small_text
from polyvocab.version import package_version

__all__ = ["build_parser", "main"]

log = logging.getLogger("monitor")

# flag -> setting name, for the flags the issue names
_ALIASES = {
    "ws_url": "websocket_url", "api_key": "explorer_api_key", "db": "state_db",
    "detections": "detections_path", "history": "history_path",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m monitor", description="Polymarket wallet monitor.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="watch wallets and deliver their trades")
    from monitor.pilot_cli import add_pilot_parser

    pilot = add_pilot_parser(sub)
    for p in (run, pilot):
        p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
        p.add_argument("--ws-url", metavar="URL", help=setting_help("websocket_url"))
        p.add_argument("--api-key", metavar="KEY", help=setting_help("explorer_api_key"))
        p.add_argument("--wallet", action="append", default=[], dest="wallet_list",
                       metavar="ADDR", help="a wallet to watch; repeat the flag for more "
                       "(adds to --wallets-file) (default: none; " + _env_text("wallets") + ")")
        p.add_argument("--wallets-file", type=Path, metavar="FILE",
                       help="file with one wallet address a line, # comments (default: none)")
        p.add_argument("--db", metavar="PATH", help=setting_help("state_db"))
        p.add_argument("--detections", metavar="PATH", help=setting_help("detections_path"))
        p.add_argument("--history", metavar="PATH", help=setting_help("history_path"))
        p.add_argument("--config", type=Path, metavar="FILE",
                       help="TOML file with settings (lower-case names, top level or under "
                            "[monitor]); flags > environment > this file > defaults "
                            "(default: none)")
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="any setting by name, repeatable (e.g. --set fallback_after=5; "
                            "NAME_file=PATH reads a secret from a file) (default: none)")
        taken = {"websocket_url", "explorer_api_key", "state_db", "detections_path",
                 "history_path", "wallets"}
        for name in Settings.model_fields:
            if name in taken:
                continue
            p.add_argument("--" + name.replace("_", "-"), dest=name,
                           metavar=_metavar(name), help=setting_help(name))
        for name, why in DEPRECATED.items():
            p.add_argument("--" + name.replace("_", "-"), dest=name, metavar="IGNORED",
                           help=f"deprecated: accepted and ignored, no default; {why}")
    return parser


def _metavar(name: str) -> str:
    ann = Settings.model_fields[name].annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    kinds = set(args) | {ann}
    if bool in kinds:
        return "{true,false}"
    if int in kinds:
        return "N"
    if float in kinds:
        return "X"
    if name.endswith("_url"):
        return "URL"
    if list[str] in kinds or name in ("exchanges",):
        return "ADDR,..."
    return "TEXT"


def _env_text(name: str) -> str:
    if name in NOT_FROM_ENV:
        return "never from the environment"
    names = [ENV_PREFIX + name.upper()] + ([ENV_ALIASES[name]] if name in ENV_ALIASES else [])
    return "env " + " or ".join(names)


def setting_help(name: str) -> str:
    """``--help`` text of setting ``name``: its description (``Settings`` field, the same
    text as the docs table), its default and its environment variable(s)."""
    field = Settings.model_fields[name]
    text = (field.description or "").replace("`", "").replace("%", "%%")
    default = field.get_default(call_default_factory=True)
    if default is None:
        shown = "none"
    elif isinstance(default, bool):
        shown = str(default).lower()
    elif isinstance(default, list):
        shown = "none" if not default else (
            default[0] if len(default) == 1 else f"the {len(default)} of polyvocab")
    else:
        shown = str(default)
    return f"{text} (default: {shown}; {_env_text(name)})"


def _cli_settings(ns: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    values: dict[str, Any] = {}
    for name in [*Settings.model_fields, *DEPRECATED]:
        v = getattr(ns, name, None)
        if v is not None:
            values[name] = v
    for flag, name in _ALIASES.items():
        v = getattr(ns, flag, None)
        if v is not None:
            values[name] = v
    for item in ns.set:
        k, eq, v = item.partition("=")
        if not eq or not k.strip():  # an empty name read as pydantic's own 'settings'
            raise ConfigError(f"--set expects NAME=VALUE, got {redact(item)!r}")
        values[k.strip().replace("-", "_")] = v
    wallets: list[str] = list(ns.wallet_list)
    if ns.wallets_file is not None:
        try:
            check_regular(ns.wallets_file)  # a FIFO would block the open
            text = read_small_text(ns.wallets_file, LIST_BYTES)
        except OSError as exc:
            raise ConfigError(f"wallets_file: cannot read {ns.wallets_file}: {exc.strerror}"
                              ) from None
        for i, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    wallets.append(normalise_address(line, "wallet"))
                except ValueError as exc:
                    raise ConfigError(f"wallets_file {ns.wallets_file}:{i}: {exc}") from None
    if wallets:
        values["wallets"] = wallets
    return values, ns.config


_READY_WAIT_S = 15.0  # READY waits this long (real seconds) for the WebSocket feed


async def _run(settings: Settings) -> int:
    from monitor.pilot_cli import connected_or_stopped
    from monitor.wallet_monitor import WalletMonitor

    # its files are opened before the handlers: until then a signal still ends the process
    monitor = WalletMonitor(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.start()
        freeze_startup_heap()
        connected = await connected_or_stopped(monitor.wait_connected(_READY_WAIT_S), stop)
        if connected is False:
            log.warning("feed not connected after %.0f s: starting anyway (fallback covers it)",
                        _READY_WAIT_S)
        if connected is not None:
            print("READY", flush=True)
            await stop.wait()
        log.info("signal received: stopping")
    finally:
        await monitor.stop()
    return 0


#: the cyclic collector's thresholds once started: young collections every 10,000
#: container allocations (net of those freed), not CPython's 700; the older generations'
#: as CPython's. A batch of live notifications holds ~15 containers a notification until
#: it is delivered (its JSON, trade, decisions, rows): at 700 a batch of ~900 went through
#: ~20 young collections, every one of its objects promoted, and the full collections
#: those promotions set off were ~10 us of CPU a notification (throughput bench), ~1.5 us
#: with these. Cyclic garbage (a broken connection's traceback) waits longer for a full
#: collection: 100 young ones apart, as before, so ~14x the allocations
GC_THRESHOLDS = (10_000, 10, 10)


def freeze_startup_heap() -> None:
    """Take what start-up built (modules, settings, wallet sets, the dedup state loaded
    from the store) out of the cyclic collector's view: it lives as long as the process,
    and every full (generation 2) collection walked all of it, 170 ms in one go at
    100,000 wallets (docs/BENCHMARKS.md). Nothing is freed differently: frozen objects
    were alive anyway; only their cycles, if any die later, are not collected. Then the
    collector runs at :data:`GC_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command == "pilot":
        from monitor.pilot_cli import pilot_main

        return pilot_main(ns, _cli_settings, _install_log_filters)
    try:
        cli, config = _cli_settings(ns)
        settings = load_settings(cli, config_file=config)
        if not settings.wallets:
            raise ConfigError("wallets: at least one --wallet (or --wallets-file) is needed")
        if settings.use_websocket and settings.websocket_share > 0 and (
                not settings.websocket_url or not settings.rpc_url):
            raise ConfigError("websocket_url and rpc_url: both are needed in websocket mode "
                              "(or use --mode polling)")
        polls = not settings.use_websocket or settings.websocket_share < 100
        if polls and not settings.explorer_url:
            raise ConfigError("explorer_url is needed for polling")
        keyless = not settings.api_key() and explorer_needs_key(settings.explorer_url)
        if polls and keyless:
            # Etherscan V2 answers every call without a key NOTOK: no poll would succeed
            raise ConfigError("the explorer (Etherscan V2) needs an API key for polling: put "
                              "it in a file named by EXPLORER_API_KEY_FILE (or "
                              "EXPLORER_API_KEY)")
    except ConfigError as exc:
        print(f"python -m monitor: error: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _install_log_filters()
    for found in argv_secrets(vars(ns), ns.set):
        log.warning("%s", found.advice())
    if keyless and settings.explorer_url:
        log.warning("no explorer API key: Etherscan V2 refuses every call without one, so "
                    "the fallback to polling cannot deliver while the feed is down (set "
                    "EXPLORER_API_KEY_FILE)")
    try:
        return asyncio.run(_run(settings))
    except (ConfigError, StoreError) as exc:  # state_db or detections path unusable
        print(f"python -m monitor: error: {exc.message}", file=sys.stderr)
        return 2
    except MonitorError as exc:
        print(f"python -m monitor: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = redact(msg), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _install_log_filters() -> None:
    """Secrets redacted from every record (a malformed request to the ops server is one
    line without a traceback: its own log, polyvocab.http_log.BadRequestLog)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactFilter())
