"""``--executor dask://user:PASSWORD@host:port`` is refused without repeating the
password: it was tried as a host name and echoed whole ('cannot reach the Dask scheduler
at user:PASSWORD@127.0.0.1:1'), on the terminal and in any CI log."""

from __future__ import annotations

import pytest

from experiments.matrix import MatrixError, parse_executor
from tests.cli_checks import error_line, run_module

PASSWORD = "S3cretPassw0rd"


@pytest.mark.parametrize("executor", [f"dask://user:{PASSWORD}@127.0.0.1:8786",
                                      f"dask://{PASSWORD}@127.0.0.1:8786",
                                      f"dask://u:{PASSWORD}@h@127.0.0.1:1"])
def test_a_password_in_the_scheduler_address_is_refused_unrepeated(executor: str) -> None:
    with pytest.raises(MatrixError) as err:
        parse_executor(executor)
    assert PASSWORD not in str(err.value) and "no user or password" in str(err.value)


def test_the_cli_says_it_in_one_line_without_the_password() -> None:
    res = run_module("experiments", "run", "websocket_clean", "--quick", "--clock", "virtual",
                     "--executor", f"dask://user:{PASSWORD}@127.0.0.1:1")
    line = error_line(res)
    assert PASSWORD not in res.stderr + res.stdout and "no user or password" in line


def test_a_plain_scheduler_address_is_taken() -> None:
    assert parse_executor("dask://127.0.0.1:8786") == ("dask", "tcp://127.0.0.1:8786")
