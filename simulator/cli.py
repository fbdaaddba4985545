"""Command line of the mock Polygon node.

Each subcommand lives in its own module; this file only parses arguments and turns
:class:`CliError` (and recording errors) into one clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["CliError", "build_parser", "main"]


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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator",
                                     description="A local mock Polygon node.")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="synthesise a recording from a calibrated profile")
    synth.add_argument("--profile", required=True)
    synth.add_argument("--blocks", type=_non_negative_int, required=True)
    synth.add_argument("--seed", type=_non_negative_int, default=0)
    synth.add_argument("--out", required=True)

    imp = sub.add_parser("import-trades", help="turn a Data-API /trades CSV into a recording")
    imp.add_argument("csv")
    imp.add_argument("--out", required=True)
    imp.add_argument("--seed", type=_non_negative_int, default=0)

    rec = sub.add_parser("record", help="record a block range from a JSON-RPC node")
    rec.add_argument("--rpc", required=True, help="HTTP JSON-RPC URL")
    rec.add_argument("--from", dest="from_block", type=_non_negative_int, required=True)
    rec.add_argument("--to", dest="to_block", type=_non_negative_int, required=True)
    rec.add_argument("--out", required=True)
    rec.add_argument("--rate", type=_positive_float, default=10.0,
                     help="max requests per second (default 10)")

    ins = sub.add_parser("inspect", help="check a recording and print its statistics")
    ins.add_argument("recording")

    serve = sub.add_parser("serve", help="replay a recording over JSON-RPC (WS + HTTP) "
                                         "and an Etherscan-V2 style explorer")
    src = serve.add_mutually_exclusive_group()
    src.add_argument("--recording")
    src.add_argument("--profile")
    serve.add_argument("--seed", type=_non_negative_int, default=0)
    serve.add_argument("--blocks", type=_non_negative_int, default=1800,
                       help="blocks to synthesise with --profile (default 1800)")
    serve.add_argument("--speed", type=_positive_float, default=1.0)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_non_negative_int, default=8545)
    serve.add_argument("--history")
    serve.add_argument("--config", help="TOML file with simulator settings and faults")
    serve.add_argument("--paused", action="store_true",
                       help="listen, but start the replay only on POST /_sim/start")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from simulator.recording import RecordingError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "synth":
            from simulator.synth import main_synth
            return main_synth(args)
        if args.command == "import-trades":
            from simulator.import_trades import main_import
            return main_import(args)
        if args.command == "record":
            from simulator.record import main_record
            return main_record(args)
        if args.command == "inspect":
            from simulator.synth import main_inspect
            return main_inspect(args)
        from simulator.server import main_serve
        return main_serve(args)
    except (CliError, RecordingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
