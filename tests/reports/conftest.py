"""Fixtures: synthetic run stores (see report_fixtures.py) for the report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def factory(**kwargs: Any) -> Path:
        kwargs.setdefault("run_id", f"run{next(counter)}")
        return build_run(tmp_path, **kwargs)

    return factory


@pytest.fixture
def run_dir(make_run: Callable[..., Path]) -> Path:
    return make_run()
