"""A synthetic chain rendered ahead on another core.

:class:`AheadSynthSource` is a :class:`~simulator.source.SynthSource` whose blocks are
rendered by a helper process (``spawn``: a clean interpreter, no inherited threads, loop
or open files) that runs the same generator and sends them over a pipe, in batches, as
:mod:`marshal` data (plain dicts, lists, strings: half the time of unpickling them, ~30 us
a default block rather than ~57; the generator's state a checkpoint falls on is pickled
within). The replay then pays for reading a block instead of rendering it (~150-250 us),
and the helper also builds what serving the block
needs that depends on the block alone (its header's JSON, its fills, its transaction
hashes, its filter index, the explorer archive's keys:
:class:`~simulator.chain.PreparedBlock`): a virtual-time run, one process on one
core, gets the second core for that work.

The chain is the same, block for block: the helper is an ordinary ``SynthSource`` and
ships, with each block a checkpoint falls on, the generator's state before it; this side
keeps those checkpoints as its own, so :meth:`~simulator.source.SynthSource.block_at`
(blocks behind the chain's window) regenerates here exactly as without a helper. When the
helper fails (it died, sent something else, or sent nothing within ``wait_s``) this side
goes on from its checkpoints with its own generator: slower, never different. The
failure is logged and counted (:attr:`AheadSynthSource.helper_failures`).

Bounded: the helper is at most a pipe's buffer (1 MB asked for, a few batches) and one
batch ahead (its write blocks).
Waiting for a batch blocks the caller on purpose: the replay runs on the event loop, and
in virtual time an ``await`` with nothing else to do would let the clock jump. The helper
is almost always ahead (rendering is a fraction of what the replay does a block), so the
wait is the first batch's.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import multiprocessing
import pickle
import signal
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from typing import Any

from polyvocab.child_start import stops_held
from simulator.chain import PreparedBlock
from simulator.filters import BlockIndex
from simulator.profiles import Profile
from simulator.recording import RecordedBlock
from simulator.source import SynthSource

__all__ = ["AHEAD_WAIT_S", "AheadSynthSource"]

log = logging.getLogger("simulator.render_ahead")

#: seconds without a batch from the helper before this side renders on its own
AHEAD_WAIT_S = 120.0
_BATCH = 16  # blocks a message: one pipe write and read per 16, not per block
_STOP_S = 5.0  # seconds the helper gets to exit once its pipe is closed
_ITEM_FIELDS = 10  # what _render_loop sends a block: the block's fields, then two more
_BLOCK_FIELDS = 8  # the PreparedBlock's, in its order
#: the helper's last messages kept as they came (bytes: nothing for the garbage collector to
#: walk), this many bytes of them (~36 default batches, ~580 blocks; less than one busy
#: batch): a block asked for again, past the window and the source's small cache (the
#: explorer's index lag, a backfill after an outage: ~250 blocks behind on average in the
#: soak day), is read again from them rather than rendered from a checkpoint. Holding the
#: blocks themselves instead doubled the run's garbage-collection time.
_RAW_BYTES = 8 << 20


class _HelperFailed(Exception):
    pass


#: the pipe's buffer, asked for (Linux's default is 64 KB, ~4 default blocks; a batch of 16
#: is ~280 KB): with room for a few whole batches the helper writes a batch in one go while
#: the replay works, and the replay reads one without waiting. With the default, reading a
#: batch waited for the helper to be scheduled again, several times a batch (~5 % of the
#: run's wall time on a loaded machine). The kernel caps it (``pipe-max-size``, 1 MB by
#: default); what it refuses leaves the default.
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux; named in the fcntl module from 3.10)


def _widen_pipe(conn: Connection) -> None:
    """Ask for a pipe buffer of :data:`_PIPE_BYTES` (best effort: the same blocks come
    either way, only sooner)."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", _F_SETPIPE_SZ),
                    _PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or more than an unprivileged process may have: the default


def _block_of(item: tuple[Any, ...]) -> PreparedBlock:
    """The block of one item :func:`_render_loop` sent (its filter index over its logs)."""
    block, logs, transactions, header_json, fills, tx_hashes, index, keys = (
        item[:_BLOCK_FIELDS])
    return PreparedBlock(block, logs, transactions, header_json, fills, tx_hashes,
                         BlockIndex.of_parts(logs, *index), keys)


def _encode(items: list[tuple[Any, ...]]) -> bytes:
    """One message of :func:`_render_loop`'s items (a block's fields, its index as
    :meth:`~simulator.filters.BlockIndex.parts`, its checkpoint state pickled or None, its
    new nonce keys or None)."""
    return marshal.dumps(items)


def _decode(raw: bytes) -> Any:
    """What :func:`_encode` (or the helper's error report) wrote; raises ``ValueError``,
    ``EOFError`` or ``TypeError`` for bytes that are no such data."""
    return marshal.loads(raw)


#: the helper's garbage-collector thresholds: young collections every 50,000 container
#: allocations, not 700 (as the virtual-time run's own process, ``experiments.virtual``)
_GC_THRESHOLDS = (50_000, 20, 10)


def _quiet_collector() -> None:
    """Fewer collections in the helper: what it has built so far (the universe, the
    generators: alive as long as it is) leaves the collector's view (``gc.freeze``), and
    young collections are spaced out. It renders, pickles and drops blocks, which
    reference counting frees; with the defaults the collector took ~7 % of its CPU
    (~960 young collections a simulated 6 hours, each walking the batch being built).
    Nothing is freed differently, only cyclic garbage later (at most a collection's
    worth of allocations)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def _render_loop(conn: Connection, profile: Profile, seed: int, blocks: int | None,
                 every: int, batch: int) -> None:
    """The helper process: render blocks in order, send them in batches, each item
    ``(header, logs, transactions, header JSON, fills, transaction hashes, filter index,
    explorer archive keys, checkpoint state or None, new nonce keys or None)`` (see
    :class:`~simulator.chain.PreparedBlock`);
    stop when the reader closes the pipe. A failure is sent as ``("error", text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        src = SynthSource(profile, seed=seed, blocks=blocks, checkpoint_every=every)
        _quiet_collector()
        sent_keys = 0
        items: list[tuple[Any, ...]] = []
        while blocks is None or src.produced < blocks:
            block, state = src.render_next()
            src.produced += 1
            keys = None
            if state is not None:  # the nonce table's key order grows as it is saved
                keys = src._nonce_keys[sent_keys:]
                sent_keys = len(src._nonce_keys)
            ready = PreparedBlock.of(block)  # what serving it needs, built here too
            # the index's lists, sent with the logs (it holds their strings: marshalled
            # together, they come back shared); building it there costs ~28 us a default
            # block, reading it back a few
            assert ready.index is not None
            items.append((block.block, block.logs, block.transactions, ready.header_json,
                          ready.fills, ready.tx_hashes, ready.index.parts(),
                          ready.archive_keys,
                          None if state is None else pickle.dumps(
                              state, pickle.HIGHEST_PROTOCOL), keys))
            if len(items) >= batch:
                conn.send_bytes(_encode(items))
                items = []
        if items:
            conn.send_bytes(_encode(items))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the reader is gone (closed or exited): nothing more to do
    except BaseException as exc:  # reported to the parent, which goes on
        with contextlib.suppress(OSError):
            conn.send_bytes(marshal.dumps(("error", f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


class AheadSynthSource(SynthSource):
    """A :class:`SynthSource` rendered by a helper process (see the module docstring)."""

    def __init__(self, profile: str | Profile, *, seed: int, blocks: int | None,
                 wait_s: float = AHEAD_WAIT_S, batch: int = _BATCH, **kwargs: Any) -> None:
        super().__init__(profile, seed=seed, blocks=blocks, **kwargs)
        self.wait_s = wait_s
        self.helper_failures = 0
        self._items: deque[tuple[Any, ...]] = deque()
        # position of a message's first block -> (its block count, the message's bytes)
        self._raw: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._raw_bytes = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        ctx = multiprocessing.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        _widen_pipe(writer)
        try:
            proc = ctx.Process(target=_render_loop, name="render-ahead", daemon=True,
                               args=(writer, self.profile, seed, blocks, self.every,
                                     max(1, batch)))
            with stops_held():  # a stop meanwhile left it reading a closed pipe
                proc.start()
        # no process to be had (out of them; a daemonic process may have no children,
        # multiprocessing's AssertionError): render here
        except (OSError, RuntimeError, AssertionError) as exc:
            reader.close()
            self._failed(f"could not start ({type(exc).__name__}: {exc})")
        else:
            self._proc, self._conn = proc, reader
        finally:
            writer.close()

    @property
    def helper_alive(self) -> bool:
        """True while blocks come from the helper."""
        return self._proc is not None

    def next_block(self) -> RecordedBlock | None:
        if self.count is not None and self.produced >= self.count:
            return None
        if self._proc is not None:
            try:
                item = self._take()
            except _HelperFailed as exc:
                self._failed(str(exc))
                self._stop_helper()
                self._continue_from_checkpoints()
            else:
                state, keys = item[_BLOCK_FIELDS:]
                if state is not None:
                    self._nonce_keys.extend(keys)
                    self._keep_checkpoint(pickle.loads(state))
                self.produced += 1
                return _block_of(item)
        return super().next_block()

    def _take(self) -> tuple[Any, ...]:
        if not self._items:
            conn = self._conn
            assert conn is not None
            try:
                if not conn.poll(self.wait_s):
                    raise _HelperFailed(f"no block within {self.wait_s:g} s")
                raw = conn.recv_bytes()
            except (EOFError, OSError) as exc:
                raise _HelperFailed(f"gone ({type(exc).__name__})") from None
            try:
                msg = _decode(raw)
            except Exception as exc:  # any bytes that are no message
                raise _HelperFailed(f"unreadable message ({type(exc).__name__})") from None
            if not isinstance(msg, list) or not msg or not all(
                    isinstance(item, tuple) and len(item) == _ITEM_FIELDS for item in msg):
                text = msg[1] if isinstance(msg, tuple) and len(msg) == 2 else repr(msg)[:200]
                raise _HelperFailed(f"failed: {text}")
            self._items.extend(msg)
            self._keep_raw(self.produced, len(msg), raw)  # the next block is `produced`
        return self._items.popleft()

    def _keep_raw(self, first: int, count: int, raw: bytes) -> None:
        self._raw[first] = (count, raw)
        self._raw_bytes += len(raw)
        while len(self._raw) > 1 and self._raw_bytes > _RAW_BYTES:
            _first, (_count, old) = self._raw.popitem(last=False)
            self._raw_bytes -= len(old)

    def block_at(self, i: int) -> RecordedBlock:
        if i not in self._cache and 0 <= i < self.produced:
            for first, (count, raw) in self._raw.items():
                if first <= i < first + count:  # the blocks of that message, as they came
                    for k, item in enumerate(_decode(raw)):
                        if first + k < self.produced:
                            self._cache.put(first + k, _block_of(item))
                    break
        return super().block_at(i)

    def _failed(self, why: str) -> None:
        self.helper_failures += 1
        log.warning("render-ahead helper %s: rendering here from block %d on (the same "
                    "chain, slower)", why, self.produced)

    def _stop_helper(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._items.clear()
        if conn is not None:
            conn.close()  # the helper's next write fails: it exits
        if proc is None:
            return
        proc.join(_STOP_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(_STOP_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_STOP_S)

    def close(self) -> None:
        self._stop_helper()
