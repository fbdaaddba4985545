"""Settings: defaults, TOML < env < CLI precedence, validation naming the setting."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.config import ENV_ALIASES, ENV_PREFIX, load_settings
from monitor.errors import ConfigError
from monitor.redact import redact
from polyvocab import DEFAULT_EXCHANGES

W1 = "0x1111111111111111111111111111111111111111"
W2 = "0x2222222222222222222222222222222222222222"


def test_defaults_are_the_issue_values() -> None:
    s = load_settings(environ={})
    assert s.fallback_polling_interval == 15 and s.polling_interval == 15
    assert s.heartbeat_interval == 30 and (s.backoff_initial, s.backoff_max) == (1, 60)
    assert 0 < s.backoff_jitter <= 1
    assert tuple(s.exchanges) == DEFAULT_EXCHANGES
    assert s.websocket_enabled and s.mode == "websocket" and s.use_websocket
    assert s.speed == 1.0 and s.explorer_rate_per_s == 3


def test_precedence_cli_over_env_over_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('polling_interval = 20\nheartbeat_interval = 12\nspeed = 3\n'
                   f'wallets = ["{W1}"]\n')
    s = load_settings({"speed": 5, "explorer_url": "http://127.0.0.1:9/v2/api"},
                      config_file=cfg,
                      environ={"MONITOR_POLLING_INTERVAL": "25", "SPEED": "4"})
    assert s.heartbeat_interval == 12  # TOML only
    assert s.polling_interval == 25    # env beats TOML
    assert s.speed == 5                # CLI beats env
    assert s.wallets == [W1]


def test_toml_monitor_table_and_env_list_forms(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[monitor]\nwallets = ["{W1.upper().replace("0X", "0x")}"]\n')
    assert load_settings(config_file=cfg, environ={}).wallets == [W1]
    s = load_settings(environ={"MONITOR_WALLETS": f"{W1}, {W2} {W1}",
                               "WEBSOCKET_ENABLED": "false"})
    assert s.wallets == [W1, W2] and not s.use_websocket


@pytest.mark.parametrize(("cli", "name"), [
    ({"websocket_url": "http://127.0.0.1:1/"}, "websocket_url"),
    ({"rpc_url": "ws://127.0.0.1:1/"}, "rpc_url"),
    ({"explorer_url": "ftp://x/"}, "explorer_url"),
    ({"wallets": ["0x1234"]}, "wallets"),
    ({"wallets": ["0x" + "zz" * 20]}, "wallets"),
    ({"exchanges": []}, "exchanges"),
    ({"polling_interval": 0}, "polling_interval"),
    ({"fallback_after": -1}, "fallback_after"),
    ({"websocket_share": 101}, "websocket_share"),
    ({"speed": 0}, "speed"),
    ({"mode": "carrier-pigeon"}, "mode"),
    ({"no_such_setting": 1}, "no_such_setting"),
    # "never": an infinite or absurd heartbeat, timeout or fall-back was taken
    ({"heartbeat_interval": float("inf")}, "heartbeat_interval"),
    ({"rpc_timeout": float("nan")}, "rpc_timeout"),
    ({"fallback_after": 1e300}, "fallback_after"),
    ({"reconcile_interval": 86_401}, "reconcile_interval"),
    ({"explorer_rate_per_s": float("inf")}, "explorer_rate_per_s"),
    # the token goes into the request's path: "/", "?" would send the alert elsewhere
    ({"telegram_token": "123:abc/../../evil"}, "telegram_token"),
    ({"telegram_token": "123:ABC?chat_id=1"}, "telegram_token"),
    ({"telegram_token": "not a token"}, "telegram_token"),
    # a port no socket can have: the feed reconnected and alerted forever on it
    ({"websocket_url": "ws://127.0.0.1:99999/"}, "websocket_url has a port"),
    ({"rpc_url": "http://127.0.0.1:http/"}, "URL has a port"),
    ({"explorer_url": "https://:8080/v2/api"}, "URL has no host"),
])
def test_invalid_settings_fail_with_one_line_naming_the_setting(cli: dict, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(cli, environ={})
    msg = str(info.value)
    assert name in msg and "\n" not in msg


def test_bad_toml_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("polling_interval = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_secrets_are_secretstr_registered_and_masked() -> None:
    key, token = "SECRETKEY0123456789ABCDEF", "123456789:AAbbCCddEEffGGhhIIjjKK"
    s = load_settings({"explorer_api_key": key, "telegram_token": token}, environ={})
    assert key not in repr(s) and token not in repr(s)
    assert s.api_key() == key
    d = s.redacted_dict()
    assert key not in str(d) and token not in str(d)
    assert redact(f"url?apikey={key}&x=1 and {token}").count("***") == 2


def test_env_has_one_prefix_and_the_team_names_as_aliases() -> None:
    s = load_settings(environ={"MONITOR_POLLING_INTERVAL": "21", "POLLING_INTERVAL": "99",
                               "WEBSOCKET_ENABLED": "false", "FALLBACK_POLLING_INTERVAL": "7",
                               "BENCHMARK_ENABLED": "true",
                               "WEBSOCKET_URL": "ws://127.0.0.1:1/"})
    assert s.polling_interval == 21  # the bare name of a non-alias is not read
    assert not s.websocket_enabled and s.fallback_polling_interval == 7
    assert s.websocket_url == "ws://127.0.0.1:1/"  # BENCHMARK_ENABLED: accepted, ignored
    # the prefixed name wins over the alias
    s = load_settings(environ={"MONITOR_FALLBACK_POLLING_INTERVAL": "9",
                               "FALLBACK_POLLING_INTERVAL": "7"})
    assert s.fallback_polling_interval == 9


def test_speed_is_never_read_from_the_environment() -> None:
    assert load_settings(environ={"SPEED": "40", "MONITOR_SPEED": "40"}).speed == 1.0


def test_speed_other_than_one_is_refused_against_real_endpoints() -> None:
    with pytest.raises(ConfigError, match=r"speed 40 .*explorer_url"):
        load_settings({"speed": 40}, environ={})  # the default explorer is Etherscan
    with pytest.raises(ConfigError, match="websocket_url"):
        load_settings({"speed": 4, "explorer_url": "http://127.0.0.1:9/v2/api",
                       "websocket_url": "wss://polygon-mainnet.example/v2/k",
                       "rpc_url": "http://localhost:8545"}, environ={})
    s = load_settings({"speed": 4, "explorer_url": "http://127.0.0.1:9/v2/api",
                       "websocket_url": "ws://[::1]:9/", "rpc_url": "http://localhost:8545"},
                      environ={})
    assert s.speed == 4


def test_removed_settings_are_accepted_and_ignored_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """benchmark_enabled and actionable_window: nothing read them; old deployments still
    start (the BENCHMARK_ENABLED alias, a TOML key, a flag) and are told so."""
    cfg = tmp_path / "m.toml"
    cfg.write_text("actionable_window = 5.0\nbenchmark_enabled = true\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="monitor.config"):
        s = load_settings({"benchmark_enabled": True}, config_file=cfg,
                          environ={"BENCHMARK_ENABLED": "true"})
    assert not hasattr(s, "benchmark_enabled") and not hasattr(s, "actionable_window")
    text = caplog.text
    assert "benchmark_enabled (flag, config file, environment) is deprecated" in text
    assert "actionable_window (config file) is deprecated" in text


def test_provider_profile_sets_the_sharding_and_backfill_defaults() -> None:
    """The simulator's profile names; a value given by hand still wins."""
    from monitor.providers import PROVIDER_DEFAULTS
    from simulator.providers import PROFILES

    assert set(PROVIDER_DEFAULTS) == set(PROFILES)
    s = load_settings(environ={})
    assert (s.provider_profile, s.backfill_chunk_blocks, s.max_wallets_per_filter) == (
        None, 1000, 500)
    s = load_settings({"provider_profile": "public"}, environ={})
    assert (s.backfill_chunk_blocks, s.max_wallets_per_filter) == (1000, 100)
    s = load_settings({"backfill_chunk_blocks": 50}, environ={"MONITOR_PROVIDER_PROFILE":
                                                            "alchemy"})
    assert (s.backfill_chunk_blocks, s.max_wallets_per_filter) == (50, 500)
    for name, numbers in PROVIDER_DEFAULTS.items():  # chunks fit the node's range limit
        limit = PROFILES[name].logs_max_range
        assert limit is None or numbers.backfill_chunk_blocks <= limit
    with pytest.raises(ConfigError, match="provider_profile"):
        load_settings({"provider_profile": "nope"}, environ={})


def test_inf_from_toml_or_the_environment_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text("heartbeat_interval = inf\n")  # TOML's own literal
    with pytest.raises(ConfigError, match="heartbeat_interval: Input should be a finite"):
        load_settings(config_file=f, environ={})
    with pytest.raises(ConfigError, match="backoff_max: Input should be a finite"):
        load_settings(environ={"MONITOR_BACKOFF_MAX": "inf"})
    s = load_settings({"heartbeat_interval": 86_400.0}, environ={})  # a day: still taken
    assert s.heartbeat_interval == 86_400.0


def test_a_bad_bot_token_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"telegram_token": "123:SECRETPART/../x"}, environ={})
    assert "SECRETPART" not in str(info.value) and "not a Telegram bot token" in str(info.value)
    ok = load_settings({"telegram_token": "123456:AAH-ok_token"}, environ={})
    assert ok.telegram_token is not None


# -- a secret from a file fills its own layer: flags > environment > config file -----------

_LAYERS = ("flag", "flag_file", "env", "env_file", "toml", "toml_file")  # strongest first
_SECRET_VALUE = {
    "explorer_api_key": "key-{src}-0123456789",
    "telegram_token": "12345:tok-{src}",
    "websocket_url": "ws://127.0.0.1:1/v2/{src}",
    "rpc_url": "http://127.0.0.1:1/v2/{src}",
}


def _secret_sources(name: str, sources: tuple[str, ...], tmp_path: Path
                    ) -> tuple[dict[str, str], dict[str, str], Path]:
    """The CLI values, the environment and a TOML file giving ``name`` from ``sources``
    (each with its own value, naming the source)."""
    cli: dict[str, str] = {}
    env: dict[str, str] = {}
    toml_lines: list[str] = []
    alias = ENV_ALIASES.get(name, ENV_PREFIX + name.upper())
    for src in sources:
        value = _SECRET_VALUE[name].format(src=src.replace("_", "-"))
        target: str = value
        if src.endswith("_file"):
            f = tmp_path / src
            f.write_text(value + "\n")
            target = str(f)
        if src == "flag":
            cli[name] = value
        elif src == "flag_file":
            cli[f"{name}_file"] = target
        elif src == "env":
            env[alias] = value
        elif src == "env_file":
            env[f"{name.upper()}_FILE"] = target
        else:
            key = name if src == "toml" else f"{name}_file"
            toml_lines.append(f'{key} = "{target}"')
    cfg = tmp_path / "c.toml"
    cfg.write_text("\n".join(toml_lines) + "\n")
    return cli, env, cfg


@pytest.mark.parametrize("name", sorted(_SECRET_VALUE))
@pytest.mark.parametrize(("strong", "weak"), list(itertools.combinations(_LAYERS, 2)))
def test_a_secret_file_sits_in_its_own_layer_of_the_documented_order(
        name: str, strong: str, weak: str, tmp_path: Path) -> None:
    """A TOML ``explorer_api_key_file`` beat ``EXPLORER_API_KEY`` (and every other file
    beat the environment): an operator who rotated the key there kept the old one."""
    cli, env, cfg = _secret_sources(name, (strong, weak), tmp_path)
    s = load_settings(cli, config_file=cfg, environ=env)
    got = getattr(s, name)
    got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
    assert got == _SECRET_VALUE[name].format(src=strong.replace("_", "-")), (strong, weak)


def test_only_the_winning_secret_file_is_read(tmp_path: Path) -> None:
    """A weaker layer's file that is missing does not matter when a stronger one wins."""
    s = load_settings({}, config_file=None, environ={
        "EXPLORER_API_KEY": "key-from-env-0123456789",
        "EXPLORER_API_KEY_FILE": str(tmp_path / "missing")})
    assert s.api_key() == "key-from-env-0123456789"


def test_an_error_of_the_whole_model_is_worded_as_settings() -> None:
    """It read "invalid setting settings: speed 40 is for a local simulator only ..."."""
    with pytest.raises(ConfigError) as err:
        load_settings({"speed": 40}, environ={})
    assert err.value.message.startswith("invalid settings: speed 40 is for a local")
    with pytest.raises(ConfigError) as err:  # one naming a setting keeps its name
        load_settings({"polling_interval": -1}, environ={})
    assert err.value.message.startswith("invalid setting polling_interval: ")
