"""What the README, the docs and examples/ tell a trader to type, checked against the code:
every command they show parses with the real parser, every repository file they name
exists, the pilot's systemd unit is one the pilot accepts, and the bot example says a bad
setting in one line."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_checks import ROOT, error_line

import experiments.cli
import monitor.cli
import reports.cli
import simulator.cli
from monitor.config import load_settings
from monitor.pilot import _liveness

DOCS = ["README.md", "docs/pilot.md", "docs/websocket_migration.md", "docs/contracts.md"]
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "monitor": monitor.cli.build_parser, "simulator": simulator.cli.build_parser,
    "experiments": experiments.cli.build_parser, "reports": reports.cli.build_parser,
}
_COMMAND = re.compile(r"(?:^|\s)((?:\.venv/bin/)?python -m (?:monitor|simulator|experiments|"
                      r"reports)\b.*|polymarket-monitor\b.*)")
UNIT = ROOT / "examples" / "monitor-pilot.service"
WALLET = "0x0cd93801f6b01cd8f595a5e3f5c38702851f74d8"


def _doc_commands(name: str) -> Iterator[tuple[str, bool]]:
    """(command, from a code block) for every command line a doc shows."""
    text = (ROOT / name).read_text(encoding="utf-8")
    lines = [(line, True) for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    lines += [(span, False) for span in re.findall(r"`([^`]+)`", prose)]
    for line, block in lines:
        for part in re.split(r"&&|;", line):
            m = _COMMAND.search(part)
            if m:
                cmd = re.split(r"\s#\s", m.group(1))[0]
                yield re.sub(r"\s*\([^)]*\)\s*$", "", cmd).strip(), block


def _argv(cmd: str) -> tuple[str, list[str]]:
    words = shlex.split(cmd)
    if words[0] == "polymarket-monitor":
        return "monitor", words[1:]
    return words[2], words[3:]  # python -m <module> ...


CASES = [(doc, cmd, block) for doc in DOCS for cmd, block in _doc_commands(doc)]


def test_the_docs_show_commands() -> None:
    assert len([c for c in CASES if c[2]]) >= 10  # the extraction found the code blocks


@pytest.mark.parametrize("doc,cmd,block", CASES, ids=[f"{d}: {c}" for d, c, _ in CASES])
def test_every_command_a_doc_shows_parses(doc: str, cmd: str, block: bool) -> None:
    """The flags, subcommands and positionals of each command in the docs are the ones
    the command takes (a renamed flag left in a runbook fails here, not at 3 a.m.)."""
    module, argv = _argv(cmd)
    parser = PARSERS[module]()
    if not block and len(argv) <= 1 and not any(a.startswith("-") for a in argv):
        # a command named in prose (`python -m reports build`): the subcommand exists
        subs = {n for a in parser._actions if isinstance(a, argparse._SubParsersAction)
                for n in a.choices}
        assert not argv or argv[0] in subs, cmd
        return
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version exit 0; a bad flag 2
        assert exc.code == 0 and {"--help", "--version"} & set(argv), (doc, cmd)


_PATH = re.compile(r"`((?:polyvocab|simulator|monitor|experiments|reports|tests|docs|examples|"
                   r"notebooks|benchmarks)/[A-Za-z0-9_./-]+?)(?:::([A-Za-z0-9_]+))?`")


@pytest.mark.parametrize("doc", [*DOCS, "examples/monitor-pilot.service"])
def test_every_file_a_doc_names_exists(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = _PATH.findall(text)
    assert named or doc == "examples/monitor-pilot.service"
    for path, test in named:
        if "*" in path or "<" in path:
            continue
        assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), (doc, test)


def _unit() -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """The unit's [Service] keys, its Environment= (the commented optional lines too), and
    the ExecStart argv after the program."""
    text = UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    keys: dict[str, list[str]] = {}
    env: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"#?\s*Environment=(\w+)=(\S+)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
        elif "=" in line and not line.lstrip().startswith(("#", "[")):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    exec_words = shlex.split(keys["ExecStart"][0])
    assert exec_words[0].endswith("/.venv/bin/polymarket-monitor")
    return keys, env, exec_words[1:]


def test_the_pilot_unit_is_a_pilot_the_code_accepts(tmp_path: Path) -> None:
    """examples/monitor-pilot.service: its ExecStart parses as `pilot`, its store is the
    one directory it may write, and every variable it sets (the Telegram ones included,
    once uncommented) is read by the settings: URLs and key from their files."""
    keys, env, argv = _unit()
    ns = monitor.cli.build_parser().parse_args(argv)
    assert ns.command == "pilot" and ns.action == "run"
    assert str(ns.store) in keys["ReadWritePaths"]
    assert str(ns.store) == "/var/lib/" + keys["StateDirectory"][0]
    assert keys["RestartPreventExitStatus"] == ["2"] and keys["UMask"] == ["0077"]
    assert keys["StateDirectoryMode"] == ["0700"]  # systemd's default is 0755
    files = {"MONITOR_WEBSOCKET_URL_FILE": "wss://polygon.example/v2/KEYKEYKEYKEYKEYKEY1",
             "MONITOR_RPC_URL_FILE": "https://polygon.example/v2/KEYKEYKEYKEYKEYKEY1",
             "EXPLORER_API_KEY_FILE": "EXPLORERKEY123", "MONITOR_TELEGRAM_TOKEN_FILE": "1:TOK"}
    assert set(files) <= set(env)
    local = dict(env)
    for var, value in files.items():
        (tmp_path / var).write_text(value + "\n", encoding="utf-8")
        local[var] = str(tmp_path / var)
    s = load_settings({"wallets": [WALLET]}, environ=local)
    assert s.websocket_url == files["MONITOR_WEBSOCKET_URL_FILE"]
    assert s.rpc_url == files["MONITOR_RPC_URL_FILE"]
    assert s.explorer_api_key is not None and \
        s.explorer_api_key.get_secret_value() == files["EXPLORER_API_KEY_FILE"]
    assert s.telegram_token is not None and s.telegram_chat_id == env["MONITOR_TELEGRAM_CHAT_ID"]
    assert s.log_level == env["MONITOR_LOG_LEVEL"]


def test_a_key_file_the_unit_cannot_read_is_exit_2_which_the_unit_does_not_restart(
        tmp_path: Path) -> None:
    """docs/pilot.md: a key file the service user cannot read stops the pilot with one
    line and exit 2, and RestartPreventExitStatus=2 keeps systemd from looping on it."""
    _, env, argv = _unit()
    wallets = tmp_path / "wallets.txt"
    wallets.write_text(WALLET + "\n", encoding="utf-8")
    argv = [tmp_path / "store" if a == "/var/lib/monitor-pilot" else
            wallets if a.endswith("wallets.txt") else a for a in argv]
    run_env = {k: v for k, v in env.items() if "TELEGRAM" not in k}
    for var in ("MONITOR_RPC_URL_FILE", "EXPLORER_API_KEY_FILE"):
        (tmp_path / var).write_text("http://127.0.0.1:9/\n", encoding="utf-8")
        run_env[var] = str(tmp_path / var)
    run_env["MONITOR_WEBSOCKET_URL_FILE"] = str(tmp_path / "absent" / "ws_url")
    res = subprocess.run([sys.executable, "-m", "monitor", *map(str, argv)], cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", **run_env}, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    line = error_line(res, 2)
    assert "websocket_url_file: cannot read" in line and "No such file" in line


def test_pilot_status_stalls_after_three_beats_and_at_least_a_minute() -> None:
    """docs/pilot.md: RUNNING BUT STALLED after three beats without one, at least 60 s."""
    assert "three beats (at least 60 s" in (ROOT / "docs/pilot.md").read_text(encoding="utf-8")
    sessions = [{"stopped_wall_ns": None}]
    now = 10**18

    def stalled(age_s: float, beat: float) -> bool:
        return bool(_liveness(sessions, now - int(age_s * 1e9), now, True, beat)["stalled"])

    assert not stalled(30, 5.0) and stalled(61, 5.0)  # 3 beats = 15 s: the minute counts
    assert not stalled(80, 30.0) and stalled(91, 30.0)


def _example(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}  # no MONITOR_* URLs from the caller's environment
    return subprocess.run([sys.executable, str(ROOT / "examples" / "bot_integration.py"),
                           *args], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("wallet,says", [
    ("0xzz", "wallet '0xzz' is not a 20-byte hex address"),
    (WALLET, "websocket mode needs the provider's URLs"),
])
def test_the_bot_example_says_a_bad_setting_in_one_line(tmp_path: Path, wallet: str,
                                                         says: str) -> None:
    """examples/bot_integration.py: a wallet that is no address, or no provider URL, was a
    traceback (and an 'Unclosed client session' warning); now one line, exit 2."""
    res = _example("--wallet", wallet, "--state", str(tmp_path / "state"))
    assert says in error_line(res, 2)


def test_every_test_a_doc_names_is_a_test() -> None:
    """A test or benchmark a doc cites by name (`test_one_trade_durably_delivered`) is one:
    a renamed test leaves a doc pointing at nothing."""
    defined = {m for f in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]
               for m in re.findall(r"^(?:async )?def (test_\w+)\(", f.read_text(
                   encoding="utf-8"), flags=re.M)}
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for name in re.findall(r"`(?:[\w/.]+::)?(test_\w+)`", text):
            assert name in defined, f"{doc} cites {name}, which no test defines"


def test_every_key_the_pilot_keeps_in_its_store_meta_is_in_the_contract() -> None:
    """docs/contracts.md "Pilot store" lists every `meta` key the pilot writes (it listed
    four of seven: `exchanges`, which reconcile reads, `beat_s` and `block_interval` were
    missing)."""
    written = set(re.findall(r"set_meta\(\"(\w+)\"", (ROOT / "monitor" / "pilot.py").read_text(
        encoding="utf-8")))
    assert {"start_block", "exchanges"} <= written
    contract = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    meta = contract.split("## Pilot store", 1)[1].split("`sessions`", 1)[0]
    for key in written:
        assert f"`{key}`" in meta, f"docs/contracts.md: pilot meta key {key} not documented"


def test_the_contracts_simulator_config_example_is_one_serve_accepts(tmp_path: Path) -> None:
    """docs/contracts.md "Simulator config": the example TOML is what `simulator serve
    --config` takes (it was refused: ws_drop has no `code`, and at + every + rate_per_hour
    in one entry is 'give exactly one of at, every, random')."""
    from simulator.faults import FaultPlan
    from simulator.settings import load_config

    section = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8").split(
        "## Simulator config", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, flags=re.S)
    assert example is not None
    path = tmp_path / "sim.toml"
    path.write_text(example.group(1), encoding="utf-8")
    settings = load_config(path)
    plan = FaultPlan.parse(list(settings.faults), "faults")
    assert len(plan.entries) == len(settings.faults) >= 1


def test_the_runbook_creates_every_file_the_unit_reads_before_its_chown() -> None:
    """docs/pilot.md section 1 writes the files as root, then `chown`s them to the service
    user; every /etc/monitor-pilot file the unit names (wallets.txt too: it was only
    mentioned in section 2, after the chown, so following the runbook in order left it
    root's 0600 and the pilot stopped with 'wallets_file: cannot read') is written before
    that chown."""
    runbook = (ROOT / "docs" / "pilot.md").read_text(encoding="utf-8")
    block = runbook.split("## 1. Keys", 1)[1].split("```", 2)[1]
    before_chown = block.split("\nchown ", 1)[0]
    written = set(re.findall(r">\s*(\w[\w.]*)\s*$", before_chown, flags=re.M))
    assert "chown monitor:monitor /etc/monitor-pilot/*" in block
    named = set(re.findall(r"/etc/monitor-pilot/([\w.]+)", UNIT.read_text(encoding="utf-8")))
    assert named and named <= written, f"not written before the chown: {named - written}"


def test_the_ci_gate_exit_codes_in_the_readme_are_the_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = dict((v, int(c)) for c, v in re.findall(
        r"(\d) (GO|NO-GO|MARGINAL|INCONCLUSIVE)\b", readme.split("# CI gate", 1)[1]
        .split("\n", 1)[0]))
    assert said == reports.cli.EXIT_CODES


def test_the_ready_wait_the_contract_states_is_the_commands() -> None:
    """docs/contracts.md "Readiness": READY waits for the feed at most 15 s (both commands)."""
    import monitor.pilot_cli

    text = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    readiness = text.split("## Readiness", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"or after (\d+) s without", readiness)
    assert m is not None
    assert float(m.group(1)) == monitor.cli._READY_WAIT_S == monitor.pilot_cli._READY_WAIT_S


def test_the_defaults_the_contract_gives_in_passing_are_the_settings() -> None:
    """docs/contracts.md names monitor settings with their default in brackets
    (`heartbeat_interval` (30)); tests/reports/test_docs.py checks only the names there."""
    from monitor.config import Settings

    text = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    checked = 0
    for title in ("## Monitor settings", "## Monitor: extensions"):
        section = text.split(title, 1)[1].split("\n## ", 1)[0]
        for name, said in re.findall(r"`([a-z_]+)`\s+\((\d+(?:\.\d+)?|none|auto)[;,)\s]",
                                     section):
            if name not in Settings.model_fields:
                continue
            default = Settings.model_fields[name].default
            ok = (default is None if said == "none" else str(default) == said
                  if said == "auto" else float(said) == float(default))
            assert ok, f"docs/contracts.md: {name} ({said}), the default is {default!r}"
            checked += 1
    assert checked >= 15


def test_the_settings_the_guide_says_come_from_files_are_those_that_do() -> None:
    """docs/websocket_migration.md said 'any URL or secret' can come from `<NAME>_FILE`:
    MONITOR_EXPLORER_URL_FILE was silently not read (the explorer stayed Etherscan). The
    guide names the settings that do, which are FILE_SETTINGS."""
    from monitor.config import FILE_SETTINGS

    guide = (ROOT / "docs" / "websocket_migration.md").read_text(encoding="utf-8")
    sentence = re.search(r"the four settings that carry a key, (.*?), can also come from a "
                         r"file named by `<NAME>_FILE`", guide)
    assert sentence is not None
    assert set(re.findall(r"`(\w+)`", sentence.group(1))) == set(FILE_SETTINGS)


def test_the_bot_examples_help_says_what_each_flag_is(tmp_path: Path) -> None:
    """`python examples/bot_integration.py --help` cut its description mid-sentence ('every
    trade and retraction reaches the') and showed every flag but --speed bare."""
    res = _example("--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "reaches the bot's executor exactly once, across restarts." in text
    for flag in ("--wallet ADDR a wallet", "--state DIR directory", "--ws-url URL provider",
                 "--rpc-url URL provider", "--explorer-url URL explorer", "--start-block N"):
        assert flag in text, flag
