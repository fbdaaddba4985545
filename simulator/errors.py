"""The simulator's errors: one tree, so the command line turns any of them into one line.

Libraries raise these; only :mod:`simulator.cli` prints them (``error: <message>``, exit
code 2). Every message already names what is wrong (a file and field, a flag, a masked
node URL); none holds a secret. ::

    SimulatorError                 anything the simulator refuses to do; fix the input
    ├── SettingsError  (ValueError)  simulator.settings: a config file or field that cannot
    │                                be used (the message names the file and the field)
    ├── FaultError     (ValueError)  simulator.nemesis / faults: a fault request or
    │                                schedule entry (the message names the field)
    ├── TradesCsvError (ValueError)  simulator.import_trades: a trades export that cannot
    │                                be read (file, line, column)
    └── RecordError                  simulator.record: the node cannot be recorded from
                                     (unreachable, HTML instead of JSON-RPC, a JSON-RPC
                                     error, a missing block, a range past the head). The
                                     recorder already retried what is retryable: do not
                                     retry blindly, read the message

``simulator.recording.RecordingError`` (a recording file that cannot be read or written)
is the one error outside the tree; the command line treats it the same way. The HTTP and
WebSocket servers never raise to their clients: bad requests are answered (4xx, JSON-RPC
errors), see docs/contracts.md.
"""

from __future__ import annotations

__all__ = ["RecordError", "SimulatorError"]


class SimulatorError(Exception):
    """Base of the simulator's errors: the input cannot be used; the message says why."""


class RecordError(SimulatorError):
    """Recording from a node failed for a reason the user must act on (message says which;
    the node URL in it is masked)."""
