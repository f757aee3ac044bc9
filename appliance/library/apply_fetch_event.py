"""The multi-supplier fetch's transitions: which piece a free worker fetches from whom, and what a result means.

Rarest pieces first (fetched while the few peers holding them are still there), peers before the origin,
more requests to faster suppliers, a piece that failed somewhere tried elsewhere, a supplier that serves
bad bytes or keeps failing dropped. An origin that answers a range request with the whole file is asked for
whole files from then on (one pass per file, its pieces cut as they pass); a peer that does is dropped.
A piece whose bytes the source serves wrong every time is the source's corrupt copy: everything else is
fetched first, then the fetch fails naming it (pure).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.library.fetch_types import (
    IGNORES_RANGES,
    PIECE_ATTEMPTS,
    RETRYABLE,
    SUPPLIER_FAILURES,
    SUPPLIER_INFLIGHT,
    Carry,
    Fetch,
    FetchDecision,
    FetchEvent,
    FetchState,
    PieceDelivered,
    PieceFailed,
    PieceKey,
    PieceStreamed,
    Stop,
    Stream,
    StreamedPieceRejected,
    StreamEnded,
    SupplierStanding,
    Wait,
    WorkerBroke,
    WorkWanted,
)
from appliance.library.library_errors import InstallError, LibraryError, SourceError
from appliance.library.library_types import PieceSpec
from appliance.route_event import route_event

Step = tuple[FetchState, FetchDecision]
_NAMED_PIECES = 8  # a corrupt copy's message names this many pieces, then counts the rest


def _key(piece: PieceSpec) -> PieceKey:
    return piece.path, piece.index


def _with_supplier(state: FetchState, index: int, standing: SupplierStanding) -> FetchState:
    return dataclasses.replace(
        state, suppliers=tuple(standing if i == index else s for i, s in enumerate(state.suppliers))
    )


def _release(state: FetchState, index: int) -> FetchState:
    standing = state.suppliers[index]
    return _with_supplier(state, index, dataclasses.replace(standing, inflight=standing.inflight - 1))


def _requeue(state: FetchState, pieces: tuple[PieceSpec, ...]) -> FetchState:
    if state.failure is not None or not pieces:
        return state
    return dataclasses.replace(state, queue=(*pieces, *state.queue))  # tried again first


def _rate(standing: SupplierStanding) -> float | None:
    return standing.fetched_bytes / standing.busy_seconds if standing.busy_seconds else None


def _offered_elsewhere(state: FetchState, index: int, piece: PieceSpec) -> bool:
    """Whether a supplier other than `index` can still serve `piece` and has not failed it yet."""
    avoid = state.avoided.get(_key(piece), frozenset())
    return any(
        i != index and not s.dropped and s.holds(piece) and i not in avoid for i, s in enumerate(state.suppliers)
    )


def _pick(state: FetchState, piece: PieceSpec) -> int | None:
    avoid = state.avoided.get(_key(piece), frozenset())
    usable = [
        i for i, s in enumerate(state.suppliers) if not s.dropped and s.holds(piece) and s.inflight < SUPPLIER_INFLIGHT
    ]
    peers = [i for i in usable if not state.suppliers[i].is_origin and i not in avoid]
    candidates = peers or [i for i in usable if i not in avoid] or usable
    if not candidates:
        return None
    known = sorted(r for i in candidates if (r := _rate(state.suppliers[i])) is not None)
    typical = known[len(known) // 2] if known else 1.0

    def expected_wait(index: int) -> float:
        # More requests go to faster suppliers: queue length over measured speed.
        standing = state.suppliers[index]
        return (standing.inflight + 1) / max(_rate(standing) or typical, 1e-9)

    return min(candidates, key=expected_wait)


def _describe_lost(lost: tuple[PieceSpec, ...]) -> SourceError:
    ordered = sorted(lost, key=_key)
    path = ordered[0].path
    indices = [p.index for p in ordered if p.path == path]
    named = ", ".join(str(i) for i in indices[:_NAMED_PIECES]) + (
        f" and {len(indices) - _NAMED_PIECES} more" if len(indices) > _NAMED_PIECES else ""
    )
    pieces = f"piece {named} does" if len(indices) == 1 else f"pieces {named} do"
    others = len(ordered) - len(indices)
    return SourceError(
        code="source_corrupt",
        message=f"the source's copy of {path} is corrupt ({pieces} not match the manifest)"
        + (f"; {others} {'piece' if others == 1 else 'pieces'} of its other files too" if others else ""),
    )


def _claim_stream(state: FetchState, index: int, piece: PieceSpec, delay_s: float) -> Step:
    """A Stream of piece's file from supplier `index`, with every queued piece of that file no one else offers."""
    claimed = tuple(
        sorted(
            (
                p
                for p in state.queue
                if p == piece or (p.path == piece.path and not _offered_elsewhere(state, index, p))
            ),
            key=lambda p: p.offset,
        )
    )
    taken = {_key(p) for p in claimed}
    state = dataclasses.replace(state, queue=tuple(p for p in state.queue if _key(p) not in taken))
    return state, Stream(piece.path, claimed, index, delay_s=delay_s)


def _want(state: FetchState, event: WorkWanted) -> Step:
    if state.lost and state.failure is None and not state.queue and not any(s.inflight for s in state.suppliers):
        state = dataclasses.replace(state, failure=_describe_lost(state.lost))  # all the rest is in: now say it
    if state.failure is not None or event.cancelled or not state.queue:
        return state, Stop()
    for position, piece in enumerate(state.queue):
        index = _pick(state, piece)
        if index is None:
            continue
        standing = state.suppliers[index]
        state = _with_supplier(state, index, dataclasses.replace(standing, inflight=standing.inflight + 1))
        tries = state.attempts.get(_key(piece), 0)
        delay_s = min(2.0, 0.1 * 2 ** (tries - 1)) if tries else 0.0
        if standing.whole_files:
            return _claim_stream(state, index, piece, delay_s)
        state = dataclasses.replace(state, queue=state.queue[:position] + state.queue[position + 1 :])
        return state, Fetch(piece, index, delay_s=delay_s)
    if not any(s.inflight for s in state.suppliers):
        path, index = _key(state.queue[0])
        failure = InstallError(
            code="no_source",
            message=f"no source can serve piece {index} of {path}: every supplier holding it was dropped",
        )
        return dataclasses.replace(state, failure=failure), Stop()
    return state, Wait()


def _credit(state: FetchState, index: int, piece: PieceSpec, seconds: float) -> FetchState:
    standing = state.suppliers[index]
    standing = dataclasses.replace(
        standing,
        failures_in_row=0,
        fetched_bytes=standing.fetched_bytes + piece.length,
        busy_seconds=standing.busy_seconds + seconds,
    )
    return dataclasses.replace(_with_supplier(state, index, standing), remaining=state.remaining - 1)


def _deliver(state: FetchState, event: PieceDelivered) -> Step:
    return _credit(_release(state, event.supplier), event.supplier, event.piece, event.seconds), Carry()


def _stream_piece(state: FetchState, event: PieceStreamed) -> Step:
    return _credit(state, event.supplier, event.piece, event.seconds), Carry()  # the stream's request goes on


def _judge(standing: SupplierStanding, piece: PieceSpec, error: LibraryError) -> tuple[SupplierStanding, bool]:
    """The supplier after this failure, and whether the failure ends the whole fetch."""
    if error.code == "piece_corrupt":
        dropped = (
            None if standing.is_origin else f"served a piece that failed verification ({piece.path} #{piece.index})"
        )
        return dataclasses.replace(standing, dropped=dropped or standing.dropped), False
    if error.code == "source_unavailable" and not standing.is_origin:
        # A peer on the local link that cannot be reached has left or broken: stop asking it.
        return dataclasses.replace(standing, dropped=f"unreachable: {error.message}"), False
    if error.code in RETRYABLE:
        failures = standing.failures_in_row + 1
        dropped = (
            f"failed {failures} pieces in a row: {error.message}"
            if (failures >= SUPPLIER_FAILURES and not standing.is_origin)
            else standing.dropped
        )
        return dataclasses.replace(standing, failures_in_row=failures, dropped=dropped), False
    if not standing.is_origin:
        return dataclasses.replace(standing, dropped=error.message), False  # wrong size, missing file: no use
    return standing, True  # the origin itself is wrong: no retry can help


def _give_up(standing: SupplierStanding, piece: PieceSpec, error: LibraryError) -> LibraryError:
    """What ends the fetch when a piece failed too often: a cut-off transfer says it is one (a re-run resumes)."""
    if error.code != "source_short_read":
        return error
    name = standing.supplier.name or standing.supplier.source.base
    return SourceError(
        code="source_interrupted", message=f"the download of {piece.path} from {name} broke off: {error.message}"
    )


def _count_failure(state: FetchState, index: int, pieces: tuple[PieceSpec, ...], error: LibraryError) -> FetchState:
    """The fetch after `pieces` failed with `error` at supplier `index` (one request: one judgement)."""
    standing, fatal = _judge(state.suppliers[index], pieces[0], error)
    keys = [_key(p) for p in pieces]
    attempts = {**state.attempts, **{k: state.attempts.get(k, 0) + 1 for k in keys}}
    state = dataclasses.replace(
        _with_supplier(state, index, standing),
        attempts=attempts,
        avoided={**state.avoided, **{k: state.avoided.get(k, frozenset()) | {index} for k in keys}},
        rejected=state.rejected + (len(pieces) if error.code == "piece_corrupt" else 0),
    )
    if fatal:
        return dataclasses.replace(state, failure=state.failure or error)
    spent = tuple(p for p in pieces if attempts[_key(p)] >= PIECE_ATTEMPTS * max(1, len(state.suppliers)))
    if spent and error.code == "piece_corrupt":
        state = dataclasses.replace(state, lost=state.lost + spent)  # bad every time: the source's copy is
    elif spent:
        return dataclasses.replace(state, failure=state.failure or _give_up(standing, spent[0], error))
    return _requeue(state, tuple(p for p in pieces if p not in spent))


def _library_error(error: Exception) -> LibraryError:
    return error if isinstance(error, LibraryError) else InstallError(code="install_failed", message=str(error))


def _fall_back_to_streams(state: FetchState, index: int, piece: PieceSpec, error: LibraryError) -> FetchState:
    standing = state.suppliers[index]
    if standing.is_origin:
        standing = dataclasses.replace(standing, whole_files=True)  # no attempt spent: nothing was wrong
    else:
        # Units of the mesh always serve ranges: one that does not is broken.
        standing = dataclasses.replace(standing, dropped=f"ignores ranges: {error.message}")
    return _requeue(_with_supplier(state, index, standing), (piece,))


def _fail(state: FetchState, event: PieceFailed) -> Step:
    state, error = _release(state, event.supplier), _library_error(event.error)
    if error.code == IGNORES_RANGES:
        return _fall_back_to_streams(state, event.supplier, event.piece, error), Carry()
    return _count_failure(state, event.supplier, (event.piece,), error), Carry()


def _reject_streamed(state: FetchState, event: StreamedPieceRejected) -> Step:
    key = _key(event.piece)
    state = dataclasses.replace(
        state,
        attempts={**state.attempts, key: state.attempts.get(key, 0) + 1},
        avoided={**state.avoided, key: state.avoided.get(key, frozenset()) | {event.supplier}},
        rejected=state.rejected + 1,
    )
    if _offered_elsewhere(state, event.supplier, event.piece):
        return _requeue(state, (event.piece,)), Carry()
    # It came complete and wrong from a plain file server: another pass (the file read up to here again)
    # would bring the same bytes. The rest of the file still comes; the fetch fails at the end.
    return dataclasses.replace(state, lost=(*state.lost, event.piece)), Carry()


def _end_stream(state: FetchState, event: StreamEnded) -> Step:
    state = _release(state, event.supplier)
    if not event.unfinished:
        return state, Carry()
    if event.error is None:
        return _requeue(state, event.unfinished), Carry()  # stopped early (cancelled, failed): nothing was wrong
    return _count_failure(state, event.supplier, event.unfinished, _library_error(event.error)), Carry()


def _break(state: FetchState, event: WorkerBroke) -> Step:
    return dataclasses.replace(_release(state, event.supplier), failure=state.failure or event.error), Carry()


_TRANSITIONS: dict[type, Callable[[FetchState, Any], Step]] = {
    WorkWanted: _want,
    PieceDelivered: _deliver,
    PieceFailed: _fail,
    PieceStreamed: _stream_piece,
    StreamedPieceRejected: _reject_streamed,
    StreamEnded: _end_stream,
    WorkerBroke: _break,
}


def apply_fetch_event(state: FetchState, event: FetchEvent) -> Step:
    """The fetch after `event`, and what the worker that sent it does next; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "piece fetch")
