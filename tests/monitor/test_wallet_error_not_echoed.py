"""A wallet that is no address is not repeated whole in the error unless it looks like a
mistyped address (``0x``, at most 50 characters): the explorer key's file given as
``--wallets-file`` by mistake printed the key to the terminal and the journal (even with
the same file named by EXPLORER_API_KEY_FILE: the wallets are read first), and a wrong
file of one 50 MB line printed 50 MB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import normalise_address

ROOT = Path(__file__).resolve().parents[2]
KEY = "MyExplorerKeyABCDEF123456"


@pytest.mark.parametrize("text", [KEY, "x" * 1_000_000, "0x" + "ab" * 100])
def test_a_value_that_is_no_mistyped_address_is_not_repeated(text: str) -> None:
    with pytest.raises(ValueError) as err:
        normalise_address(text, "wallet")
    assert text not in str(err.value) and len(str(err.value)) < 200
    assert f"a value of {len(text):,} characters" in str(err.value)


@pytest.mark.parametrize("text", ["0xzz", "0x" + "1" * 39])
def test_a_mistyped_address_is_shown_to_be_fixed(text: str) -> None:
    with pytest.raises(ValueError) as err:
        normalise_address(text, "wallet")
    assert repr(text) in str(err.value)


def test_the_key_file_given_as_the_wallets_file_is_not_printed(tmp_path: Path) -> None:
    key = tmp_path / "explorer.key"
    key.write_text(KEY + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "EXPLORER_"))}
    env["EXPLORER_API_KEY_FILE"] = str(key)
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--mode", "polling", "--explorer-url",
         "http://127.0.0.1:9/api", "--wallets-file", str(key), "--db",
         str(tmp_path / "s.db")], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert KEY not in res.stderr + res.stdout, res.stderr
    assert f"{key}:1: wallet (a value of {len(KEY)} characters, no 0x)" in res.stderr
