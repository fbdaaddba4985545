"""The command lines' argument parser: a mistake is one line and exit code 2.

argparse prints its whole usage block before the error; every command here says
``[python -m <tool> <command>: ]error: <what>`` on one line instead (redacted: a flag's
value may hold a key), and ``--help`` shows the usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import NoReturn

from polyvocab.redact import redact

__all__ = ["HARNESS_MODULES", "OneLineParser", "PlainParser", "missing_harness",
           "reader_gone"]


class OneLineParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` whose errors are one redacted line, exit code 2.
    Pass it as ``parser_class`` to ``add_subparsers`` so the sub-commands' are too.

    ``named``: the line starts with the command (``python -m reports build: error: ...``);
    a tool whose own errors say ``error: ...`` sets it False so that both look alike."""

    named = True

    def error(self, message: str) -> NoReturn:
        where = f"{self.prog}: " if self.named else ""
        self.exit(2, f"{where}error: {redact(message)}\n")


class PlainParser(OneLineParser):
    """:class:`OneLineParser` whose lines are ``error: ...`` (the simulator, experiments)."""

    named = False


def reader_gone() -> int:
    """What a command returns when its output's reader went away (``| head``): not an
    error. Output still buffered goes to /dev/null, so the interpreter's own flush at exit
    does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


#: what ``pip install '.[harness]'`` adds (pyproject's ``harness`` extra) and the
#: experiments and reports import; the monitor and the pilot run without any of it
HARNESS_MODULES = frozenset({"pandas", "pyarrow", "matplotlib", "jinja2", "looptime",
                             "numpy"})


def missing_harness(exc: ModuleNotFoundError, command: str) -> int:
    """A command that needs a module of the harness extra, on a monitor-only install
    (``pip install .``): one line naming the extra to install, exit code 2. Any other
    missing module is a bug, raised again as it is."""
    root = (exc.name or "").split(".")[0]
    if root not in HARNESS_MODULES:
        raise exc
    print(f"{command}: error: {root} is not installed: the experiments and reports need the "
          "harness extra (pip install '.[harness]'); the monitor and the pilot run without it",
          file=sys.stderr)
    return 2
