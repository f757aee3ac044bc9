"""Fetch many pieces from several suppliers at once: rarest first, more from faster peers, bad peers dropped,
whole files streamed once from a source that ignores ranges."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
    PieceStreamed,
    Stop,
    Stream,
    StreamedPieceRejected,
    StreamEnded,
    SupplierStanding,
    WorkerBroke,
    WorkWanted,
)
from appliance.library.library_errors import InstallError, LibraryError, SourceError
from appliance.library.library_types import PieceSpec, PieceSupplier, SupplierReport
from appliance.library.stream_source_file import stream_source_file

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


def _next_job(edge: _Edge, cancel: threading.Event) -> Fetch | Stream | None:
    with edge.cond:
        while True:
            edge.state, decision = apply_fetch_event(edge.state, WorkWanted(cancelled=cancel.is_set()))
            if isinstance(decision, Fetch | Stream):
                return decision
            if isinstance(decision, Stop):
                edge.cond.notify_all()
                return None
            edge.cond.wait(_WAIT_S)


def _is_intact(piece: PieceSpec, data: bytes) -> bool:
    return not piece.sha256 or hashlib.sha256(data).hexdigest() == piece.sha256


def _fetch(edge: _Edge, client, job: Fetch, on_piece: Callable[[PieceSpec, bytes], None]) -> FetchEvent:
    piece, supplier = job.piece, edge.state.suppliers[job.supplier].supplier
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
        if not _is_intact(piece, data):
            raise SourceError(code="piece_corrupt", message=f"piece {piece.index} of {piece.path} failed verification")
        on_piece(piece, data)
    except LibraryError as exc:
        return PieceFailed(piece, job.supplier, exc)
    return PieceDelivered(piece, job.supplier, time.monotonic() - started)


def _cut_pieces(chunks: Iterable[bytes], pieces: tuple[PieceSpec, ...]) -> Iterator[tuple[PieceSpec, bytes]]:
    """(piece, its bytes) as each piece passes in a file's chunks; bytes between pieces are dropped unkept."""
    wanted = iter(pieces)
    piece, body, position = next(wanted, None), bytearray(), 0
    for chunk in chunks:
        view = memoryview(chunk)
        while piece is not None and view:
            skip = min(len(view), max(0, piece.offset + len(body) - position))
            take = min(len(view) - skip, piece.length - len(body))
            body += view[skip : skip + take]
            view, position = view[skip + take :], position + skip + take
            if len(body) == piece.length:
                yield piece, bytes(body)
                piece, body = next(wanted, None), bytearray()
        if piece is None:
            return  # past the last piece wanted: the rest of the file is not read
        position += len(view)


def _stream(
    edge: _Edge, client, job: Stream, cancel: threading.Event, on_piece: Callable[[PieceSpec, bytes], None]
) -> FetchEvent:
    """One pass over job's file; each piece reported as it passes; the StreamEnded event to report last."""
    supplier, left = edge.state.suppliers[job.supplier].supplier, list(job.pieces)
    size = job.pieces[0].file_size
    try:
        with contextlib.closing(stream_source_file(supplier.source, job.path, file_size=size, client=client)) as file:
            # Checked chunk by chunk: a pass may read far between pieces (past those already held).
            chunks = itertools.takewhile(lambda _: not cancel.is_set() and edge.state.failure is None, file)
            since = time.monotonic()
            for piece, data in _cut_pieces(chunks, job.pieces):
                left.remove(piece)
                if _is_intact(piece, data):
                    on_piece(piece, data)
                    _apply(edge, PieceStreamed(piece, job.supplier, time.monotonic() - since))
                else:
                    _apply(edge, StreamedPieceRejected(piece, job.supplier))
                since = time.monotonic()
    except LibraryError as exc:
        return StreamEnded(job.supplier, tuple(left), exc)
    return StreamEnded(job.supplier, tuple(left))  # what is left (stopped early) goes back to the queue


def _work(edge: _Edge, client, cancel: threading.Event, on_piece: Callable[[PieceSpec, bytes], None]) -> None:
    while (job := _next_job(edge, cancel)) is not None:
        if job.delay_s:
            time.sleep(job.delay_s)
        try:
            if isinstance(job, Fetch):
                event = _fetch(edge, client, job, on_piece)
            else:
                event = _stream(edge, client, job, cancel, on_piece)
        except Exception as exc:  # a disk error in on_piece: stop everything, the caller reports it
            _apply(edge, WorkerBroke(job.supplier, exc))
            return
        _apply(edge, event)


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
