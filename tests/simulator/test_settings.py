"""Node settings from TOML: provider-like defaults, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.settings import LagSettings, NodeSettings, SettingsError, load_config


def test_defaults_are_provider_like() -> None:
    node = NodeSettings()
    assert (node.logs_max_range, node.logs_max_results, node.notify_buffer) == (2000, 10000,
                                                                               10000)
    assert (LagSettings().median_s, LagSettings().p95_s) == (4.0, 10.0)


def test_config_overrides_and_keeps_faults_and_explorer(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[node]\nlogs_max_range = 500\nmax_subscriptions = 3\n'
                   '[lag]\nmedian_s = 2\np95_s = 5.5\n[explorer]\nrate_per_s = 5\n'
                   '[[faults]]\nname = "ws_drop"\nat = 10\n')
    s = load_config(cfg)
    assert s.node.logs_max_range == 500 and s.node.max_subscriptions == 3
    assert s.lag.median_s == 2 and s.lag.p95_s == 5.5
    assert s.explorer == {"rate_per_s": 5}
    assert s.faults == ({"name": "ws_drop", "at": 10},)


@pytest.mark.parametrize(("text", "needle"), [
    ("[node]\nlogs_max_rang = 1\n", "node.logs_max_rang"),
    ("[node]\nlogs_max_range = 'many'\n", "node.logs_max_range"),
    ("[lag]\nmedian_s = 20\np95_s = 10\n", "median_s"),
    ("[nodes]\n", "unknown section"),
    ("faults = 3\n", "faults"),
    ("[node\n", "not valid TOML"),
    # were a ValueError / OverflowError traceback when the replay drew an index lag
    ("[lag]\nmedian_s = inf\np95_s = inf\n", r"lag: median_s: expected seconds up to"),
    ("[lag]\nmedian_s = 1\np95_s = 1e300\n", r"lag: p95_s: expected seconds up to"),
    ("[lag]\nmax_s = inf\n", r"lag: max_s: expected seconds up to"),
    ("[lag]\nmedian_s = 1e-9\n", r"0\.001 <= median_s"),
    ('chain_id = "abc"\n', r"chain_id: expected a positive integer"),  # was a traceback
    ("chain_id = -5\n", r"chain_id: expected a positive integer"),
    # the [explorer] table is checked when the file is read, not when the server starts
    ("[explorer]\nrate_per_s = -3\n", r"explorer: explorer setting rate_per_s must be"),
    ("[explorer]\nrate_per_s = 'lots'\n", r"\.explorer: "),
    ("[explorer]\nrate_per_sec = 3\n", r"explorer\.rate_per_sec: unknown setting"),
])
def test_bad_configs_name_the_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=needle) as info:
        load_config(cfg)
    assert str(cfg) in str(info.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_config_takes_the_contract_names_chain_and_rpc(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[chain]\nindex_lag_median_s = 3.0\nindex_lag_p95_s = 8.0\nseed = 4\n'
                   '[rpc]\nget_logs_max_range = 100\nget_logs_max_results = 50\n')
    s = load_config(cfg)
    assert (s.lag.median_s, s.lag.p95_s, s.lag.seed) == (3.0, 8.0, 4)
    assert (s.node.logs_max_range, s.node.logs_max_results) == (100, 50)
    cfg.write_text('[chain]\nblock_time = 2\n')
    with pytest.raises(SettingsError, match=r"chain\.block_time"):
        load_config(cfg)


def test_an_unknown_explorer_setting_is_named(tmp_path: Path) -> None:
    """Was Python's "ExplorerSettings.__init__() got an unexpected keyword argument"."""
    from simulator.server import Simulator
    from simulator.source import SynthSource

    cfg = tmp_path / "c.toml"
    cfg.write_text("[explorer]\nrate_limit = 5\n")
    with pytest.raises(SettingsError, match=r"explorer\.rate_limit: unknown setting \(known: "
                                            r"api_keys, archive, daily_limit"):
        Simulator(SynthSource("default", seed=1, blocks=5), settings=load_config(cfg))
