"""``experiments reconcile``'s arguments: every number checked before anything runs (a
chunk of 0 blocks looped forever), and the RPC URL, which carries the provider's key,
may come from a file named in the environment instead of argv."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from experiments.cli import main
from polyvocab.redact import redact

URL = "https://polygon-mainnet.example/v2/k3y-SECRET-0123456789"


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--chunk-blocks", "0", "at least 1"), ("--chunk-blocks", "-3", "at least 1"),
    ("--rate", "0", "more than 0"), ("--rate", "-1", "more than 0"),
    ("--rate", "inf", "finite"), ("--wait", "nan", "finite"), ("--wait", "-1", "0 or more"),
    ("--grace", "x", "not a number"), ("--finality-depth", "-1", "at least 0"),
    ("--actionable-window", "0", "more than 0"), ("--end-block", "-2", "at least 0"),
    ("--timestamp-offset-s", "nan", "finite")])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, flag: str, value: str,
                                               words: str) -> None:
    argv = ["reconcile", str(tmp_path), "--rpc-url", "http://127.0.0.1:9", flag, value]
    with pytest.raises(SystemExit) as info, contextlib.redirect_stderr(io.StringIO()) as err:
        main(argv)
    assert info.value.code == 2
    assert words in err.getvalue() and flag in err.getvalue()


@pytest.mark.parametrize(("url", "words"), [("ftp://host/KEY", "(a ftp: URL)"),
                                            ("not a url KEY", "(no scheme)")])
def test_a_url_that_is_not_http_is_one_line_without_the_url(
        tmp_path: Path, url: str, words: str) -> None:
    code, err = _run(["reconcile", str(tmp_path), "--rpc-url", url])
    assert code == 2 and "--rpc-url" in err and words in err
    assert "KEY" not in err  # a URL's key is never echoed


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``reconcile`` itself replaced: what the CLI would hand it."""
    import experiments.reconcile as reconcile_mod

    seen: dict[str, Any] = {}

    def fake(store: Any, opts: Any, **kw: Any) -> Any:
        seen["opts"] = opts
        raise reconcile_mod.ReconcileError("stop here")

    monkeypatch.setattr(reconcile_mod, "reconcile", fake)
    for name in ("RPC_URL_FILE", "RPC_URL"):
        monkeypatch.delenv(name, raising=False)
    return seen


def test_the_url_comes_from_rpc_url_file_and_is_redacted_from_then_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: dict[str, Any]) -> None:
    secret = tmp_path / "rpc_url"
    secret.write_text(URL + "\n", encoding="utf-8")
    monkeypatch.setenv("RPC_URL_FILE", str(secret))
    code, err = _run(["reconcile", str(tmp_path)])
    assert code == 2 and "stop here" in err
    assert captured["opts"].rpc_url == URL
    assert "k3y-SECRET-0123456789" not in redact(f"GET {URL} failed")


def test_the_flag_wins_then_the_file_then_rpc_url(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  captured: dict[str, Any]) -> None:
    secret = tmp_path / "rpc_url"
    secret.write_text("https://from-file.example/\n", encoding="utf-8")
    monkeypatch.setenv("RPC_URL", "https://from-env.example/")
    _run(["reconcile", str(tmp_path)])
    assert captured["opts"].rpc_url == "https://from-env.example/"
    monkeypatch.setenv("RPC_URL_FILE", str(secret))
    _run(["reconcile", str(tmp_path)])
    assert captured["opts"].rpc_url == "https://from-file.example/"
    _run(["reconcile", str(tmp_path), "--rpc-url", "http://127.0.0.1:9"])
    assert captured["opts"].rpc_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(("content", "words"), [
    (None, "cannot read"), ("", "is empty"), ("ftp://h/KEY\n", "(a ftp: URL)")])
def test_a_missing_empty_or_wrong_url_file_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: dict[str, Any],
        content: str | None, words: str) -> None:
    path = tmp_path / "rpc_url"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("RPC_URL_FILE", str(path))
    code, err = _run(["reconcile", str(tmp_path)])
    assert code == 2 and words in err and "RPC_URL_FILE" in err and "KEY" not in err
    assert "opts" not in captured


def test_no_url_at_all_says_where_to_put_it(tmp_path: Path,
                                            captured: dict[str, Any]) -> None:
    code, err = _run(["reconcile", str(tmp_path)])
    assert code == 2 and "RPC_URL_FILE" in err and "--rpc-url" in err
