"""Help that helps: every flag of every command says what it does and its default (and,
for the monitor's settings, its environment variable); every command has --version."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable, Iterator, Sequence

import pytest

import experiments.cli
import monitor.cli
import reports.cli
import simulator.cli
from monitor.config import ENV_ALIASES, ENV_PREFIX, Settings

COMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser],
                          Callable[[Sequence[str] | None], int]]] = {
    "monitor": (monitor.cli.build_parser, monitor.cli.main),
    "simulator": (simulator.cli.build_parser, simulator.cli.main),
    "experiments": (experiments.cli.build_parser, experiments.cli.main),
    "reports": (reports.cli.build_parser, reports.cli.main),
}


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def run_help(main: Callable[[Sequence[str] | None], int], argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0, argv
    return out.getvalue()


CASES = [(cmd, sub) for cmd, (build, _) in COMMANDS.items() for sub, _p in subcommands(build())]


@pytest.mark.parametrize("command,sub", CASES, ids=[f"{c} {s}" for c, s in CASES])
def test_no_flag_is_bare(command: str, sub: str) -> None:
    """`<command> <sub> --help` runs, and each of its flags has a text saying what it does
    and its default (or that it is required)."""
    build, main = COMMANDS[command]
    text = run_help(main, [sub, "--help"])
    parser = dict(subcommands(build()))[sub]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert action.help and action.help.strip(), f"{command} {sub} {name}: bare"
        if action.option_strings:
            assert name in text
            help_text = action.help.lower()
            assert "default" in help_text or "required" in help_text, (
                f"{command} {sub} {name}: no default in {action.help!r}")


@pytest.mark.parametrize("sub", ["run", "pilot"])
def test_monitor_settings_flags_name_their_environment_variable(sub: str) -> None:
    text = " ".join(run_help(monitor.cli.main, [sub, "--help"]).split())
    for name in Settings.model_fields:
        if name == "speed":
            assert "never from the environment" in text
            continue
        assert ENV_PREFIX + name.upper() in text, name
        if name in ENV_ALIASES:
            assert f"{ENV_PREFIX + name.upper()} or {ENV_ALIASES[name]}" in text, name
    # the description is the docs table's text, so one place says what a setting does
    assert "master switch: false sends every wallet back to polling" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_version(command: str) -> None:
    _, main = COMMANDS[command]
    text = run_help(main, ["--version"])
    assert text.startswith("python -m " + command + " ") and text.strip().split()[-1]


def test_the_guides_settings_table_says_what_the_help_says() -> None:
    """docs/websocket_migration.md's "what it does" column is each Field's description
    (the text `monitor run --help` shows), so there is one text per setting."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "websocket_migration.md")
    section = guide.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    rows = re.findall(r"^\|\s*`([a-z_0-9]+)`\s*\|[^|]*\|[^|]*\|\s*(.*?)\s*\|\s*$",
                      section.split("\n## ", 1)[0], flags=re.M)
    assert rows
    for name, what in rows:
        assert Settings.model_fields[name].description == what, name


def test_make_notebook_opens_the_analysis_with_the_projects_environment() -> None:
    """`make notebook` exists, uses .venv's JupyterLab on results/latest, and refuses in
    CI; jupyterlab is in the notebook extra."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    make = (root / "Makefile").read_text(encoding="utf-8")
    target = make.split("\nnotebook:", 1)[1].split("\n\n", 1)[0]
    assert "notebooks/analysis.ipynb" in target and "$(BIN)/python -m jupyterlab" in target
    assert "RUN_DIR ?= results/latest" in make and "$$CI" in target
    assert "notebook" not in make.split("\ntest:", 1)[1].split("\n", 1)[0]
    assert '"jupyterlab' in (root / "pyproject.toml").read_text(encoding="utf-8")
