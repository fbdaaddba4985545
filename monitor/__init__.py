"""The wallet monitor: detect a Polymarket wallet's trades over WebSocket, polling as the
fallback. The public API for embedding it in a bot::

    from monitor import CallbackSink, SinkEvent, WalletMonitor, load_settings

    settings = load_settings({"wallets": [...], "websocket_url": ..., "rpc_url": ...})
    async def on_event(event: SinkEvent) -> None:   # idempotent on event.key
        ...
    async with WalletMonitor(settings, sink=CallbackSink(on_event)) as mon:
        ...                                          # runs until the block exits

Everything else in the package is internal and may change.
"""

from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, MonitorError
from monitor.sinks import CallbackSink, Sink, SinkEvent
from monitor.trades import Side, Trade
from monitor.wallet_monitor import WalletMonitor

__all__ = [
    "CallbackSink",
    "ConfigError",
    "MonitorError",
    "Settings",
    "Side",
    "Sink",
    "SinkEvent",
    "Trade",
    "WalletMonitor",
    "load_settings",
]
