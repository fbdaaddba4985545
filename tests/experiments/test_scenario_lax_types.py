"""A scenario value of the wrong TOML kind is refused naming the field, not converted:
pydantic's lax mode read ``true`` as the number 1 (``speed = true`` ran at speed 1,
``seeds = [true]`` under seed 1, ``count = true`` watched one wallet), a string as a
number (``at = "30"``), and 1 or "yes" as a boolean."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from experiments.scenario import ScenarioError, load_scenario
from tests.cli_checks import error_line, run_module

BASE: dict[str, object] = {
    "name": "x", "recording": "today", "sim_duration_s": 60, "speed": 10, "grace_s": 5,
    "wallets": {"count": 3}, "monitor": {"mode": "websocket"},
    "faults": [{"name": "ws_drop", "target": "ws", "at": 10, "every": 20}],
    "quick": {"sim_duration_s": 30}}


def _with(**over: object) -> dict[str, object]:
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in over.items():
        table, _, field = key.rpartition("__")
        if table == "faults":
            doc["faults"] = [{**BASE["faults"][0], field: value}]  # type: ignore[index]
        elif table:
            doc[table] = {**doc[table], field: value}  # type: ignore[dict-item]
        else:
            doc[field] = value
    return doc


@pytest.mark.parametrize(("over", "said"), [
    ({"speed": True}, "speed: must be a number, got true"),
    ({"sim_duration_s": "60"}, "sim_duration_s: must be a number, got '60'"),
    ({"seeds": [True]}, "seeds: [0]: must be a number, got true"),
    ({"seeds": [1, "2"]}, "seeds: [1]: must be a number, got '2'"),
    ({"seed": False}, "seed: must be a number, got false"),
    ({"wallets__count": True}, "wallets.count: must be a number, got true"),
    ({"faults__at": "30"}, "faults[0].at: must be a number, got '30'"),
    ({"faults__every": True}, "faults[0].every: must be a number, got true"),
    ({"monitor__fallback_after": "20"}, "monitor.fallback_after: must be a number, got '20'"),
    ({"monitor__websocket_enabled": "yes"},
     "monitor.websocket_enabled: must be true or false, got 'yes'"),
    ({"monitor__websocket_enabled": 1}, "monitor.websocket_enabled: must be true or false"),
    ({"quick__speed": True}, "quick.speed: must be a number, got true"),
], ids=lambda x: str(x)[:30])
def test_a_value_of_the_wrong_kind_is_refused(tmp_path: Path, over: dict[str, object],
                                               said: str) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(tomli_w.dumps(_with(**over)).encode())
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert said in str(err.value)


def test_values_of_the_right_kind_still_load(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(tomli_w.dumps(_with(speed=12.5, seeds=[1, 2], seed=4,
                                         monitor__websocket_enabled=False,
                                         wallets__count=5)).encode())
    sc = load_scenario(path)
    assert (sc.speed, sc.seeds, sc.seed, sc.wallets.count) == (12.5, (1, 2), 4, 5)
    assert sc.monitor.websocket_enabled is False


def test_validate_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(tomli_w.dumps(_with(speed=True)).encode())
    assert "speed: must be a number, got true" in error_line(
        run_module("experiments", "validate", str(path)))


@pytest.mark.parametrize(("key", "said"), [
    ("recording", "recording: is empty: name a recording file"),
    ("profile", "profile: is empty: name a profile")])
def test_an_empty_recording_or_profile_is_refused_as_empty(tmp_path: Path, key: str,
                                                           said: str) -> None:
    """Before: recording = "" was read as the current folder ('recording: : a folder,
    not a recording file'), profile = "" as an unknown profile ''."""
    doc = {k: v for k, v in _with().items() if k != "recording"}
    doc[key] = " "
    path = tmp_path / "x.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    assert said in error_line(run_module("experiments", "validate", str(path)))
