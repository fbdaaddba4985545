"""The nemesis: what every active fault does, decided in one place, without I/O.

The server has a few *hooks* where a fault can change what happens. At each hook it asks
:class:`Nemesis` one question and applies the answer; it never looks at a fault's name.

=============== ======================================== =====================================
hook            asked when                               answer
=============== ======================================== =====================================
start           a fault starts                           commands: :class:`Abort`,
                                                         :class:`Close`, :class:`Reorg`
upgrade         a WebSocket upgrade arrives              :class:`Refusal` or None
mute            a frame, ping or response on a conn      True = half-open: nothing in or out
subscribe       ``eth_subscribe`` on a connection        the subscription limit (None = none)
notify          a notification is queued for a conn      :class:`Notify`: copies (0 = drop),
                                                         delay, extra (malformed) frames
http            a JSON-RPC POST arrives                  :class:`HttpAnswer` instead of the
                                                         node's, or None
http_reply      the node answered a JSON-RPC POST        a changed :class:`HttpAnswer` or None
http_lag        a JSON-RPC POST is about to be answered  blocks the answering node is behind
                                                         the head (0 = none): it answers as
                                                         :meth:`JsonRpc.lagging` does
explorer        a fault starts or stops                  :class:`ExplorerEffects`: extra
                                                         index lag, rate limit, down mode
explorer_reply  the explorer answered a request          a changed :class:`HttpAnswer` or None
=============== ======================================== =====================================

Every fault kind is one entry of :data:`KINDS`: its target, default params, an optional
``check`` of its params, and, for each hook it takes part in, a pure function. A hook
function gets the active faults of its kind that hit the target (start order; each has
its own seeded ``rng``), the hook's context, and the answer so far, and returns the new
answer. Kinds are folded in table order; a notification dropped (``copies == 0``) stops
the fold.

Adding a fault
--------------
Write one pure function for the hook it changes and add one entry to :data:`KINDS`::

    def _notify_reverse(faults, ctx, plan):          # a made-up fault
        return replace(plan, delay_ms=(plan.delay_ms or 0) + faults[0].spec.params["ms"])

    KINDS["ws_slow"] = FaultKind("ws", {"ms": 50.0}, notify=_notify_reverse)

Its name is then accepted by ``POST /_sim/faults``, ``[[faults]]`` schedules and
scenarios, and its start and stop land in the history like every other fault
(tests/simulator/test_nemesis.py shows this with a fault the table does not ship).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from simulator.errors import SimulatorError

__all__ = [
    "KINDS",
    "MAX_LAG_BLOCKS",
    "Abort",
    "ActiveFault",
    "Close",
    "Command",
    "ExplorerEffects",
    "FaultBoard",
    "FaultError",
    "FaultKind",
    "FaultSpec",
    "HttpAnswer",
    "Injection",
    "Nemesis",
    "Notify",
    "NotifyCtx",
    "Refusal",
    "Reorg",
    "ReplyCtx",
]


class FaultError(SimulatorError, ValueError):
    """A fault request or schedule entry that cannot be used (message names the field)."""


# -- what is active ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A checked fault: name, target and complete params."""

    name: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "params": self.params}

    @property
    def conn_id(self) -> str | None:
        """The one connection targeted (``ws:<id>``), or None for all."""
        return self.target.split(":", 1)[1] if ":" in self.target else None


@dataclass(slots=True)
class ActiveFault:
    """A fault that has started; ``stop_ns`` None = until stopped by hand.

    ``injected`` counts the malformed items this fault has sent (bounded by its
    ``max_items`` param where it has one).
    """

    id: str
    spec: FaultSpec
    started_ns: int
    stop_ns: int | None
    rng: random.Random
    injected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec.to_dict(), "started_ns": self.started_ns,
                "stop_ns": self.stop_ns}

    def hits(self, conn_id: str) -> bool:
        target = self.spec.conn_id
        return target is None or target == conn_id


class FaultBoard:
    """Which faults are active; ids are ``f1``, ``f2``, ... in start order."""

    def __init__(self) -> None:
        self.active: dict[str, ActiveFault] = {}
        self.version = 0  # bumped on every start and stop (the nemesis caches per version)
        self._next = 1

    def start(self, spec: FaultSpec, now_ns: int, duration_ns: int | None) -> ActiveFault:
        fault_id = f"f{self._next}"
        self._next += 1
        seed = spec.params.get("seed", 0)
        fault = ActiveFault(id=fault_id, spec=spec, started_ns=now_ns,
                            stop_ns=None if duration_ns is None else now_ns + duration_ns,
                            rng=random.Random(f"{seed}:{fault_id}"))
        self.active[fault_id] = fault
        self.version += 1
        return fault

    def stop(self, fault_id: str) -> ActiveFault | None:
        fault = self.active.pop(fault_id, None)
        if fault is not None:
            self.version += 1
        return fault

    def expired(self, now_ns: int) -> list[ActiveFault]:
        """Faults whose time is up (the caller stops them)."""
        return [f for f in self.active.values() if f.stop_ns is not None and f.stop_ns <= now_ns]

    def next_stop_ns(self) -> int | None:
        stops = [f.stop_ns for f in self.active.values() if f.stop_ns is not None]
        return min(stops) if stops else None

    def find(self, name: str, conn_id: str | None = None) -> list[ActiveFault]:
        return [f for f in self.active.values()
                if f.spec.name == name and (conn_id is None or f.hits(conn_id))]

    def first(self, name: str, conn_id: str | None = None) -> ActiveFault | None:
        found = self.find(name, conn_id)
        return found[0] if found else None


# -- answers ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the hit connections' TCP without a close frame."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the hit connections with a close frame."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reorg:
    """Replace the last ``depth`` blocks of the chain with a fork. ``heads``: "each" (a
    newHeads header for every block of the new branch) or "top" (only the new top's, as
    geth announces a side chain that overtakes in one import); ``removed_logs`` False:
    the orphans' logs are not sent again with ``removed: true`` (a provider that drops
    them): a client learns of the reorg only from the heads."""

    depth: int
    seed: int
    move_share: float
    vanish_share: float
    heads: str = "each"
    removed_logs: bool = True


Command = Abort | Close | Reorg


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse a WebSocket upgrade: ``503`` answer, or ``reset`` the TCP connection."""

    mode: str


@dataclass(frozen=True, slots=True)
class Injection:
    """One malformed item a fault put on the wire (one ``malformed`` history row)."""

    fault_id: str
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class NotifyCtx:
    """A notification about to be queued: subscription kind (``newHeads`` | ``logs``),
    the frame prefix of its subscription (ends with ``"result":``) and the payload JSON."""

    conn_id: str
    kind: str
    prefix: str
    payload: str


@dataclass(frozen=True, slots=True)
class Notify:
    """What to do with one notification: send ``copies`` of it (0 = drop), ``delay_ms``
    (simulated; None = no delay fault, sent at once), then the ``extra`` frames
    (malformed items, after the real one)."""

    copies: int = 1
    delay_ms: float | None = None
    extra: tuple[tuple[Injection, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer decided by a fault. ``hold_s`` (simulated) passes before it is sent."""

    status: int
    body: bytes
    content_type: str = "application/json"
    hold_s: float = 0.0
    injections: tuple[Injection, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyCtx:
    """An answer the node or the explorer made: the methods called (JSON-RPC) or the
    ``module.action`` (explorer), its status and body."""

    methods: tuple[str, ...]
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class ExplorerEffects:
    """Explorer faults in force: extra index lag (simulated s), a tighter rate, down mode."""

    lag_extra_s: float = 0.0
    rate_limit: float | None = None
    down: str | None = None


Faults = list[ActiveFault]


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One fault kind: target, default params, check, and a pure function per hook."""

    target: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    one_shot: bool = False
    check: Callable[[dict[str, Any]], None] | None = None
    start: Callable[[ActiveFault], tuple[Command, ...]] | None = None
    upgrade: Callable[[Faults, Refusal | None], Refusal | None] | None = None
    mute: Callable[[Faults], bool] | None = None
    subscribe: Callable[[Faults, int | None], int | None] | None = None
    notify: Callable[[Faults, NotifyCtx, Notify], Notify] | None = None
    http: Callable[[Faults, HttpAnswer | None], HttpAnswer | None] | None = None
    http_reply: Callable[[Faults, ReplyCtx, HttpAnswer | None], HttpAnswer | None] | None = None
    http_lag: Callable[[Faults, int], int] | None = None
    explorer: Callable[[Faults, ExplorerEffects], ExplorerEffects] | None = None
    explorer_reply: Callable[[Faults, ReplyCtx, HttpAnswer | None],
                             HttpAnswer | None] | None = None


# -- param checks -----------------------------------------------------------------------
def num(params: Mapping[str, Any], key: str, lo: float, hi: float) -> None:
    """``params[key]`` is a number in ``[lo, hi]`` (else :class:`FaultError`)."""
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise FaultError(f"params.{key}: expected a number in [{lo}, {hi}], got {value!r}")


def whole(params: dict[str, Any], key: str, lo: int, hi: int, what: str = "") -> None:
    """``params[key]`` is a whole number in ``[lo, hi]`` (``2.0`` is 2; ``1.5`` is refused,
    not cut to 1); it is stored as an int."""
    num(params, key, lo, hi)
    value = params[key]
    if value != int(value):
        raise FaultError(f"params.{key}: expected a whole number{what} in [{lo}, {hi}], "
                         f"got {value!r}")
    params[key] = int(value)


def one_of(params: Mapping[str, Any], key: str, allowed: tuple[Any, ...]) -> None:
    if params[key] not in allowed:
        raise FaultError(f"params.{key}: expected one of {', '.join(map(repr, allowed))}, "
                         f"got {params[key]!r}")


_CLOSE_CODES = (1000, 1001, 1011, 1012, 1013)


def _check_close(p: dict[str, Any]) -> None:
    one_of(p, "code", _CLOSE_CODES)
    if len(p["reason"].encode()) > 123:
        raise FaultError("params.reason: a close reason is at most 123 bytes (RFC 6455)")


def _check_latency(p: dict[str, Any]) -> None:
    num(p, "delay_ms", 0, 600_000)
    num(p, "jitter_ms", 0, 600_000)


def _check_share(p: dict[str, Any]) -> None:
    num(p, "share", 0, 1)


#: how a reorg announces its new branch on newHeads: every block, or the new top only
REORG_HEADS = ("each", "top")


def _check_reorg(p: dict[str, Any]) -> None:
    whole(p, "depth", 1, 64, " of blocks")
    num(p, "move_share", 0, 1)
    num(p, "vanish_share", 0, 1)
    if p["move_share"] + p["vanish_share"] > 1:
        raise FaultError("params: move_share + vanish_share must be <= 1")
    if p["heads"] not in REORG_HEADS:
        raise FaultError(f"params.heads: must be one of {', '.join(REORG_HEADS)} "
                         f"(got {str(p['heads'])[:40]!r})")


def _check_max_subs(p: dict[str, Any]) -> None:
    whole(p, "n", 0, 1_000_000, " of subscriptions")


def _check_rpc_errors(p: dict[str, Any]) -> None:
    num(p, "share", 0, 1)
    num(p, "timeout_s", 0, 3600)
    statuses = p["statuses"]
    if not statuses or not all(
            s == "timeout" or (isinstance(s, int) and not isinstance(s, bool)
                               and 400 <= s <= 599) for s in statuses):
        raise FaultError("params.statuses: expected a list of HTTP codes 4xx/5xx "
                         "or \"timeout\"")


#: most blocks ``rpc_lag`` may lag (simulator.chain keeps what reorgs replaced that far back)
MAX_LAG_BLOCKS = 64


def _check_lag(p: dict[str, Any]) -> None:
    whole(p, "blocks", 1, MAX_LAG_BLOCKS, " of blocks")


# -- the effects of today's faults (pure) -------------------------------------------------
def _start_abort(fault: ActiveFault) -> tuple[Command, ...]:
    return (Abort(),)


def _start_refuse(fault: ActiveFault) -> tuple[Command, ...]:
    return (Abort(),) if fault.spec.params["drop_existing"] else ()


def _start_close(fault: ActiveFault) -> tuple[Command, ...]:
    p = fault.spec.params
    return (Close(int(p["code"]), str(p["reason"])),)


def _start_reorg(fault: ActiveFault) -> tuple[Command, ...]:
    p = fault.spec.params
    return (Reorg(int(p["depth"]), int(p["seed"]), float(p["move_share"]),
                  float(p["vanish_share"]), str(p["heads"]), bool(p["removed_logs"])),)


def _upgrade_refuse(faults: Faults, answer: Refusal | None) -> Refusal | None:
    return answer or Refusal(str(faults[0].spec.params["mode"]))


def _mute(faults: Faults) -> bool:
    return True


def _notify_drop(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    return replace(plan, copies=0)


SILENT_SUBSCRIPTIONS = ("all", "logs", "newHeads")


def _check_silent(p: dict[str, Any]) -> None:
    if p["subscription"] not in SILENT_SUBSCRIPTIONS:
        raise FaultError(f"params: subscription must be one of {', '.join(SILENT_SUBSCRIPTIONS)}"
                         f" (got {str(p['subscription'])[:40]!r})")


def _notify_silent(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    """Every notification dropped, or those of one subscription kind: a provider's
    failover that drops the logs subscription on its side while heads flow (the socket,
    pings and calls all fine)."""
    for f in faults:
        if f.spec.params["subscription"] in ("all", ctx.kind):
            return replace(plan, copies=0)
    return plan


def _notify_loss(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    f = faults[0]
    return replace(plan, copies=0) if f.rng.random() < f.spec.params["share"] else plan


def _notify_dup(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    f = faults[0]
    return replace(plan, copies=2) if f.rng.random() < f.spec.params["share"] else plan


def _notify_latency(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    f = faults[0]
    p = f.spec.params
    return replace(plan, delay_ms=p["delay_ms"] + f.rng.random() * p["jitter_ms"])


def _subscribe_limit(faults: Faults, limit: int | None) -> int | None:
    """The tightest limit in force (of the node's and every active fault's), as the
    explorer's rate limit takes the tightest rate."""
    n = min(int(f.spec.params["n"]) for f in faults)
    return n if limit is None else min(limit, n)


_TEXT = "text/plain; charset=utf-8"
_429 = {"jsonrpc": "2.0", "id": None, "error": {
    "code": 429, "message": "Your app has exceeded its compute units per second capacity."}}


def _http_errors(faults: Faults, answer: HttpAnswer | None) -> HttpAnswer | None:
    if answer is not None:
        return answer
    f = faults[0]
    p = f.spec.params
    if not f.rng.random() < p["share"]:
        return None
    status = f.rng.choice(p["statuses"])
    if status == "timeout":
        return HttpAnswer(504, b"504 Gateway Timeout\n", _TEXT, hold_s=float(p["timeout_s"]))
    if status == 429:
        return HttpAnswer(429, json.dumps(_429).encode())
    return HttpAnswer(int(status), f"{status} error\n".encode(), _TEXT)


def _http_lag(faults: Faults, blocks: int) -> int:
    return max(blocks, *(int(f.spec.params["blocks"]) for f in faults))


def _explorer_lag(faults: Faults, eff: ExplorerEffects) -> ExplorerEffects:
    return replace(eff, lag_extra_s=float(max(f.spec.params["extra_s"] for f in faults)))


def _explorer_rate(faults: Faults, eff: ExplorerEffects) -> ExplorerEffects:
    return replace(eff, rate_limit=float(min(f.spec.params["rate"] for f in faults)))


def _explorer_down(faults: Faults, eff: ExplorerEffects) -> ExplorerEffects:
    return replace(eff, down=str(faults[-1].spec.params["mode"]))


# -- malformed data (pure; every draw from the fault's own seeded generator) ------------------
WS_GARBAGE_KINDS = ("non_json", "wrong_type", "unknown_sub", "unhashable_sub", "huge_number",
                    "deep_nesting", "unknown_id")
BAD_LOG_KINDS = ("bad_hex_data", "wrong_data_length", "huge_block_number", "missing_fields")
RPC_GARBAGE_KINDS = ("html", "truncated", "wrong_id", "wrong_type")
EXPLORER_GARBAGE_KINDS = ("bad_rows", "html200", "status_mismatch")
DEEP_NESTING = 50_000  # levels of the deep_nesting frame (a 100 KB array)
HUGE_DIGITS = 5000  # digits of the huge_number frame

_HTML_200 = (b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n<body><h1>"
             b"Checking your browser before accessing the API</h1></body></html>\n")


def _malformed_defaults(kinds: tuple[str, ...], share: float, max_items: int) -> dict[str, Any]:
    return {"share": share, "max_items": max_items, "kinds": list(kinds), "seed": 0}


def _check_malformed(all_kinds: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def check(p: dict[str, Any]) -> None:
        num(p, "share", 0, 1)
        whole(p, "max_items", 0, 1_000_000, " of items")
        kinds = p["kinds"]
        if not kinds or not all(isinstance(k, str) and k in all_kinds for k in kinds):
            raise FaultError(f"params.kinds: expected a non-empty list of "
                             f"{', '.join(all_kinds)}")
        if "ahead" in p:
            num(p, "ahead", 1, 2**63)
            if not isinstance(p["ahead"], int):
                raise FaultError("params.ahead: expected an integer number of blocks")
    return check


def _due(fault: ActiveFault) -> bool:
    """One draw: does this opportunity get a malformed item (within ``max_items``)?"""
    p = fault.spec.params
    return fault.injected < p["max_items"] and fault.rng.random() < p["share"]


def _hash32(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(256):064x}"


def _sub_id(prefix: str) -> str:
    return prefix.split('"subscription":"', 1)[1].split('"', 1)[0]


def _garbage_frame(kind: str, ctx: NotifyCtx, rng: random.Random) -> str:
    """One WebSocket text frame of the ``ws_garbage`` kind ``kind``."""
    sub = _sub_id(ctx.prefix)
    if kind == "non_json":
        return rng.choice(['{"jsonrpc":"2.0","method":"eth_subscription","params":{"subsc',
                           "<html><body>502 Bad Gateway</body></html>", "undefined",
                           ctx.prefix + ctx.payload[: len(ctx.payload) // 2]])
    if kind == "wrong_type":
        return rng.choice([ctx.prefix + '"not-an-object"}}',
                           '{"jsonrpc":"2.0","method":"eth_subscription","params":["'
                           + sub + '",7]}',
                           ctx.prefix + "[" + ctx.payload + "]}}"])
    if kind == "unknown_sub":
        other = f"0x{rng.getrandbits(128):032x}"
        return ctx.prefix.replace(sub, other) + ctx.payload + "}}"
    if kind == "unhashable_sub":
        return ('{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":["'
                + sub + '"],"result":' + ctx.payload + "}}")
    if kind == "huge_number":
        digits = "9" * HUGE_DIGITS
        return ctx.prefix + '{"number":' + digits + ',"logIndex":' + digits + "}}}"
    if kind == "deep_nesting":
        return "[" * DEEP_NESTING + "]" * DEEP_NESTING
    return '{"jsonrpc":"2.0","id":' + str(rng.randrange(10**9, 2 * 10**9)) + ',"result":"0x1"}'


def _bad_log(kind: str, real: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``real`` that cannot be decoded, under a fresh transaction hash (so if a
    client delivers it anyway, the checker sees a phantom trade, not a valid one)."""
    bad = {**real, "transactionHash": _hash32(rng), "removed": False}
    raw = real.get("data")
    data = raw if isinstance(raw, str) else "0x"
    if kind == "bad_hex_data":
        bad["data"] = "0x" + "zq" * max(32, (len(data) - 2) // 2)
    elif kind == "wrong_data_length":
        bad["data"] = data[:-64] + "abc" if len(data) > 66 else data + "0" * 61
    elif kind == "huge_block_number":
        bad["blockNumber"] = hex(2**63 + rng.getrandbits(32))
    else:  # missing_fields
        for key in ("transactionHash", "logIndex", "blockNumber"):
            bad.pop(key, None)
    return bad


def _notify_ws_garbage(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    f = faults[0]
    if not _due(f):
        return plan
    kind = f.rng.choice(f.spec.params["kinds"])
    item = (Injection(f.id, f.spec.name, kind), _garbage_frame(kind, ctx, f.rng))
    return replace(plan, extra=(*plan.extra, item))


def _notify_bad_log(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    if ctx.kind != "logs" or '"removed":true' in ctx.payload:
        return plan
    f = faults[0]
    if not _due(f):
        return plan
    kind = f.rng.choice(f.spec.params["kinds"])
    bad = _bad_log(kind, json.loads(ctx.payload), f.rng)
    frame = ctx.prefix + json.dumps(bad, separators=(",", ":")) + "}}"
    return replace(plan, extra=(*plan.extra, (Injection(f.id, f.spec.name, kind), frame)))


def _notify_head_jump(faults: Faults, ctx: NotifyCtx, plan: Notify) -> Notify:
    if ctx.kind != "newHeads":
        return plan
    f = faults[0]
    if not _due(f):
        return plan
    header = json.loads(ctx.payload)
    header["number"] = hex(int(header["number"], 16) + int(f.spec.params["ahead"]))
    header["hash"], header["parentHash"] = _hash32(f.rng), _hash32(f.rng)
    frame = ctx.prefix + json.dumps(header, separators=(",", ":")) + "}}"
    return replace(plan, extra=(*plan.extra, (Injection(f.id, f.spec.name, "head_jump"),
                                              frame)))


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _reply_bad_log(faults: Faults, ctx: ReplyCtx, answer: HttpAnswer | None
                   ) -> HttpAnswer | None:
    """A bad log inserted among the logs of an ``eth_getLogs`` answer (valid ones kept)."""
    if "eth_getLogs" not in ctx.methods:
        return answer
    body = answer.body if answer else ctx.body
    doc = _json_or_none(body)
    responses = doc if isinstance(doc, list) else [doc]
    lists = [r["result"] for r in responses if isinstance(r, dict)
             and isinstance(r.get("result"), list) and r["result"]
             and isinstance(r["result"][0], dict) and "topics" in r["result"][0]]
    f = faults[0]
    if not lists or not _due(f):
        return answer
    logs = f.rng.choice(lists)
    kind = f.rng.choice(f.spec.params["kinds"])
    logs.insert(f.rng.randrange(len(logs) + 1), _bad_log(kind, f.rng.choice(logs), f.rng))
    prior = answer.injections if answer else ()
    return HttpAnswer(answer.status if answer else ctx.status,
                      json.dumps(doc, separators=(",", ":")).encode(), ctx.content_type,
                      injections=(*prior, Injection(f.id, f.spec.name, kind)))


_WRONG_TYPE = {list: {"unexpected": "object"}, dict: ["unexpected", "array"], str: 12345678,
               int: [], float: [], bool: "true", type(None): "0x"}


def _reply_rpc_garbage(faults: Faults, ctx: ReplyCtx, answer: HttpAnswer | None
                       ) -> HttpAnswer | None:
    """An HTML page, a truncated body, wrong ids or a result of the wrong type."""
    body = answer.body if answer else ctx.body
    f = faults[0]
    if not body or not _due(f):
        return answer
    kind = f.rng.choice(f.spec.params["kinds"])
    doc = _json_or_none(body) if kind in ("wrong_id", "wrong_type") else None
    items = [r for r in (doc if isinstance(doc, list) else [doc]) if isinstance(r, dict)]
    if kind == "wrong_type":
        items = [r for r in items if "result" in r]
    if kind in ("wrong_id", "wrong_type") and not items:
        kind = "truncated"
    prior = answer.injections if answer else ()
    ctype = ctx.content_type
    if kind == "html":
        new, ctype = _HTML_200, "text/html"
    elif kind == "truncated":
        new = body[: len(body) // 2]
    else:
        item = f.rng.choice(items)
        if kind == "wrong_id":
            rid = item.get("id")
            item["id"] = rid + 1_000_000 if isinstance(rid, int) else f"x{rid}"
        else:
            item["result"] = _WRONG_TYPE.get(type(item["result"]))
        new = json.dumps(doc, separators=(",", ":")).encode()
    return HttpAnswer(200, new, ctype, injections=(*prior, Injection(f.id, f.spec.name, kind)))


def _bad_row(row: Any, rng: random.Random) -> Any:
    """A row that cannot be used: a non-object, or a copy with a non-number block number."""
    if not isinstance(row, dict) or rng.random() < 0.3:
        return rng.choice(["garbage row", ["0x1", "0x2"], None, 12345])
    bad = {**row, "blockNumber": rng.choice(["0xnothex", "12ab", "", "-1"])}
    if "hash" in bad:
        bad["hash"] = _hash32(rng)
    if "transactionHash" in bad:
        bad["transactionHash"] = _hash32(rng)
    return bad


def _reply_explorer_garbage(faults: Faults, ctx: ReplyCtx, answer: HttpAnswer | None
                            ) -> HttpAnswer | None:
    """Bad rows beside the good ones, an HTML page with status 200, or a wrong
    ``status``/``message`` pair (the rows kept)."""
    body = answer.body if answer else ctx.body
    if ctx.status != 200 or not ctx.content_type.startswith("application/json"):
        return answer
    f = faults[0]
    if not _due(f):
        return answer
    kind = f.rng.choice(f.spec.params["kinds"])
    doc = _json_or_none(body)
    envelope = isinstance(doc, dict) and "status" in doc and "result" in doc
    if kind == "bad_rows" and not (envelope and isinstance(doc["result"], list)
                                   and doc["result"]):
        kind = "status_mismatch" if envelope else "html200"
    if kind == "status_mismatch" and not envelope:
        kind = "html200"
    prior = answer.injections if answer else ()
    ctype = ctx.content_type
    if kind == "html200":
        new, ctype = _HTML_200, "text/html; charset=utf-8"
    else:
        assert isinstance(doc, dict)
        if kind == "bad_rows":
            rows = doc["result"]
            rows.insert(f.rng.randrange(len(rows) + 1), _bad_row(f.rng.choice(rows), f.rng))
        elif doc["status"] == "1":
            doc["status"], doc["message"] = "0", "OK"
        else:
            doc["status"], doc["message"] = "1", "NOTOK"
        new = json.dumps(doc, separators=(",", ":")).encode()
    return HttpAnswer(200, new, ctype, injections=(*prior, Injection(f.id, f.spec.name, kind)))


# -- the table ---------------------------------------------------------------------------
# Table order is fold order: a dropped notification (stall, silent, loss) is decided before
# copies and delay, so a dropped one draws nothing from the later faults' generators.
KINDS: dict[str, FaultKind] = {
    "ws_drop": FaultKind("ws", {}, one_shot=True, start=_start_abort),
    "ws_close": FaultKind("ws", {"code": 1001, "reason": ""}, one_shot=True,
                          check=_check_close, start=_start_close),
    "ws_refuse": FaultKind("ws", {"drop_existing": True, "mode": "503"},
                           check=lambda p: one_of(p, "mode", ("503", "reset")),
                           start=_start_refuse, upgrade=_upgrade_refuse),
    "ws_stall": FaultKind("ws", {}, mute=_mute, notify=_notify_drop),
    "ws_silent": FaultKind("ws", {"subscription": "all"}, check=_check_silent,
                           notify=_notify_silent),
    "ws_loss": FaultKind("ws", {"share": 0.1, "seed": 0}, check=_check_share,
                         notify=_notify_loss),
    "ws_dup": FaultKind("ws", {"share": 0.1, "seed": 0}, check=_check_share,
                        notify=_notify_dup),
    "ws_latency": FaultKind("ws", {"delay_ms": 200.0, "jitter_ms": 0.0, "seed": 0},
                            check=_check_latency, notify=_notify_latency),
    "max_subscriptions": FaultKind("ws", {"n": 1}, check=_check_max_subs,
                                   subscribe=_subscribe_limit),
    "reorg": FaultKind("chain", {"depth": 1, "seed": 0, "move_share": 0.3,
                                 "vanish_share": 0.2, "heads": "each",
                                 "removed_logs": True}, one_shot=True, check=_check_reorg,
                       start=_start_reorg),
    "rpc_errors": FaultKind("rpc_http", {"share": 0.5,
                                         "statuses": [429, 500, 502, 503, "timeout"],
                                         "timeout_s": 10.0, "seed": 0},
                            check=_check_rpc_errors, http=_http_errors),
    # the provider's HTTP node `blocks` behind its WebSocket node (the largest lag wins)
    "rpc_lag": FaultKind("rpc_http", {"blocks": 1}, check=_check_lag, http_lag=_http_lag),
    "explorer_rate_limit": FaultKind("explorer", {"rate": 1.0},
                                     check=lambda p: num(p, "rate", 0.001, 1_000_000),
                                     explorer=_explorer_rate),
    "explorer_lag": FaultKind("explorer", {"extra_s": 30.0},
                              check=lambda p: num(p, "extra_s", 0, 86_400),
                              explorer=_explorer_lag),
    "explorer_down": FaultKind("explorer", {"mode": "html502"},
                               check=lambda p: one_of(p, "mode", ("html502", "timeout")),
                               explorer=_explorer_down),
    # malformed data: each item is extra (WS) or inserted beside the valid ones (logs,
    # rows), or replaces one answer a client retries (rpc_garbage, explorer_garbage);
    # at most max_items per activation
    "ws_garbage": FaultKind("ws", _malformed_defaults(WS_GARBAGE_KINDS, 0.2, 50),
                            check=_check_malformed(WS_GARBAGE_KINDS),
                            notify=_notify_ws_garbage),
    "bad_log": FaultKind("rpc", _malformed_defaults(BAD_LOG_KINDS, 0.3, 50),
                         check=_check_malformed(BAD_LOG_KINDS), notify=_notify_bad_log,
                         http_reply=_reply_bad_log),
    "head_jump": FaultKind("ws", {**_malformed_defaults(("head_jump",), 0.2, 5),
                                  "ahead": 2**40},
                           check=_check_malformed(("head_jump",)), notify=_notify_head_jump),
    "rpc_garbage": FaultKind("rpc_http", _malformed_defaults(RPC_GARBAGE_KINDS, 0.2, 50),
                             check=_check_malformed(RPC_GARBAGE_KINDS),
                             http_reply=_reply_rpc_garbage),
    "explorer_garbage": FaultKind("explorer",
                                  _malformed_defaults(EXPLORER_GARBAGE_KINDS, 0.2, 50),
                                  check=_check_malformed(EXPLORER_GARBAGE_KINDS),
                                  explorer_reply=_reply_explorer_garbage),
}


# -- the core the server asks ----------------------------------------------------------------
class Nemesis:
    """Answers the server's hook questions from the active faults on ``board``.

    Stateless apart from the faults themselves (their generators and ``injected``
    counters); cheap when nothing is active.
    """

    def __init__(self, board: FaultBoard, kinds: Mapping[str, FaultKind] | None = None) -> None:
        self.board = board
        self.kinds = KINDS if kinds is None else kinds
        self._version = -1
        self._groups: list[tuple[FaultKind, Faults]] = []

    def _active(self) -> list[tuple[FaultKind, Faults]]:
        """(kind, its active faults in start order), kinds in table order."""
        if self._version != self.board.version:
            by_name: dict[str, Faults] = {}
            for fault in self.board.active.values():
                by_name.setdefault(fault.spec.name, []).append(fault)
            self._groups = [(kind, by_name[name]) for name, kind in self.kinds.items()
                            if name in by_name]
            self._version = self.board.version
        return self._groups

    def _hooks(self, hook: str, conn_id: str | None = None) -> Iterator[tuple[Any, Faults]]:
        for kind, faults in self._active():
            fn = getattr(kind, hook)
            if fn is None:
                continue
            if conn_id is not None:
                faults = [f for f in faults if f.hits(conn_id)]
                if not faults:
                    continue
            yield fn, faults

    # -- hooks ------------------------------------------------------------------------------
    def start(self, fault: ActiveFault) -> tuple[Command, ...]:
        fn = self.kinds[fault.spec.name].start
        return () if fn is None else fn(fault)

    def upgrade(self) -> Refusal | None:
        answer: Refusal | None = None
        for fn, faults in self._hooks("upgrade"):
            answer = fn(faults, answer)
        return answer

    def mute(self, conn_id: str) -> bool:
        return any(fn(faults) for fn, faults in self._hooks("mute", conn_id))

    def subscribe(self, conn_id: str, limit: int | None) -> int | None:
        for fn, faults in self._hooks("subscribe", conn_id):
            limit = fn(faults, limit)
        return limit

    def notify(self, ctx: NotifyCtx) -> Notify:
        plan = Notify()
        if not self.board.active:
            return plan
        for fn, faults in self._hooks("notify", ctx.conn_id):
            plan = fn(faults, ctx, plan)
            if plan.copies == 0:
                return Notify(copies=0)
        self._count(i for i, _ in plan.extra)
        return plan

    def http(self) -> HttpAnswer | None:
        answer: HttpAnswer | None = None
        for fn, faults in self._hooks("http"):
            answer = fn(faults, answer)
        self._count(answer.injections if answer else ())
        return answer

    def http_reply(self, ctx: ReplyCtx) -> HttpAnswer | None:
        answer: HttpAnswer | None = None
        for fn, faults in self._hooks("http_reply"):
            answer = fn(faults, ctx, answer)
        self._count(answer.injections if answer else ())
        return answer

    def http_lag(self) -> int:
        """Blocks behind the head the node answering a JSON-RPC POST is (0 = none)."""
        blocks = 0
        for fn, faults in self._hooks("http_lag"):
            blocks = fn(faults, blocks)
        return blocks

    def explorer(self) -> ExplorerEffects:
        eff = ExplorerEffects()
        for fn, faults in self._hooks("explorer"):
            eff = fn(faults, eff)
        return eff

    def explorer_reply(self, ctx: ReplyCtx) -> HttpAnswer | None:
        answer: HttpAnswer | None = None
        for fn, faults in self._hooks("explorer_reply"):
            answer = fn(faults, ctx, answer)
        self._count(answer.injections if answer else ())
        return answer

    def _count(self, injections: Any) -> None:
        for inj in injections:
            fault = self.board.active.get(inj.fault_id)
            if fault is not None:
                fault.injected += 1
