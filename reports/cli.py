"""Command line: ``python -m reports build RUN_DIR`` and ``python -m reports compare A B``.

A user mistake (bad arguments, a path that is not a run, a bad criteria file) is one
line on stderr and exit code 2. ``build`` exits 0 whatever the verdict (the verdict is
the report's content) unless ``--exit-code`` makes the exit code follow the verdict, for a
CI job that gates on it: GO 0, NO-GO 1, MARGINAL 3, INCONCLUSIVE 4 (2 stays "usage
error"). ``build --json FILE`` also writes the verdict, its reasons and every gate with
its confidence bound as strict JSON (a number that is not finite is written as null, never
``NaN`` or ``Infinity``). ``compare --fail-on-regression`` exits 1 on a regression (a
metric worse beyond the tolerance, a scenario no longer ok or gone, a worse verdict).
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polyvocab.cli_args import OneLineParser, missing_harness, reader_gone
from polyvocab.small_files import file_error_text, is_special
from polyvocab.version import package_version
from reports.criteria import CriteriaError, load_criteria
from reports.files import write_whole

__all__ = ["main"]


def _tolerance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= v < 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10 (a fraction), got {text!r}")
    return v


def _path(text: str) -> str:
    """A path that names something (argparse type): ``--json ''`` wrote nothing and said
    nothing, ``--out ''`` wrote the default, a run ``''`` was the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _criteria(path: str | None) -> Any:
    """:func:`load_criteria`, a FIFO refused (its open waited for a writer) and a file
    nested too deep for ``tomllib`` (a RecursionError traceback) one line."""
    if path is not None and is_special(path):
        raise CriteriaError(f"criteria file {path} unreadable: not a regular file")
    try:
        return load_criteria(path)
    except RecursionError:
        raise CriteriaError(f"criteria file {path} is not valid TOML: nested too deep") \
            from None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m reports", description="Migration reports from the run store.")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    b = sub.add_parser("build", help="write RUN_DIR/report.html with the verdict")
    b.add_argument("run_dir", type=_path, metavar="RUN_DIR",
                   help="results/<run-id> or results/latest")
    b.add_argument("--criteria", type=_path, metavar="FILE",
                   help="criteria TOML (default: built in)")
    b.add_argument("--out", type=_path, metavar="FILE",
                   help="where to write (default RUN_DIR/report.html)")
    b.add_argument("--json", type=_path, metavar="FILE", dest="json_out",
                   help="also write the verdict, reasons and every gate (with its bound) "
                        "as JSON to FILE ('-' for stdout) (default: none)")
    b.add_argument("--exit-code", action="store_true",
                   help="exit with the verdict: GO 0, NO-GO 1, MARGINAL 3, INCONCLUSIVE 4 "
                        "(default: 0 whatever the verdict)")
    c = sub.add_parser("compare", help="compare two runs metric by metric")
    c.add_argument("run_a", type=_path, metavar="RUN_A", help="the baseline run directory")
    c.add_argument("run_b", type=_path, metavar="RUN_B", help="the run compared with it")
    c.add_argument("--criteria", type=_path, metavar="FILE",
                   help="criteria TOML (default: built in)")
    c.add_argument("--out", type=_path, metavar="FILE",
                   help="HTML output (default RUN_B/compare.html)")
    c.add_argument("--tolerance", type=_tolerance, default=0.10,
                   help="relative change counted as a regression (default 0.10)")
    c.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 on a regression: a metric worse beyond the tolerance, a "
                        "scenario ok in RUN_A and not ok or gone in RUN_B, a worse verdict "
                        "(default: exit 0)")
    return p


def _build(args: argparse.Namespace) -> int:
    from reports.render import write_report

    criteria = _criteria(args.criteria)
    from reports.load import load_run  # pandas: the harness extra

    run = load_run(args.run_dir)
    report, path = write_report(run, criteria, Path(args.out) if args.out else None)
    if args.json_out:
        text = strict_json(verdict_document(report.verdict, run)) + "\n"
        if args.json_out == "-":
            _say([text.removesuffix("\n")], sys.stdout)
        else:
            write_whole(args.json_out, text)
    _say([report.verdict.line, *(f"  - {r}" for r in report.verdict.reasons[1:]),
          f"report: {path}"], sys.stderr if args.json_out == "-" else sys.stdout)
    return EXIT_CODES[report.verdict.verdict.value] if args.exit_code else 0


def _say(lines: Sequence[str], stream: Any) -> None:
    """Print ``lines``; a reader gone (``| head``) is not an error and changes no exit
    code: ``build --exit-code | head -1`` of a NO-GO exited 2 ('error: Broken pipe'),
    and 0 would have read as GO."""
    try:
        for line in lines:
            print(line, file=stream)
        stream.flush()
    except BrokenPipeError:
        reader_gone()


EXIT_CODES = {"GO": 0, "NO-GO": 1, "MARGINAL": 3, "INCONCLUSIVE": 4}


def finite(value: Any) -> Any:
    """``value`` with every number that is not finite (NaN, infinity) turned into None, in
    dicts, lists and tuples too; numbers of other types (numpy's) become int or float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_json(doc: Any) -> str:
    """``doc`` as strict JSON (RFC 8259: no NaN or Infinity, which ``json.dumps`` writes by
    default and most parsers refuse); what is not JSON at all is written as its text."""
    return json.dumps(finite(doc), indent=2, default=str, allow_nan=False)


def verdict_document(verdict: Any, run: Any) -> dict[str, Any]:
    """The verdict as data: what a CI job or a dashboard reads (write it with
    :func:`strict_json`)."""
    from reports.load import run_clock
    from reports.verdict import LATENCY_BOUND_CAVEAT
    return {
        "run_id": run.run_id,
        "verdict": verdict.verdict.value,
        "score": verdict.score,
        # the score had every scored check left undecided by its bound passed
        "score_best": verdict.score_best,
        "reasons": list(verdict.reasons),
        "clock": run.manifest.get("clock", run_clock(run)),
        "seeds": run.manifest.get("seeds"),
        "gates": [{"scenario": c.scenario, "mode": c.mode, "name": c.name, "expr": c.expr,
                   "source": c.source, "critical": c.critical, "weight": c.weight,
                   "scored": c.scored, "status": c.status, "passed": c.passed,
                   "value": c.value, "note": c.note, "bound": c.bound,
                   "fault_events": c.fault_events}
                  for c in verdict.checks],
        # said next to the latency quantiles' bounds, as in the report's gates table
        "caveats": [LATENCY_BOUND_CAVEAT] if any(
            isinstance(c.bound, dict) and "quantile" in c.bound for c in verdict.checks)
        else [],
    }


def _compare(args: argparse.Namespace) -> int:
    from reports.compare import compare_runs, render_compare, text_table

    criteria = _criteria(args.criteria)
    from reports.load import load_run  # pandas: the harness extra

    run_a, run_b = load_run(args.run_a), load_run(args.run_b)
    cmp = compare_runs(run_a, run_b, criteria, tolerance=args.tolerance)
    out = Path(args.out) if args.out else run_b.path / "compare.html"
    write_whole(out, render_compare(cmp))
    _say([text_table(cmp), f"report: {out}"], sys.stdout)
    return 1 if args.fail_on_regression and cmp.regressions else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from reports.load import RunStoreError  # pandas: the harness extra
    except ModuleNotFoundError as exc:  # a monitor-only install (pip install .)
        return missing_harness(exc, "python -m reports")
    try:
        return _build(args) if args.command == "build" else _compare(args)
    except (RunStoreError, CriteriaError) as exc:
        print(f"python -m reports: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): was "error: Broken pipe", 2
        return reader_gone()
    except OSError as exc:
        print(f"python -m reports: error: {file_error_text(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
