"""Fetch many pieces from several suppliers at once: rarest first, more from faster peers, bad peers dropped."""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from typing import Callable

from appliance.library.fetch_source_range import fetch_source_range
from appliance.library.library_errors import InstallError, LibraryError, SourceError
from appliance.library.library_types import PieceSpec, PieceSupplier

_PIECE_ATTEMPTS = 5
_SUPPLIER_FAILURES = 3  # a supplier that fails this many pieces in a row is dropped
_SUPPLIER_INFLIGHT = 4  # requests at once per supplier: enough to fill a link, few enough to share peers
# Worth another try: the network hiccuped, or the bytes were wrong this time (a flaky link, a bad cache).
_RETRYABLE = {"source_unavailable", "source_short_read", "source_bad_response"}


@dataclasses.dataclass(eq=False)
class _State:
    supplier: PieceSupplier
    inflight: int = 0
    fetched_bytes: int = 0
    busy_seconds: float = 0.0
    failures_in_row: int = 0
    dropped: str | None = None

    def holds(self, piece: PieceSpec) -> bool:
        return self.supplier.holds is None or (piece.path, piece.index) in self.supplier.holds

    @property
    def is_origin(self) -> bool:
        return self.supplier.holds is None


def _describe(states: list[_State]) -> list[dict]:
    return [{"name": s.supplier.name or s.supplier.source.base, "origin": s.is_origin,
             "bytes": s.fetched_bytes, "rate_bps": s.fetched_bytes / s.busy_seconds if s.busy_seconds else 0.0,
             "dropped": s.dropped} for s in states]


def _pick(states: list[_State], piece: PieceSpec, avoid: set[int]) -> _State | None:
    usable = [s for s in states if not s.dropped and s.holds(piece) and s.inflight < _SUPPLIER_INFLIGHT]
    peers = [s for s in usable if not s.is_origin and id(s) not in avoid]
    candidates = peers or [s for s in usable if id(s) not in avoid] or usable
    if not candidates:
        return None
    known = [s.fetched_bytes / s.busy_seconds for s in candidates if s.busy_seconds]
    typical = sorted(known)[len(known) // 2] if known else 1.0

    def expected_wait(state: _State) -> float:
        # More requests go to faster suppliers: queue length over measured speed.
        speed = state.fetched_bytes / state.busy_seconds if state.busy_seconds else typical
        return (state.inflight + 1) / max(speed, 1e-9)

    return min(candidates, key=expected_wait)


def fetch_pieces(
    pieces: list[PieceSpec],
    suppliers: list[PieceSupplier],
    *,
    client,
    workers: int,
    cancel: threading.Event,
    on_piece: Callable[[PieceSpec, bytes], None],
    on_tick: Callable[[list[dict], int], None],
    tick_seconds: float = 0.5,
) -> list[dict]:
    """Fetch and verify every piece, calling on_piece(piece, data) for each good one (from worker threads).

    on_tick(suppliers' stats, rejected pieces so far) runs in the calling thread every tick_seconds and at
    the end. Raises LibraryError when a piece cannot be had (the pieces already delivered stay delivered).
    Returns the suppliers' final stats.
    """
    states = [_State(s) for s in suppliers]
    holders = {(p.path, p.index): sum(1 for s in states if not s.is_origin and s.holds(p)) for p in pieces}
    # Rarest first: pieces few peers hold are fetched while those peers are still there.
    queue = sorted(pieces, key=lambda p: (holders[(p.path, p.index)], p.path, p.index))
    attempts: dict[tuple, int] = {}
    avoided: dict[tuple, set[int]] = {}
    rejected = [0]
    failure: list[Exception] = []
    cond = threading.Condition()
    remaining = [len(queue)]

    def take() -> tuple[PieceSpec, _State] | None:
        with cond:
            while True:
                if failure or cancel.is_set() or not queue:
                    return None
                for position, piece in enumerate(queue):
                    state = _pick(states, piece, avoided.get((piece.path, piece.index), set()))
                    if state is not None:
                        del queue[position]
                        state.inflight += 1
                        return piece, state
                if not any(s.inflight for s in states):
                    key = (queue[0].path, queue[0].index)
                    failure.append(InstallError(code="no_source", message=(
                        f"no source can serve piece {key[1]} of {key[0]}: every supplier holding it was dropped")))
                    cond.notify_all()
                    return None
                cond.wait(0.2)

    def settle(piece: PieceSpec, state: _State, error: LibraryError | None) -> None:
        with cond:
            state.inflight -= 1
            key = (piece.path, piece.index)
            if error is None:
                state.failures_in_row = 0
                remaining[0] -= 1
            else:
                attempts[key] = attempts.get(key, 0) + 1
                avoided.setdefault(key, set()).add(id(state))
                if error.code == "piece_corrupt":
                    rejected[0] += 1
                    if not state.is_origin:
                        state.dropped = f"served a piece that failed verification ({piece.path} #{piece.index})"
                elif error.code == "source_unavailable" and not state.is_origin:
                    # A peer on the local link that cannot be reached has left or broken: stop asking it.
                    state.dropped = f"unreachable: {error.message}"
                elif error.code in _RETRYABLE:
                    state.failures_in_row += 1
                    if state.failures_in_row >= _SUPPLIER_FAILURES and not state.is_origin:
                        state.dropped = f"failed {state.failures_in_row} pieces in a row: {error.message}"
                elif not state.is_origin:
                    state.dropped = error.message  # wrong size, missing file: this peer is no use for the model
                else:
                    failure.append(error)  # the origin itself is wrong: no retry can help
                if not failure and attempts[key] >= _PIECE_ATTEMPTS * max(1, len(states)):
                    failure.append(error)
                if not failure:
                    queue.insert(0, piece)
            cond.notify_all()

    def work() -> None:
        while (job := take()) is not None:
            piece, state = job
            started = time.monotonic()
            try:
                data = fetch_source_range(state.supplier.source, piece.path, piece.offset, piece.length,
                                          file_size=piece.file_size, client=client, sign=state.supplier.sign)
                if piece.sha256 and hashlib.sha256(data).hexdigest() != piece.sha256:
                    raise SourceError(code="piece_corrupt",
                                      message=f"piece {piece.index} of {piece.path} failed verification")
                on_piece(piece, data)
            except LibraryError as exc:
                if exc.code in _RETRYABLE or exc.code == "piece_corrupt":
                    time.sleep(min(2.0, 0.1 * 2 ** attempts.get((piece.path, piece.index), 0)))
                settle(piece, state, exc)
                continue
            except Exception as exc:  # a disk error in on_piece: stop everything, the caller reports it
                with cond:
                    state.inflight -= 1
                    failure.append(exc)
                    cond.notify_all()
                return
            with cond:
                state.fetched_bytes += piece.length
                state.busy_seconds += time.monotonic() - started
            settle(piece, state, None)

    threads = [threading.Thread(target=work, daemon=True, name=f"fetch-{i}") for i in range(max(1, workers))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(tick_seconds / len(threads))
        on_tick(_describe(states), rejected[0])
    on_tick(_describe(states), rejected[0])
    if failure:
        raise failure[0]
    if cancel.is_set() and remaining[0]:
        raise InstallError(code="cancelled", message="the install was cancelled")
    return _describe(states)
