"""Fetch many pieces from several suppliers at once: rarest first, more from faster peers, bad peers dropped."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.library.apply_fetch_event import apply_fetch_event
from appliance.library.fetch_source_range import fetch_source_range
from appliance.library.fetch_types import (
    Fetch,
    FetchDecision,
    FetchEvent,
    FetchState,
    PieceDelivered,
    PieceFailed,
    Stop,
    SupplierStanding,
    WorkerBroke,
    WorkWanted,
)
from appliance.library.library_errors import InstallError, LibraryError, SourceError
from appliance.library.library_types import PieceSpec, PieceSupplier, SupplierReport

_WAIT_S = 0.2


@dataclass(eq=False)
class _Edge:
    state: FetchState
    cond: threading.Condition = field(default_factory=threading.Condition)


def _report(state: FetchState) -> list[SupplierReport]:
    return [
        SupplierReport(
            name=s.supplier.name or s.supplier.source.base,
            origin=s.is_origin,
            bytes=s.fetched_bytes,
            rate_bps=s.fetched_bytes / s.busy_seconds if s.busy_seconds else 0.0,
            dropped=s.dropped,
        )
        for s in state.suppliers
    ]


def _apply(edge: _Edge, event: FetchEvent) -> FetchDecision:
    with edge.cond:
        edge.state, decision = apply_fetch_event(edge.state, event)
        edge.cond.notify_all()
    return decision


def _next_job(edge: _Edge, cancel: threading.Event) -> Fetch | None:
    with edge.cond:
        while True:
            edge.state, decision = apply_fetch_event(edge.state, WorkWanted(cancelled=cancel.is_set()))
            if isinstance(decision, Fetch):
                return decision
            if isinstance(decision, Stop):
                edge.cond.notify_all()
                return None
            edge.cond.wait(_WAIT_S)


def _work(edge: _Edge, client, cancel: threading.Event, on_piece: Callable[[PieceSpec, bytes], None]) -> None:
    while (job := _next_job(edge, cancel)) is not None:
        piece, supplier = job.piece, edge.state.suppliers[job.supplier].supplier
        if job.delay_s:
            time.sleep(job.delay_s)
        started = time.monotonic()
        try:
            data = fetch_source_range(
                supplier.source,
                piece.path,
                piece.offset,
                piece.length,
                file_size=piece.file_size,
                client=client,
                sign=supplier.sign,
            )
            if piece.sha256 and hashlib.sha256(data).hexdigest() != piece.sha256:
                raise SourceError(
                    code="piece_corrupt", message=f"piece {piece.index} of {piece.path} failed verification"
                )
            on_piece(piece, data)
        except LibraryError as exc:
            _apply(edge, PieceFailed(piece, job.supplier, exc))
            continue
        except Exception as exc:  # a disk error in on_piece: stop everything, the caller reports it
            _apply(edge, WorkerBroke(job.supplier, exc))
            return
        _apply(edge, PieceDelivered(piece, job.supplier, time.monotonic() - started))


def fetch_pieces(
    pieces: list[PieceSpec],
    suppliers: list[PieceSupplier],
    *,
    client,
    workers: int,
    cancel: threading.Event,
    on_piece: Callable[[PieceSpec, bytes], None],
    on_tick: Callable[[list[SupplierReport], int], None],
    tick_seconds: float = 0.5,
) -> list[SupplierReport]:
    """Fetch and verify every piece, calling on_piece(piece, data) for each good one (from worker threads).

    on_tick(suppliers' reports, rejected pieces so far) runs in the calling thread every tick_seconds and
    at the end. Raises LibraryError when a piece cannot be had (the pieces already delivered stay
    delivered). Returns the suppliers' final reports. The decisions are apply_fetch_event's.
    """
    standings = tuple(SupplierStanding(supplier) for supplier in suppliers)
    holders = {(p.path, p.index): sum(1 for s in standings if not s.is_origin and s.holds(p)) for p in pieces}
    # Rarest first: pieces few peers hold are fetched while those peers are still there.
    queue = tuple(sorted(pieces, key=lambda p: (holders[(p.path, p.index)], p.path, p.index)))
    edge = _Edge(FetchState(suppliers=standings, queue=queue, remaining=len(queue)))
    threads = [
        threading.Thread(target=_work, args=(edge, client, cancel, on_piece), daemon=True, name=f"fetch-{i}")
        for i in range(max(1, workers))
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(tick_seconds / len(threads))
        on_tick(_report(edge.state), edge.state.rejected)
    on_tick(_report(edge.state), edge.state.rejected)
    if edge.state.failure is not None:
        raise edge.state.failure
    if cancel.is_set() and edge.state.remaining:
        raise InstallError(code="cancelled", message="the install was cancelled")
    return _report(edge.state)
