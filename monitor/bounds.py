"""Bounds on everything read from the network: :mod:`polyvocab.bounds` (shared with the
JSON-RPC client), under the monitor's name."""

from __future__ import annotations

from polyvocab.bounds import MAX_DEPTH, MAX_QUANTITY, loads, nesting_ok, quantity, too_deep

__all__ = ["MAX_DEPTH", "MAX_QUANTITY", "loads", "nesting_ok", "quantity", "too_deep"]
