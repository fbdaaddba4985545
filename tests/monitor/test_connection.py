"""The connection cores, synchronously, with time as an argument."""

from __future__ import annotations

import itertools
import random

import pytest

from monitor.connection import (
    HISTORY_KEPT,
    TRANSITIONS,
    ConnEvent,
    ConnState,
    Heartbeat,
    HeartbeatAction,
    ReconnectPolicy,
    StateMachine,
    StateTimer,
    Watchdog,
    WsSettings,
    reconnect_delays,
)
from monitor.errors import ConfigError, IllegalTransition

S, E = ConnState, ConnEvent


def no_jitter(**kw: object) -> WsSettings:
    return WsSettings(backoff_jitter=0.0, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- transition table
EXPECTED = {
    (E.START, S.DISCONNECTED): S.CONNECTING,
    (E.START, S.FAILED): S.CONNECTING,
    (E.OPENED, S.CONNECTING): S.CONNECTED,
    (E.OPENED, S.RECONNECTING): S.CONNECTED,
    (E.ATTEMPT_FAILED, S.CONNECTING): S.RECONNECTING,
    (E.ATTEMPT_FAILED, S.RECONNECTING): S.RECONNECTING,
    (E.LOST, S.CONNECTED): S.RECONNECTING,
    (E.GIVE_UP, S.CONNECTING): S.FAILED,
    (E.GIVE_UP, S.RECONNECTING): S.FAILED,
    **{(E.STOP, s): S.DISCONNECTED for s in ConnState},
}


def test_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("event,state", list(itertools.product(ConnEvent, ConnState)))
def test_every_pair_either_moves_by_the_table_or_raises(event: ConnEvent,
                                                        state: ConnState) -> None:
    sm = StateMachine(state)
    if (event, state) in EXPECTED:
        t = sm.fire(event, 5.0, "why")
        assert (t.from_state, t.to_state, t.cause, t.at) == (state, EXPECTED[event, state],
                                                             "why", 5.0)
        assert sm.state is EXPECTED[event, state]
    else:
        with pytest.raises(IllegalTransition, match=event.value):
            sm.fire(event, 5.0, "why")
        assert sm.state is state  # an illegal event changes nothing


def test_every_state_is_reachable_from_disconnected_and_can_stop() -> None:
    reach = {S.DISCONNECTED}
    frontier = [S.DISCONNECTED]
    while frontier:
        s = frontier.pop()
        for (_, src), dst in TRANSITIONS.items():
            if src is s and dst not in reach:
                reach.add(dst)
                frontier.append(dst)
    assert reach == set(ConnState)
    assert all((E.STOP, s) in TRANSITIONS for s in ConnState)


def test_history_keeps_changes_with_causes_not_self_loops() -> None:
    sm = StateMachine()
    sm.fire(E.START, 0.0, "start")
    sm.fire(E.ATTEMPT_FAILED, 1.0, "refused")
    sm.fire(E.ATTEMPT_FAILED, 2.0, "refused")  # RECONNECTING -> RECONNECTING: no row
    sm.fire(E.OPENED, 3.0, "reconnected")
    rows = [t.to_row("ws0") for t in sm.history]
    assert rows == [
        {"conn": "ws0", "from": "DISCONNECTED", "to": "CONNECTING", "cause": "start"},
        {"conn": "ws0", "from": "CONNECTING", "to": "RECONNECTING", "cause": "refused"},
        {"conn": "ws0", "from": "RECONNECTING", "to": "CONNECTED", "cause": "reconnected"},
    ]
    assert sm.since == 3.0


def test_history_keeps_a_bounded_number_of_changes() -> None:
    # every state change was kept for as long as the process ran (~20 a simulated hour
    # of the soak, issue #10); the history file has them all
    sm = StateMachine()
    sm.fire(E.START, 0.0, "start")
    sm.fire(E.OPENED, 0.0, "connected")
    for i in range(5_000):
        sm.fire(E.LOST, float(i), "dropped")
        sm.fire(E.OPENED, float(i), "reconnected")
    assert len(sm.history) == HISTORY_KEPT <= 1_000
    assert sm.history[-1].to_state is ConnState.CONNECTED and sm.history[-1].at == 4999.0
    small = StateMachine(keep=2)
    small.fire(E.START, 0.0, "start")
    small.fire(E.ATTEMPT_FAILED, 1.0, "refused")
    small.fire(E.OPENED, 2.0, "reconnected")
    assert [t.cause for t in small.history] == ["refused", "reconnected"]
    assert small.state is ConnState.CONNECTED


# ---------------------------------------------------------------- backoff
def test_backoff_sequence_is_exact_without_jitter() -> None:
    delays = list(itertools.islice(reconnect_delays(1.0, 60.0, 2.0, 0.0), 9))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_with_jitter_stays_within_its_band_and_under_the_cap() -> None:
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    delays = list(itertools.islice(reconnect_delays(1.0, 60.0, 2.0, 0.2, random.Random(7)),
                                   len(bases)))
    for base, d in zip(bases, delays, strict=True):
        assert base * 0.8 <= d <= base
    assert len(set(delays)) == len(delays)  # jitter actually varies


def test_backoff_jitter_is_deterministic_for_a_seed() -> None:
    a = list(itertools.islice(reconnect_delays(jitter=0.2, rng=random.Random(3)), 5))
    b = list(itertools.islice(reconnect_delays(jitter=0.2, rng=random.Random(3)), 5))
    assert a == b


def test_policy_divides_delays_by_speed() -> None:
    p = ReconnectPolicy(no_jitter(speed=10.0))
    assert [p.next_delay() for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]


def test_backoff_resets_only_after_a_healthy_connection() -> None:
    p = ReconnectPolicy(no_jitter(backoff_reset_after=60.0))
    assert [p.next_delay() for _ in range(3)] == [1, 2, 4]
    # 100 s: opens; 130 s: lost after 30 s (< 60 s healthy): keeps growing
    p.opened(100.0)
    p.lost(130.0)
    assert p.next_delay() == 8
    # 200 s: opens; 260 s: lost after exactly 60 s healthy: starts again at 1 s
    p.opened(200.0)
    p.lost(260.0)
    assert [p.next_delay() for _ in range(2)] == [1, 2]


def test_failed_after_max_consecutive_attempts() -> None:
    p = ReconnectPolicy(no_jitter(max_reconnect_attempts=3))
    assert [p.attempt_failed() for _ in range(3)] == [False, False, True]


def test_an_open_connection_restarts_the_attempt_count() -> None:
    p = ReconnectPolicy(no_jitter(max_reconnect_attempts=3))
    p.attempt_failed()
    p.attempt_failed()
    p.opened(10.0)
    p.lost(11.0)
    assert [p.attempt_failed() for _ in range(3)] == [False, False, True]
    assert p.total_attempts == 5


def test_max_reconnect_attempts_zero_never_gives_up() -> None:
    p = ReconnectPolicy(no_jitter(max_reconnect_attempts=0))
    assert not any(p.attempt_failed() for _ in range(1000))


# ---------------------------------------------------------------- heartbeat
def test_heartbeat_ping_due_then_pong_overdue() -> None:
    hb = Heartbeat(WsSettings(heartbeat_interval=30.0, heartbeat_timeout=10.0))
    hb.connected(0.0)
    # 0-30 s: nothing to do; 30 s: ping due
    assert hb.decide(29.999) is HeartbeatAction.NONE
    assert hb.next_deadline() == 30.0
    assert hb.decide(30.0) is HeartbeatAction.SEND_PING
    hb.ping_sent(30.0)
    # 30-40 s: waiting for the pong; 40 s: overdue
    assert hb.decide(39.999) is HeartbeatAction.NONE
    assert hb.next_deadline() == 40.0
    assert hb.decide(40.0) is HeartbeatAction.TIMEOUT


def test_a_pong_in_time_schedules_the_next_ping_from_the_pong() -> None:
    hb = Heartbeat(WsSettings(heartbeat_interval=30.0, heartbeat_timeout=10.0))
    hb.connected(0.0)
    hb.ping_sent(30.0)
    assert hb.pong_received(30.5) == pytest.approx(0.5)
    assert hb.decide(45.0) is HeartbeatAction.NONE
    assert hb.decide(60.5) is HeartbeatAction.SEND_PING


def test_heartbeat_intervals_are_divided_by_speed() -> None:
    hb = Heartbeat(WsSettings(heartbeat_interval=30.0, heartbeat_timeout=10.0, speed=10.0))
    hb.connected(0.0)
    assert hb.decide(3.0) is HeartbeatAction.SEND_PING
    hb.ping_sent(3.0)
    assert hb.decide(3.999) is HeartbeatAction.NONE
    assert hb.decide(4.0) is HeartbeatAction.TIMEOUT


# ---------------------------------------------------------------- watchdog
def test_watchdog_fires_exactly_after_n_block_intervals() -> None:
    wd = Watchdog(WsSettings(staleness_blocks=5, block_interval=2.0))
    wd.arm(100.0)
    # heads at 101 and 104; limit 5 * 2 s = 10 s after the last head -> 114 s
    wd.note_head(101.0)
    wd.note_head(104.0)
    assert not wd.is_stale(113.999)
    assert wd.deadline() == 114.0
    assert wd.is_stale(114.0)


def test_watchdog_gives_a_fresh_connection_a_full_limit() -> None:
    wd = Watchdog(WsSettings(staleness_blocks=3, block_interval=2.0, speed=2.0))
    wd.arm(50.0)  # limit 3 * 2 s / speed 2 = 3 clock seconds
    assert not wd.is_stale(52.9)
    assert wd.is_stale(53.0)


def test_watchdog_takes_the_last_head_as_an_argument_too() -> None:
    wd = Watchdog(WsSettings(staleness_blocks=1, block_interval=2.0))
    assert wd.is_stale(10.0, last_head=8.0)
    assert not wd.is_stale(10.0, last_head=8.5)


def test_watchdog_off_and_disarmed_never_fire() -> None:
    off = Watchdog(WsSettings(staleness_blocks=0))
    off.arm(0.0)
    assert not off.is_stale(1e9) and off.deadline() is None
    wd = Watchdog(WsSettings())
    assert not wd.is_stale(1e9)  # never armed
    wd.arm(0.0)
    wd.disarm()
    assert not wd.is_stale(1e9)


def test_a_late_head_never_moves_the_watchdog_back() -> None:
    wd = Watchdog(WsSettings(staleness_blocks=1, block_interval=2.0))
    wd.arm(0.0)
    wd.note_head(5.0)
    wd.note_head(4.0)
    assert wd.deadline() == 7.0


# ---------------------------------------------------------------- state timer
def test_time_in_each_state_from_transitions_and_now() -> None:
    t = StateTimer(S.DISCONNECTED, 0.0)
    t.enter(S.CONNECTING, 1.0)
    t.enter(S.CONNECTED, 1.5)
    t.enter(S.RECONNECTING, 11.5)
    t.enter(S.CONNECTED, 14.5)
    assert t.snapshot(20.0) == {"DISCONNECTED": 1.0, "CONNECTING": 0.5, "CONNECTED": 15.5,
                                "RECONNECTING": 3.0, "FAILED": 0.0}


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize("kw,name", [
    ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ({"speed": -1}, "speed"),
    ({"backoff_jitter": 1.0}, "backoff_jitter"),
    ({"backoff_max": 0.5}, "backoff_max"),
    ({"max_reconnect_attempts": -1}, "max_reconnect_attempts"),
    ({"backoff_factor": 0.5}, "backoff_factor"),
])
def test_invalid_settings_name_the_setting(kw: dict[str, float], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WsSettings(**kw)  # type: ignore[arg-type]


def test_manager_settings_have_the_monitors_names_and_defaults() -> None:
    """One name and one default per setting: what the manager shares with the monitor's
    Settings is spelled the same and defaults the same, so tests run production defaults."""
    from dataclasses import fields

    from monitor.config import Settings

    shared = [f.name for f in fields(WsSettings) if f.name in Settings.model_fields]
    assert {"heartbeat_interval", "heartbeat_timeout", "backoff_initial", "backoff_max",
            "backoff_jitter", "backoff_reset_after", "max_reconnect_attempts",
            "staleness_blocks", "block_interval", "speed"} <= set(shared)
    defaults = WsSettings()
    for name in shared:
        assert getattr(defaults, name) == Settings.model_fields[name].default, name
    assert (defaults.backoff_reset_after, defaults.max_reconnect_attempts,
            defaults.staleness_blocks) == (30.0, 0, 10)


def test_from_settings_passes_every_shared_setting_through() -> None:
    from monitor.config import load_settings

    s = load_settings({"backoff_reset_after": 7, "max_reconnect_attempts": 3,
                       "staleness_blocks": 4, "backoff_jitter": 0.1, "heartbeat_timeout": 2,
                       "block_interval": 1.75}, environ={})
    ws = WsSettings.from_settings(s, seed=5)
    assert (ws.backoff_reset_after, ws.max_reconnect_attempts, ws.staleness_blocks,
            ws.backoff_jitter, ws.heartbeat_timeout, ws.block_interval, ws.seed) == (
        7.0, 3, 4, 0.1, 2.0, 1.75, 5)
