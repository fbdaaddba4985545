"""Fixtures for the node tests: tiny hand-built recordings (see node_fixtures.py)."""

from __future__ import annotations

import pytest

from simulator.recording import Recording
from tests.simulator.node_fixtures import make_recording


@pytest.fixture
def recording() -> Recording:
    return make_recording()
