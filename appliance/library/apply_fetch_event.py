"""The multi-supplier fetch's transitions: which piece a free worker fetches from whom, and what a result means.

Rarest pieces first (fetched while the few peers holding them are still there), peers before the origin,
more requests to faster suppliers, a piece that failed somewhere tried elsewhere, a supplier that serves
bad bytes or keeps failing dropped (pure).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.library.fetch_types import (
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
    Stop,
    SupplierStanding,
    Wait,
    WorkerBroke,
    WorkWanted,
)
from appliance.library.library_errors import InstallError, LibraryError
from appliance.library.library_types import PieceSpec
from appliance.route_event import route_event

Step = tuple[FetchState, FetchDecision]


def _key(piece: PieceSpec) -> PieceKey:
    return piece.path, piece.index


def _with_supplier(state: FetchState, index: int, standing: SupplierStanding) -> FetchState:
    return dataclasses.replace(
        state, suppliers=tuple(standing if i == index else s for i, s in enumerate(state.suppliers))
    )


def _rate(standing: SupplierStanding) -> float | None:
    return standing.fetched_bytes / standing.busy_seconds if standing.busy_seconds else None


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


def _want(state: FetchState, event: WorkWanted) -> Step:
    if state.failure is not None or event.cancelled or not state.queue:
        return state, Stop()
    for position, piece in enumerate(state.queue):
        index = _pick(state, piece)
        if index is None:
            continue
        standing = state.suppliers[index]
        state = _with_supplier(state, index, dataclasses.replace(standing, inflight=standing.inflight + 1))
        state = dataclasses.replace(state, queue=state.queue[:position] + state.queue[position + 1 :])
        tries = state.attempts.get(_key(piece), 0)
        return state, Fetch(piece, index, delay_s=min(2.0, 0.1 * 2 ** (tries - 1)) if tries else 0.0)
    if not any(s.inflight for s in state.suppliers):
        path, index = _key(state.queue[0])
        failure = InstallError(
            code="no_source",
            message=f"no source can serve piece {index} of {path}: every supplier holding it was dropped",
        )
        return dataclasses.replace(state, failure=failure), Stop()
    return state, Wait()


def _deliver(state: FetchState, event: PieceDelivered) -> Step:
    standing = state.suppliers[event.supplier]
    standing = dataclasses.replace(
        standing,
        inflight=standing.inflight - 1,
        failures_in_row=0,
        fetched_bytes=standing.fetched_bytes + event.piece.length,
        busy_seconds=standing.busy_seconds + event.seconds,
    )
    return dataclasses.replace(_with_supplier(state, event.supplier, standing), remaining=state.remaining - 1), Carry()


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


def _fail(state: FetchState, event: PieceFailed) -> Step:
    key = _key(event.piece)
    standing = state.suppliers[event.supplier]
    standing = dataclasses.replace(standing, inflight=standing.inflight - 1)
    error = (
        event.error
        if isinstance(event.error, LibraryError)
        else InstallError(code="install_failed", message=str(event.error))
    )
    standing, fatal = _judge(standing, event.piece, error)
    attempts = {**state.attempts, key: state.attempts.get(key, 0) + 1}
    state = dataclasses.replace(
        _with_supplier(state, event.supplier, standing),
        attempts=attempts,
        avoided={**state.avoided, key: state.avoided.get(key, frozenset()) | {event.supplier}},
        rejected=state.rejected + (error.code == "piece_corrupt"),
    )
    if fatal or attempts[key] >= PIECE_ATTEMPTS * max(1, len(state.suppliers)):
        return dataclasses.replace(state, failure=state.failure or error), Carry()
    if state.failure is None:
        state = dataclasses.replace(state, queue=(event.piece, *state.queue))  # tried again first
    return state, Carry()


def _break(state: FetchState, event: WorkerBroke) -> Step:
    standing = state.suppliers[event.supplier]
    state = _with_supplier(state, event.supplier, dataclasses.replace(standing, inflight=standing.inflight - 1))
    return dataclasses.replace(state, failure=state.failure or event.error), Carry()


_TRANSITIONS: dict[type, Callable[[FetchState, Any], Step]] = {
    WorkWanted: _want,
    PieceDelivered: _deliver,
    PieceFailed: _fail,
    WorkerBroke: _break,
}


def apply_fetch_event(state: FetchState, event: FetchEvent) -> Step:
    """The fetch after `event`, and what the worker that sent it does next; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "piece fetch")
