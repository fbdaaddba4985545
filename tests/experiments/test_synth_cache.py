"""The runner's synthesis cache follows the profile: a cache written before a profile was
recalibrated (385a02e changed every profile's wallet concentration) kept serving the old
chain and the old wallet picks, keyed as it was by profile name, seed and blocks alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments.runner import planned_trades_by_wallet, synth_cache_name
from simulator import profiles


def test_a_recalibrated_profile_is_not_served_from_the_old_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = planned_trades_by_wallet("default", 1, 40, tmp_path)
    name = synth_cache_name("default", 1, 40)
    assert synth_cache_name("default", 1, 40) == name  # stable
    recalibrated = dataclasses.replace(profiles.PROFILES["default"], zipf_s=1.6)
    monkeypatch.setitem(profiles.PROFILES, "default", recalibrated)
    assert synth_cache_name("default", 1, 40) != name
    after = planned_trades_by_wallet("default", 1, 40, tmp_path)
    fresh = planned_trades_by_wallet("default", 1, 40, tmp_path / "fresh")
    assert after == fresh != before


def test_an_unknown_profile_still_gets_a_name_for_synth_to_refuse() -> None:
    assert synth_cache_name("no-such-profile", 1, 10).startswith("no-such-profile-")
