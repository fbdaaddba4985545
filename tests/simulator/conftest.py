"""Fixtures for the node tests: tiny hand-built recordings (see node_fixtures.py)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.recording import Recording
from tests.simulator.node_fixtures import make_recording


@pytest.fixture
def recording() -> Recording:
    return make_recording()


class RenderCount:
    """How many blocks :class:`~simulator.synth.Renderer` rendered since the fixture began."""

    n = 0


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> RenderCount:
    """Counts every block rendered (a source that gives a block again without a render
    leaves it unchanged)."""
    from simulator.synth import Renderer

    count = RenderCount()
    render = Renderer.render

    def counted(self: Renderer, plan: Any) -> Any:
        count.n += 1
        return render(self, plan)

    monkeypatch.setattr(Renderer, "render", counted)
    return count
