"""Fixtures for every test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a CLI in process (``monitor run``, ``monitor pilot``) configures the
    root logger as the process would: the monitor's redaction filter (which formats and
    drops each record's exc_info) goes on every root handler - pytest's own among them,
    which live for the whole session - and basicConfig may add a handler. Put back as it
    was after each test, or every later test in that worker logs through them (a test of a
    traceback kept saw none: test_ops_bad_requests_log and test_h2_http_encoding failed
    when they ran after such a test)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {id(h): list(h.filters) for h in handlers}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
        else:
            handler.filters[:] = filters[id(handler)]
    root.setLevel(level)
