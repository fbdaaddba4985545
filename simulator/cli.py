"""Command line of the mock Polygon node: ``python -m simulator <command>``.

The commands live here, at the edge; the libraries they call raise their own errors
(:mod:`simulator.errors`: settings, faults, trades CSV, record; and recording errors),
which :func:`main` turns into one clear line on stderr and exit code 2, like
:class:`CliError` (a mistake in the command line itself). No library module imports
this one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyvocab.cli_args import PlainParser, reader_gone
from polyvocab.small_files import file_error_text, is_special, os_error_reason
from polyvocab.version import package_version
from simulator.errors import SimulatorError

if TYPE_CHECKING:
    from simulator.recording import RecordedBlock

__all__ = ["CliError", "build_parser", "main", "main_import", "main_inspect", "main_record",
           "main_serve", "main_synth"]


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2, no traceback."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


#: ``--speed`` bounds: 1,000 times slower than real time (slower, a day's rate window no
#: longer fits the clock's 64-bit nanoseconds: a traceback at start, or after READY) to a
#: million times faster (the monitor's own ``speed`` limit)
MIN_SPEED, MAX_SPEED = 1e-3, 1e6


def _speed(text: str) -> float:
    value = _positive_float(text)
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be {MIN_SPEED:g} to {MAX_SPEED:g}, got {text!r}")
    return value


def _path(text: str) -> str:
    """A file path that names something: ``''`` is the current folder to ``pathlib``
    (``--out ''`` was a ValueError traceback)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _host(text: str) -> str:
    """An address to listen on: ``''`` listened on every interface, without a word."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty address (0.0.0.0 listens on every "
                                          "interface, 127.0.0.1 on loopback only)")
    return text


def _not_special(path: str, what: str) -> None:
    """Refuse a path that exists and is not a regular file (a FIFO, a device, a socket):
    opening a FIFO waits for a writer, so ``--recording`` or ``--history`` naming one hung
    before READY, signals and all. A folder is left to the open, which names it."""
    if is_special(path):
        raise CliError(f"{what} {path}: not a regular file")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 0-65535 (0: any free one), "
                                         f"got {text!r}")
    return value


class _VersionAction(argparse._VersionAction):
    """``--version``, the installed version looked up only when asked for: the
    ``importlib.metadata`` look-up costs ~30 ms of every command's start-up otherwise."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        self.version = f"%(prog)s {package_version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """Every flag says what it does and its default (no environment variables here: the
    simulator is configured by flags and ``--config``)."""
    from simulator.profiles import PROFILES

    profiles = ", ".join(sorted(PROFILES))
    parser = PlainParser(prog="python -m simulator", description="A local mock Polygon node.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=PlainParser)

    synth = sub.add_parser("synth", help="synthesise a recording from a calibrated profile")
    synth.add_argument("--profile", required=True, metavar="NAME",
                       help=f"calibrated activity profile: {profiles} (required)")
    synth.add_argument("--blocks", type=_non_negative_int, required=True, metavar="N",
                       help="number of blocks to synthesise (required)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                       help="random seed; the same seed gives the same file "
                            "(default: %(default)s)")
    synth.add_argument("--out", required=True, type=_path, metavar="PATH",
                       help="recording to write (.jsonl.gz) (required)")

    imp = sub.add_parser("import-trades", help="turn a Data-API /trades export (CSV, or its "
                                               "JSON answer saved) into a recording")
    imp.add_argument("csv", type=_path, metavar="CSV",
                     help="Polymarket Data-API /trades export: CSV (pages joined with cat "
                          "too) or the JSON answer saved as a file")
    imp.add_argument("--out", required=True, type=_path, metavar="PATH",
                     help="recording to write (.jsonl.gz) (required)")
    imp.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                     help="seed for the synthesised hashes and block filler "
                          "(default: %(default)s)")

    rec = sub.add_parser("record", help="record a block range from a JSON-RPC node")
    rec.add_argument("--rpc", metavar="URL",
                     help="HTTP JSON-RPC URL of the node to record from (required: this "
                          "flag, or in the environment RPC_URL_FILE, a file whose first "
                          "line is the URL, or RPC_URL; a URL with a key belongs in the "
                          "file, not in argv; credentials are masked in the recording)")
    rec.add_argument("--from", dest="from_block", type=_non_negative_int, required=True,
                     metavar="N", help="first block to record (required)")
    rec.add_argument("--to", dest="to_block", type=_non_negative_int, required=True,
                     metavar="N", help="last block to record, inclusive (required)")
    rec.add_argument("--out", required=True, type=_path, metavar="PATH",
                     help="recording to write (.jsonl.gz) (required)")
    rec.add_argument("--rate", type=_positive_float, default=10.0, metavar="X",
                     help="max requests per second (default: %(default)s)")

    ins = sub.add_parser("inspect", help="check a recording and print its statistics")
    ins.add_argument("recording", type=_path, metavar="RECORDING", help="recording file to check")

    serve = sub.add_parser("serve", help="replay a recording over JSON-RPC (WS + HTTP) "
                                         "and an Etherscan-V2 style explorer")
    src = serve.add_mutually_exclusive_group()
    src.add_argument("--recording", type=_path, metavar="PATH",
                     help="recording to replay: a file, or a shipped one by name (today = "
                          "1.75-s blocks, V2 only; default = 2026-04-27, 2-s blocks, V1+V2) "
                          "(default: none; give this or --profile)")
    src.add_argument("--profile", metavar="NAME",
                     help=f"synthesise the chain from a profile: {profiles}; blocks are "
                          "synthesised lazily, just ahead of the replay, block for block the "
                          "same as `synth` writes with the same seed (default: none)")
    serve.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                       help="seed for --profile (default: %(default)s)")
    serve.add_argument("--blocks", type=_non_negative_int, default=1800, metavar="N",
                       help="blocks to synthesise with --profile; 0 = unbounded, the chain "
                            "never ends (default: %(default)s)")
    serve.add_argument("--window", type=_non_negative_int, default=None, metavar="N",
                       help="blocks kept in memory behind the head (reorg depth, explorer "
                            "index lag, eth_getLogs look-back); older ones are regenerated "
                            "(--profile) or re-read (--recording) when a query reaches them, "
                            "and transactions older than this are not found by hash "
                            "(default: the config's [chain] window_blocks, else 96)")
    serve.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                       help="time compression: simulated seconds per real second, "
                            f"{MIN_SPEED:g} to {MAX_SPEED:g}; every interval and rate scales "
                            "with it (default: %(default)s)")
    serve.add_argument("--host", type=_host, default="127.0.0.1", metavar="HOST",
                       help="address to listen on (default: %(default)s, loopback)")
    serve.add_argument("--port", type=_port, default=8545, metavar="N",
                       help="port to listen on, 0 = any free port (default: %(default)s)")
    serve.add_argument("--history", type=_path, metavar="PATH",
                       help="JSON-lines history of what the node did (default: none)")
    serve.add_argument("--config", type=_path, metavar="FILE",
                       help="TOML file with simulator settings and faults ([node] profile, "
                            "[chain], [rpc], [lag], [explorer], [[faults]]) "
                            "(default: none, built-in defaults)")
    history = serve.add_mutually_exclusive_group()
    history.add_argument("--history-blocks", type=_non_negative_int, metavar="N",
                         help="serve the first N blocks of the recording as already-published "
                              "history; the replay starts after them (default: the config's "
                              "[chain] history_blocks, else 16)")
    history.add_argument("--start-at", type=_non_negative_int, metavar="BLOCK",
                         help="start the replay at block number BLOCK: every block before it "
                              "is history (default: see --history-blocks)")
    serve.add_argument("--paused", action="store_true",
                       help="listen, but start the replay only on POST /_sim/start "
                            "(default: off)")
    return parser


# -- commands ------------------------------------------------------------------------------
def _write(out: str, header: dict[str, Any], blocks: Iterable[RecordedBlock]) -> Path:
    """Write a recording (compressed as the shipped ones); a refused write is a CliError."""
    from simulator.recording import write_recording
    from simulator.synth import COMPRESS_LEVEL

    try:
        return write_recording(out, header, blocks, compresslevel=COMPRESS_LEVEL)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {os_error_reason(exc)}") from None


def main_synth(args: argparse.Namespace) -> int:
    """``python -m simulator synth``: write a synthetic recording, print a one-line summary."""
    from simulator.import_trades import MAX_BLOCKS
    from simulator.profiles import PROFILES
    from simulator.synth import synthesise_stream

    if args.profile not in PROFILES:
        raise CliError(f"unknown profile {args.profile!r}; known profiles: "
                       f"{', '.join(sorted(PROFILES))}")
    if args.blocks < 1:
        raise CliError("--blocks must be at least 1")
    if args.blocks > MAX_BLOCKS:  # a file of them: serve --profile streams any number
        raise CliError(f"--blocks must be at most {MAX_BLOCKS:,} for a recording file (about "
                       f"11 days of blocks); serve --profile streams without a limit")
    header, blocks = synthesise_stream(PROFILES[args.profile], seed=args.seed, blocks=args.blocks)
    path = _write(args.out, header, blocks)
    print(f"wrote {path}: profile {args.profile}, seed {args.seed}, {args.blocks} blocks "
          f"{header['first_block']}..{header['last_block']}, "
          f"{len(header['wallets'])} trading wallets, {path.stat().st_size} bytes")
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if not math.isnan(value) else "nan"
    return str(value)


def main_inspect(args: argparse.Namespace) -> int:
    """``python -m simulator inspect PATH``: check a recording and print its statistics."""
    from simulator.recording import load_recording
    from simulator.synth import recording_stats

    recording = load_recording(args.recording)
    header = recording.header()
    source = dict(header["source"])
    params = source.pop("profile_params", None)
    print(f"recording   {args.recording}")
    print(f"format      {header['format']} v{header['version']}, chain {header['chain_id']}")
    print(f"source      {source}")
    if params:
        print(f"profile     {params}")
    stats = recording_stats(recording)
    for key, value in stats.items():
        if key == "top_wallets":
            print("top_wallets")
            for wallet, n in value:
                print(f"  {wallet}  {n} OrderFilled")
            continue
        print(f"{key:<30}{_fmt(value)}")
    return 0


def main_import(args: argparse.Namespace) -> int:
    """``python -m simulator import-trades CSV --out PATH``."""
    from simulator.import_trades import import_trades, read_trades_csv

    rows = read_trades_csv(args.csv)  # TradesCsvError: one line, exit 2
    header, blocks = import_trades(rows, seed=getattr(args, "seed", 0),
                                   source_name=Path(args.csv).name)
    path = _write(args.out, header, blocks)
    print(f"wrote {path}: {len(rows)} fills in {header['source']['transactions']} transactions, "
          f"{header['blocks']} blocks {header['first_block']}..{header['last_block']}, "
          f"{len(header['wallets'])} wallets, {path.stat().st_size} bytes")
    return 0


def main_record(args: argparse.Namespace) -> int:
    """``python -m simulator record --rpc URL --from N --to M --out PATH [--rate R]``."""
    from polyvocab.redact import mask_url
    from polyvocab.secret_url import UrlSourceError, http_url_from
    from simulator.record import RecordSettings, RecordStats, record_range
    from simulator.recording import save_recording

    try:
        url = http_url_from(args.rpc, os.environ, flag_name="--rpc")
    except UrlSourceError as exc:
        raise CliError(str(exc)) from None
    masked = mask_url(url)
    settings = RecordSettings(rate_per_s=float(args.rate))
    stats = RecordStats()
    recording = asyncio.run(record_range(url, int(args.from_block), int(args.to_block),
                                         settings, stats=stats))
    path = save_recording(recording, args.out)
    n_logs = sum(len(b.logs) for b in recording.blocks)
    n_txs = sum(len(b.transactions) for b in recording.blocks)
    print(f"recorded blocks {recording.first_block}..{recording.last_block} "
          f"({len(recording.blocks)} blocks, {n_logs} logs, {n_txs} transactions) from "
          f"{masked} -> {path} [{stats.requests} requests, {stats.retries} retries, "
          f"{stats.splits} log-range splits, batches {'yes' if stats.batched else 'no'}]",
          file=sys.stderr)
    return 0


def _load_source(args: argparse.Namespace) -> Any:
    """A streamed block source: nothing is synthesised or read beyond the header yet."""
    from simulator.source import FileSource, SynthSource

    if getattr(args, "profile", None):
        try:
            return SynthSource(args.profile, blocks=args.blocks or None, seed=args.seed)
        except (KeyError, ValueError) as exc:
            raise CliError(f"--profile {args.profile}: {exc.args[0] if exc.args else exc}") \
                from None
    if getattr(args, "recording", None):
        from simulator.synth import SHIPPED_RECORDINGS, shipped_recording_path

        path = args.recording
        if path in SHIPPED_RECORDINGS and not Path(path).exists():
            path = shipped_recording_path(path)
        _not_special(path, "--recording")
        return FileSource(path)
    raise CliError("give --recording PATH or --profile NAME")


async def _serve(args: argparse.Namespace, recording: Any, settings: Any) -> int:
    from simulator.history import SimHistory
    from simulator.recording import RecordingError
    from simulator.server import QuietAcceptErrors, Simulator

    if args.history:
        _not_special(args.history, "--history")
    try:
        history = SimHistory(args.history) if args.history else SimHistory()
    except OSError as exc:  # a directory, a folder that cannot be made, no permission
        raise CliError(f"--history {args.history}: cannot write it "
                       f"({os_error_reason(exc)})") from None
    try:
        sim = Simulator(recording, settings=settings, speed=args.speed, host=args.host,
                        port=args.port, history=history,
                        autostart=not getattr(args, "paused", False))
    except ValueError as exc:  # no blocks; a RecordingError goes up to main()
        history.close()
        if isinstance(exc, RecordingError):
            raise
        raise CliError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(QuietAcceptErrors())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
    except OSError as exc:
        history.close()
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print("READY " + json.dumps(sim.urls, separators=(",", ":")), flush=True)
    try:
        await stop.wait()
    finally:
        try:
            await sim.stop()
        finally:
            history.close()  # the rows written so far reach the file whatever stop() did
    return 0


def main_serve(args: argparse.Namespace) -> int:
    """``python -m simulator serve``: replay until SIGINT/SIGTERM, then stop cleanly."""
    from simulator.faults import FaultPlan
    from simulator.settings import SERVE_HISTORY_BLOCKS, SimSettings, load_config

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_config(args.config) if args.config else SimSettings()
    FaultPlan.parse(list(settings.faults), f"{args.config}: faults")
    recording = _load_source(args)
    header = recording.header()
    history = args.history_blocks
    if args.start_at is not None:
        first, last = header.get("first_block"), header.get("last_block")
        if not isinstance(first, int) or args.start_at < first or (
                isinstance(last, int) and args.start_at > last):
            raise CliError(f"--start-at {args.start_at}: the recording has blocks "
                           f"{first}..{'' if last is None else last}")
        history = args.start_at - first
    if history is None:
        history = (settings.history_blocks if settings.history_blocks is not None
                   else SERVE_HISTORY_BLOCKS)
    window = args.window if args.window is not None else settings.window_blocks
    if window is not None and window < 1:
        raise CliError("--window must be at least 1")
    settings = dataclasses.replace(settings, history_blocks=history, window_blocks=window)
    return asyncio.run(_serve(args, recording, settings))


_COMMANDS = {"synth": main_synth, "import-trades": main_import, "record": main_record,
             "inspect": main_inspect, "serve": main_serve}


def main(argv: Sequence[str] | None = None) -> int:
    from polyvocab.redact import redact
    from simulator.recording import RecordingError

    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (CliError, SimulatorError, RecordingError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): not an error
        return reader_gone()
    except OSError as exc:  # a file or folder the command must write or read: one line
        print(f"error: {redact(file_error_text(exc))}", file=sys.stderr)
        return 2
    except RecursionError:  # json/tomllib of [[[[...]]]] in a file simulator.source reads
        where = getattr(args, "recording", None) or getattr(args, "config", None) or "input"
        print(f"error: {redact(str(where))}: nested too deep to read (a damaged file?)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
