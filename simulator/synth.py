"""Synthesise recordings from calibrated profiles, and inspect any recording.

``python -m simulator synth --profile NAME --blocks N --seed S --out PATH`` is a pure
function of (profile, blocks, seed): the same arguments give a byte-identical file.

Two stages: :func:`plan_blocks` draws, per block, its timestamp and the Polymarket
matches it carries (who trades what, how much; a few hundred bytes per trade); the wallet
counts of that plan go into the header; :func:`render_blocks` then turns each plan into
real-shaped JSON (background transactions, match logs, fee logs, header, hashes) and
streams it to the file, so the big part never sits in memory.

Randomness is split into independent streams (universe, plan, render), all seeded by
strings, so a change in how background noise is drawn never moves a trade.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyvocab import (
    CONDITIONAL_TOKENS,
    CTF_EXCHANGE_V1,
    CTF_EXCHANGE_V2,
    DEFAULT_EXCHANGES,
    NEG_RISK_EXCHANGE_V1,
    NEG_RISK_EXCHANGE_V2,
    ORDER_FILLED_TOPICS,
    ORDER_FILLED_V1,
    PUSD,
    TRANSFER,
    TRANSFER_SINGLE,
    USDC_E,
)
from simulator.chainshape import (
    BlockBuilder,
    LogSpec,
    MakerFill,
    address_topic_fast,
    data_words,
    keccak256,
    match_logs,
)
from simulator.profiles import Profile, get_profile
from simulator.recording import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RecordedBlock,
    Recording,
)

__all__ = [
    "COMPRESS_LEVEL",
    "DEFAULT_BLOCKS",
    "DEFAULT_PROFILE",
    "DEFAULT_SEED",
    "MATCH_ORDERS_SELECTOR",
    "SHIPPED_RECORDINGS",
    "BlockPlan",
    "ChainRenderer",
    "Planner",
    "Renderer",
    "TradePlan",
    "Universe",
    "add_background_tx",
    "add_trade_tx",
    "build_universe",
    "default_recording_path",
    "plan_blocks",
    "poisson",
    "recording_stats",
    "render_blocks",
    "shipped_recording_path",
    "synthesise",
    "synthesise_stream",
    "trades_by_wallet",
    "wallets_extra",
]

# The shipped default recording: `python -m simulator synth --profile default --blocks 900
# --seed 1 --out simulator/data/default.jsonl.gz` (900 blocks ~ 33 simulated minutes).
DEFAULT_PROFILE = "default"
DEFAULT_BLOCKS = 900
DEFAULT_SEED = 1
# Every shipped recording, name -> (profile, blocks, seed): simulator/data/<name>.jsonl.gz is
# `python -m simulator synth --profile <profile> --blocks <blocks> --seed <seed>
# --out simulator/data/<name>.jsonl.gz`. "default" is the eve of the V2 switch (2026-04-27,
# 2-s blocks, V1 + V2); "today" is today's chain (1.75-s blocks, V2 only):
# `python -m simulator synth --profile today --blocks 1020 --seed 1
# --out simulator/data/today.jsonl.gz` (1020 blocks ~ 33 simulated minutes).
SHIPPED_RECORDINGS: dict[str, tuple[str, int, int]] = {
    "default": (DEFAULT_PROFILE, DEFAULT_BLOCKS, DEFAULT_SEED),
    "today": ("today", 1020, 1),
}
# gzip level of synthesised files: 6 is 2.6x faster than 9 for 5% more bytes.
COMPRESS_LEVEL = 6

_GWEI = 1_000_000_000
_UNIT = 1_000_000
# CTF Exchange V1 matchOrders(Order takerOrder, Order[] makerOrders, uint256, uint256[]).
# Our calldata is abbreviated (selector + taker order hash + maker count + maker order hashes),
# not a full ABI encoding of signed orders: nothing downstream decodes it.
_ORDER_TUPLE = ("(uint256,address,address,address,uint256,uint256,uint256,uint256,uint256,"
                "uint256,uint8,uint8,bytes)")
MATCH_ORDERS_SELECTOR = keccak256(
    f"matchOrders({_ORDER_TUPLE},{_ORDER_TUPLE}[],uint256,uint256[])".encode())[:4].hex()
_TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
_APPROVE_SELECTOR = "095ea7b3"  # approve(address,uint256)
_MULTICALL_SELECTOR = "5ae401dc"  # SwapRouter02 multicall(uint256,bytes[]) (fixture tx)
_APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
_SWAP_V3 = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
_SWAP_ROUTER = "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45"  # seen in the fixture tx
# Other busy ERC-20s on Polygon: WPOL, USDT, WETH, native USDC.
_NOISE_TOKENS = ("0x0d500b1d8e8ef31e21c99d1db9a6444d3adf1270",
                 "0xc2132d05d31c914a87c6611c10748aeb04b58e8f",
                 "0x7ceb23fd6bc0add59e62ac25578270cff1b9f619",
                 "0x3c499c542cef5e3811e1192ce70d8cc03d5c3359")
_MAX_UINT = (1 << 256) - 1


def _address(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


def _addresses(rng: random.Random, n: int) -> tuple[str, ...]:
    """``n`` calls of :func:`_address`, the same addresses, ~2.5x faster (serve start-up
    builds 50,000 wallets): ``getrandbits(160 * n)`` takes the same 32-bit words in the
    same order, call ``i`` being bits ``160*i`` up (the shipped-default test compares a
    whole synthesised file byte for byte)."""
    if n <= 0:
        return ()
    digits = f"{rng.getrandbits(160 * n):0{40 * n}x}"
    end = 40 * n
    return tuple("0x" + digits[end - 40 * (i + 1):end - 40 * i] for i in range(n))


def _cumulative(weights: Iterable[float]) -> tuple[float, ...]:
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Universe:
    """Who and what exists in a synthetic chain (deterministic per seed and sizes).

    Wallet ``i`` has Zipf weight ``1/(i+1)**s``: index 0 is the most active wallet.
    """

    wallets: tuple[str, ...]
    wallet_cum: tuple[float, ...]
    tokens: tuple[int, ...]
    token_price: tuple[float, ...]
    token_cum: tuple[float, ...]
    token_negrisk: tuple[bool, ...]
    operators: tuple[str, ...]
    validators: tuple[str, ...]
    eoas: tuple[str, ...]
    pools: tuple[str, ...]


def build_universe(profile: Profile, seed: int) -> Universe:
    """Wallets, markets and operators of ``seed``. A larger profile extends, never reshuffles,
    the wallet list of a smaller one, so wallet 0 of seed S is the same in every profile."""
    rng = random.Random(f"wallets:{seed}")
    wallets = _addresses(rng, profile.wallets)
    wallet_cum = _cumulative(1.0 / (i + 1) ** profile.zipf_s for i in range(profile.wallets))
    rng = random.Random(f"markets:{seed}:{profile.markets}")
    tokens: list[int] = []
    prices: list[float] = []
    weights: list[float] = []
    negrisk: list[bool] = []
    for m in range(profile.markets):
        # Nobel CSV: half the fills at extreme prices (<0.05 or >0.95), the rest spread out.
        r = rng.random()
        p = rng.uniform(0.001, 0.05) if r < 0.45 else rng.uniform(0.05, 0.95)
        neg = rng.random() < profile.negrisk_share
        for outcome_price in (p, 1.0 - p):
            tokens.append(rng.getrandbits(255) | (1 << 200))
            prices.append(outcome_price)
            weights.append(1.0 / (m + 1))
            negrisk.append(neg)
    rng = random.Random(f"actors:{seed}")
    return Universe(
        wallets=wallets,
        wallet_cum=wallet_cum,
        tokens=tuple(tokens),
        token_price=tuple(prices),
        token_cum=_cumulative(weights),
        token_negrisk=tuple(negrisk),
        operators=tuple(_address(rng) for _ in range(profile.operators)),
        validators=tuple(_address(rng) for _ in range(7)),
        eoas=tuple(_address(rng) for _ in range(3000)),
        pools=tuple(_address(rng) for _ in range(40)),
    )


@dataclass(frozen=True, slots=True)
class TradePlan:
    """One trade transaction: a single match of a taker order against maker orders."""

    version: int
    exchange: str
    token_id: int
    taker: str
    taker_side: str
    taker_order_hash: int
    makers: tuple[MakerFill, ...]
    operator: str


@dataclass(frozen=True, slots=True)
class BlockPlan:
    number: int
    timestamp: int
    trades: tuple[TradePlan, ...]


def poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw by summing exponential gaps (fine for the small means used here)."""
    if lam <= 0:
        return 0
    n, s = 0, rng.expovariate(1.0)
    while s < lam:
        n += 1
        s += rng.expovariate(1.0)
    return n


def _negbin(rng: random.Random, mean: float, shape: float) -> int:
    if mean <= 0:
        return 0
    return poisson(rng, rng.gammavariate(shape, mean / shape))


def _pmf_draw(rng: random.Random, pmf: tuple[float, ...]) -> int:
    r = rng.random()
    acc = 0.0
    for k, p in enumerate(pmf):
        acc += p
        if r < acc:
            return k
    return len(pmf) - 1


def _plan_trade(rng: random.Random, profile: Profile, u: Universe) -> TradePlan:
    k = 1
    while k < profile.max_makers and rng.random() < profile.maker_continue:
        k += 1
    picks = rng.choices(u.wallets, cum_weights=u.wallet_cum, k=k + 1)
    taker = picks[0]
    t_index = rng.choices(range(len(u.tokens)), cum_weights=u.token_cum, k=1)[0]
    price = u.token_price[t_index] + rng.gauss(0.0, 0.01)
    price = min(0.999, max(0.001, round(price, 3)))
    taker_side = "BUY" if rng.random() < profile.buy_share else "SELL"
    total = min(250_000.0, max(1.0, rng.lognormvariate(profile.log_size_mu,
                                                       profile.log_size_sigma)))
    parts = [rng.random() + 0.1 for _ in range(k)]
    psum = sum(parts)
    makers = []
    for j in range(k):
        wallet = picks[j + 1]
        if wallet == taker:  # an order does not match itself: take the next wallet
            wallet = u.wallets[(u.wallets.index(wallet) + 1) % len(u.wallets)]
        shares = max(10_000, round(total * parts[j] / psum * _UNIT))
        usdc = max(1, round(shares * price))
        makers.append(MakerFill(wallet=wallet, order_hash=rng.getrandbits(256),
                                shares=shares, usdc=usdc))
    version = 2 if rng.random() < profile.v2_share else 1
    neg = u.token_negrisk[t_index]
    if version == 1:
        exchange = NEG_RISK_EXCHANGE_V1 if neg else CTF_EXCHANGE_V1
    else:
        exchange = NEG_RISK_EXCHANGE_V2 if neg else CTF_EXCHANGE_V2
    return TradePlan(version=version, exchange=exchange, token_id=u.tokens[t_index],
                     taker=taker, taker_side=taker_side, taker_order_hash=rng.getrandbits(256),
                     makers=tuple(makers), operator=rng.choice(u.operators))


def plan_blocks(profile: Profile, seed: int, blocks: int,
                universe: Universe) -> Iterator[BlockPlan]:
    """The timestamps and trades of ``blocks`` blocks (deterministic)."""
    planner = Planner(profile, seed, universe)
    for _ in range(blocks):
        yield planner.next()


class Planner:
    """:func:`plan_blocks` one block at a time, with a state that can be saved and restored
    (the lazy source regenerates old blocks from such checkpoints)."""

    __slots__ = ("burst", "elapsed", "first", "i", "profile", "rng", "universe")

    def __init__(self, profile: Profile, seed: int, universe: Universe) -> None:
        self.profile = profile
        self.universe = universe
        self.rng = random.Random(f"plan:{profile.name}:{seed}")
        self.first = profile.first_block()
        self.elapsed = 0.0
        self.burst = 0
        self.i = 0

    def state(self) -> tuple[Any, ...]:
        return (self.rng.getstate(), self.i, self.elapsed, self.burst)

    def restore(self, state: tuple[Any, ...]) -> None:
        rng_state, self.i, self.elapsed, self.burst = state
        self.rng.setstate(rng_state)

    def next(self) -> BlockPlan:
        """The plan of the next block."""
        profile, rng = self.profile, self.rng
        if self.i:
            multiple = 1
            if rng.random() < profile.gap_prob:
                multiple = 2
                while multiple < profile.gap_max_multiple and rng.random() < profile.gap_continue:
                    multiple += 1
            self.elapsed += profile.interval_s * multiple
        if profile.quiet_pmf is not None:
            count = _pmf_draw(rng, profile.quiet_pmf)
        else:
            count = _negbin(rng, profile.trade_tx_mean, profile.trade_tx_shape)
        burst = self.burst
        if burst:
            count += burst
            if rng.random() < profile.burst_continue:
                burst = max(1, round(burst * rng.uniform(*profile.burst_decay)))
            else:
                burst = 0
        elif profile.burst_prob and rng.random() < profile.burst_prob:
            count += rng.randint(*profile.burst_peak)
            burst = max(1, round(count * rng.uniform(*profile.burst_decay))) \
                if rng.random() < profile.burst_continue else 0
        self.burst = burst
        trades = tuple(_plan_trade(rng, profile, self.universe) for _ in range(count))
        plan = BlockPlan(number=self.first + self.i,
                         timestamp=profile.start_timestamp + int(self.elapsed + 1e-9),
                         trades=trades)
        self.i += 1
        return plan


class _Nonces:
    """Per-sender nonces, starting from a plausible height derived from the address."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, sender: str) -> int:
        n = self._next.get(sender)
        if n is None:
            n = int(sender[2:8], 16) % 50_000
        self._next[sender] = n + 1
        return n


def add_trade_tx(bb: BlockBuilder, trade: TradePlan, nonces: _Nonces, *, fee_logs: bool,
                 tx_hash: str | None = None) -> str:
    """Append one trade transaction (operator -> exchange) with its match logs."""
    logs = match_logs(version=trade.version, exchange=trade.exchange, token_id=trade.token_id,
                      taker=trade.taker, taker_side=trade.taker_side,  # type: ignore[arg-type]
                      taker_order_hash=trade.taker_order_hash, makers=trade.makers)
    words = [trade.taker_order_hash, len(trade.makers)] + [m.order_hash for m in trade.makers]
    input_hex = "0x" + MATCH_ORDERS_SELECTOR + data_words(*words)[2:]
    return bb.add_tx(sender=trade.operator, to=trade.exchange, nonce=nonces.take(trade.operator),
                     gas_used=120_000 + 95_000 * len(trade.makers), input_hex=input_hex,
                     logs=logs, tx_hash=tx_hash, fee_log=fee_logs)


def add_background_tx(bb: BlockBuilder, rng: random.Random, u: Universe, nonces: _Nonces, *,
                      fee_logs: bool) -> None:
    """Append one non-Polymarket transaction: noise every filter must reject."""
    r = rng.random()
    sender = rng.choice(u.eoas)
    other = rng.choice(u.eoas)
    logs: list[LogSpec]
    value = 0
    if r < 0.22:  # USDC.e transfer between strangers
        token, amount = USDC_E, rng.getrandbits(34)
        to, gas = token, 52_000
        input_hex = "0x" + _TRANSFER_SELECTOR + data_words(int(other, 16), amount)[2:]
        logs = [(token, [TRANSFER, address_topic_fast(sender), address_topic_fast(other)],
                 data_words(amount))]
    elif r < 0.47:  # other ERC-20 transfers
        token, amount = rng.choice(_NOISE_TOKENS), rng.getrandbits(60)
        to, gas = token, 55_000
        input_hex = "0x" + _TRANSFER_SELECTOR + data_words(int(other, 16), amount)[2:]
        logs = [(token, [TRANSFER, address_topic_fast(sender), address_topic_fast(other)],
                 data_words(amount))]
    elif r < 0.62:  # a swap: two transfers and the pool's Swap
        pool = rng.choice(u.pools)
        a_in, a_out = rng.getrandbits(50), rng.getrandbits(50)
        t_in, t_out = rng.sample(_NOISE_TOKENS, 2)
        to, gas = _SWAP_ROUTER, 160_000
        input_hex = "0x" + _MULTICALL_SELECTOR + data_words(bb.timestamp + 60, 64)[2:]
        logs = [
            (t_out, [TRANSFER, address_topic_fast(pool), address_topic_fast(sender)],
             data_words(a_out)),
            (t_in, [TRANSFER, address_topic_fast(sender), address_topic_fast(pool)],
             data_words(a_in)),
            (pool, [_SWAP_V3, address_topic_fast(_SWAP_ROUTER), address_topic_fast(sender)],
             data_words(a_in, (1 << 256) - a_out, rng.getrandbits(96), rng.getrandbits(80),
                        rng.randrange(1, 200_000))),
        ]
    elif r < 0.77:  # a plain POL transfer: no logs but the fee log
        to, gas, logs, input_hex = other, 21_000, [], "0x"
        value = rng.getrandbits(62)
    elif r < 0.87:  # collateral deposited to a Polymarket wallet: tokentx noise, not a trade
        wallet = rng.choices(u.wallets, cum_weights=u.wallet_cum, k=1)[0]
        token, amount = rng.choice((USDC_E, PUSD)), rng.getrandbits(30)
        to, gas = token, 52_000
        input_hex = "0x" + _TRANSFER_SELECTOR + data_words(int(wallet, 16), amount)[2:]
        logs = [(token, [TRANSFER, address_topic_fast(sender), address_topic_fast(wallet)],
                 data_words(amount))]
    elif r < 0.93:  # a position moved between wallets (ERC-1155), relayed: not a trade
        frm, dst = rng.choices(u.wallets, cum_weights=u.wallet_cum, k=2)
        token_id = rng.choice(u.tokens)
        to, gas, input_hex = frm, 80_000, "0x" + "f242432a" + data_words(int(dst, 16))[2:]
        logs = [(CONDITIONAL_TOKENS, [TRANSFER_SINGLE, address_topic_fast(frm),
                                      address_topic_fast(frm), address_topic_fast(dst)],
                 data_words(token_id, rng.getrandbits(32)))]
    else:  # an approval of an exchange
        token = rng.choice((USDC_E, PUSD))
        spender = rng.choice(DEFAULT_EXCHANGES)
        to, gas = token, 46_000
        input_hex = "0x" + _APPROVE_SELECTOR + data_words(int(spender, 16), _MAX_UINT)[2:]
        logs = [(token, [_APPROVAL, address_topic_fast(sender), address_topic_fast(spender)],
                 data_words(_MAX_UINT))]
    bb.add_tx(sender=sender, to=to, nonce=nonces.take(sender), gas_used=gas,
              input_hex=input_hex, logs=logs, value=value, fee_log=fee_logs,
              tip=rng.choice((30, 30, 30, 35, 50)) * _GWEI)


class ChainRenderer:
    """Seals consecutive blocks into a linked chain (parent hashes, difficulty, base fee).

    Used by the synthesiser and by the trades importer: call :meth:`new_block`, add
    transactions to the builder, then :meth:`seal`.
    """

    def __init__(self, *, rng: random.Random, universe: Universe, genesis_parent: str,
                 first_number: int) -> None:
        self.rng = rng
        self.universe = universe
        self.nonces = _Nonces()
        self._parent = genesis_parent
        self._total_difficulty = first_number * 20
        self._base_fee = 35 * _GWEI

    def new_block(self, number: int, timestamp: int) -> BlockBuilder:
        validators = self.universe.validators
        return BlockBuilder(number=number, timestamp=timestamp, base_fee=self._base_fee,
                            validator=validators[(number // 16) % len(validators)],
                            rng=self.rng)

    def seal(self, bb: BlockBuilder) -> RecordedBlock:
        difficulty = self.rng.randint(0x14, 0x1b)
        self._total_difficulty += difficulty
        block = bb.seal(parent_hash=self._parent, difficulty=difficulty,
                        total_difficulty=self._total_difficulty)
        self._parent = block.hash
        step = 1.0 + self.rng.uniform(-0.02, 0.02)
        self._base_fee = max(25 * _GWEI, min(400 * _GWEI, int(self._base_fee * step)))
        return block


def render_blocks(profile: Profile, seed: int, plans: Iterable[BlockPlan],
                  universe: Universe) -> Iterator[RecordedBlock]:
    """Turn plans into sealed, chain-linked blocks with their logs and transactions."""
    renderer = Renderer(profile, seed, universe)
    for plan in plans:
        yield renderer.render(plan)


class Renderer:
    """:func:`render_blocks` one block at a time, with a state that can be saved and
    restored (see :class:`Planner`)."""

    __slots__ = ("chain", "profile", "rng", "universe")

    def __init__(self, profile: Profile, seed: int, universe: Universe) -> None:
        self.profile = profile
        self.universe = universe
        self.rng = random.Random(f"render:{profile.name}:{seed}")
        self.chain = ChainRenderer(
            rng=self.rng, universe=universe,
            genesis_parent="0x" + keccak256(f"parent:{profile.name}:{seed}".encode()).hex(),
            first_number=profile.first_block())

    def state(self) -> tuple[Any, ...]:
        c = self.chain
        return (self.rng.getstate(), dict(c.nonces._next), c._parent, c._total_difficulty,
                c._base_fee)

    def restore(self, state: tuple[Any, ...]) -> None:
        c = self.chain
        rng_state, nonces, c._parent, c._total_difficulty, c._base_fee = state
        self.rng.setstate(rng_state)
        c.nonces._next = dict(nonces)

    def render(self, plan: BlockPlan) -> RecordedBlock:
        """The sealed block of ``plan`` (plans must come in chain order)."""
        profile, rng, chain, universe = self.profile, self.rng, self.chain, self.universe
        bb = chain.new_block(plan.number, plan.timestamp)
        n_bg = poisson(rng, profile.background_tx_mean)
        kinds = [False] * n_bg + [True] * len(plan.trades)
        rng.shuffle(kinds)
        trades = iter(plan.trades)
        for is_trade in kinds:
            if is_trade:
                add_trade_tx(bb, next(trades), chain.nonces, fee_logs=profile.fee_logs)
            else:
                add_background_tx(bb, rng, universe, chain.nonces, fee_logs=profile.fee_logs)
        return chain.seal(bb)


def _wallet_counts(plans: Iterable[BlockPlan]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for plan in plans:
        for t in plan.trades:
            counts[t.taker] += 1
            for m in t.makers:
                counts[m.wallet] += 1
    return counts


def wallets_extra(counts: Counter[str]) -> list[list[Any]]:
    """The header's ``wallets`` list: ``[address, OrderFilled logs with maker == address]``,
    most active first (ties by address)."""
    return [[w, n] for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def synthesise_stream(profile: Profile, *, seed: int, blocks: int
                      ) -> tuple[dict[str, Any], Iterator[RecordedBlock]]:
    """The header and a lazy iterator of the blocks of a synthetic recording."""
    universe = build_universe(profile, seed)
    plans = list(plan_blocks(profile, seed, blocks, universe))  # small next to the JSON
    counts = _wallet_counts(plans)
    first = profile.first_block()
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "chain_id": 137,
        "source": {"kind": "synthetic", "profile": profile.name, "seed": seed,
                   "profile_params": profile.params()},
        "first_block": first if blocks else 0,
        "last_block": first + blocks - 1 if blocks else -1,
        "blocks": blocks,
        "wallets": wallets_extra(counts),
    }
    return header, render_blocks(profile, seed, plans, universe)


def synthesise(profile: str | Profile, *, seed: int, blocks: int) -> Recording:
    """A whole synthetic recording in memory (for tests and ``serve --profile``).

    Raises ``KeyError`` (naming the known profiles) for an unknown profile name.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    header, it = synthesise_stream(prof, seed=seed, blocks=blocks)
    return Recording(source=header["source"], blocks=list(it), chain_id=137,
                     extra={"wallets": header["wallets"]})


def trades_by_wallet(recording: Recording,
                     exchanges: tuple[str, ...] = DEFAULT_EXCHANGES) -> dict[str, int]:
    """OrderFilled logs per maker wallet (what a monitor watching that wallet would see)."""
    counts: Counter[str] = Counter()
    for b in recording.blocks:
        for log in b.logs:
            topics = log["topics"]
            if (len(topics) == 4 and topics[0] in ORDER_FILLED_TOPICS
                    and log["address"] in exchanges):
                counts["0x" + topics[2][26:]] += 1
    return dict(counts)


def default_recording_path() -> Path:
    """The shipped default recording (see :data:`DEFAULT_BLOCKS`)."""
    return Path(__file__).resolve().parent / "data" / "default.jsonl.gz"


def shipped_recording_path(name: str) -> Path:
    """The shipped recording called ``name`` (see :data:`SHIPPED_RECORDINGS`); ``KeyError``
    names the known ones."""
    if name not in SHIPPED_RECORDINGS:
        raise KeyError(f"unknown shipped recording {name!r}; known: "
                       f"{', '.join(sorted(SHIPPED_RECORDINGS))}")
    return Path(__file__).resolve().parent / "data" / f"{name}.jsonl.gz"


# --- statistics -------------------------------------------------------------------------------

def recording_stats(recording: Recording) -> dict[str, Any]:
    """Numbers that say whether a recording looks like its target (used by ``inspect``)."""
    blocks = recording.blocks
    ts = [b.timestamp for b in blocks]
    intervals = [b - a for a, b in itertools.pairwise(ts)]
    params = recording.source.get("profile_params") or {}
    nominal = float(params.get("interval_s") or (
        Counter(intervals).most_common(1)[0][0] if intervals else 2.0))
    per_block: list[int] = []
    order_filled = v1 = 0
    for b in blocks:
        txs = set()
        for log in b.logs:
            topics = log["topics"]
            if (len(topics) == 4 and topics[0] in ORDER_FILLED_TOPICS
                    and log["address"] in DEFAULT_EXCHANGES):
                order_filled += 1
                v1 += topics[0] == ORDER_FILLED_V1
                txs.add(log["transactionHash"])
        per_block.append(len(txs))
    wallets = trades_by_wallet(recording)
    ranked = sorted(wallets.values(), reverse=True)
    top = max(1, len(ranked) // 100)
    span = ts[-1] - ts[0] if ts else 0
    # whole-second timestamps: a plain 1.75-s interval reads 1 or 2 s, a gap is longer
    plain_max = float(int(nominal)) if nominal == int(nominal) else float(int(nominal) + 1)
    gaps = [i for i in intervals if i > plain_max + 1e-9]
    integral = nominal == int(nominal)
    return {
        "blocks": len(blocks),
        "first_block": recording.first_block,
        "last_block": recording.last_block,
        "time_span_s": span,
        "interval_nominal_s": nominal,
        "interval_mean_s": statistics.fmean(intervals) if intervals else 0.0,
        "interval_max_s": max(intervals) if intervals else 0,
        "interval_nominal_share": (sum(1 for i in intervals if i == nominal) / len(intervals)
                                   if intervals and integral else None),
        "gaps": len(gaps),
        "gaps_not_multiple": (sum(1 for g in gaps if g % nominal) if integral else None),
        "transactions": sum(len(b.block.get("transactions", [])) for b in blocks),
        "logs": sum(len(b.logs) for b in blocks),
        "trade_tx_per_block_mean": statistics.fmean(per_block) if per_block else 0.0,
        "trade_tx_per_block_var": statistics.pvariance(per_block) if len(per_block) > 1 else 0.0,
        "trade_tx_per_block_max": max(per_block, default=0),
        "blocks_without_trade_share": (per_block.count(0) / len(per_block)) if per_block else 0.0,
        "blocks_with_20plus_trade_tx": sum(1 for n in per_block if n >= 20),
        "order_filled": order_filled,
        "order_filled_v1": v1,
        "order_filled_v2": order_filled - v1,
        "order_filled_per_s": order_filled / span if span else 0.0,
        "wallets": len(wallets),
        "top1pct_wallet_share": (sum(ranked[:top]) / sum(ranked)) if ranked else 0.0,
        "top_wallets": sorted(wallets.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
    }
