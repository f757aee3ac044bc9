"""The multi-supplier fetch's transitions, one event at a time: no HTTP, no threads, no disk."""

import dataclasses

import pytest

from appliance.library.apply_fetch_event import apply_fetch_event
from appliance.library.fetch_types import (
    PIECE_ATTEMPTS,
    SUPPLIER_FAILURES,
    SUPPLIER_INFLIGHT,
    Carry,
    Fetch,
    FetchState,
    PieceDelivered,
    PieceFailed,
    Stop,
    SupplierStanding,
    Wait,
    WorkerBroke,
    WorkWanted,
)
from appliance.library.library_errors import SourceError
from appliance.library.library_types import ModelSource, PieceSpec, PieceSupplier

ORIGIN = PieceSupplier(source=ModelSource(kind="url", base="http://origin"), name="origin")


def _pieces(count, path="w.bin"):
    return [PieceSpec(path, i, i * 10, 10, count * 10, f"sha{i}") for i in range(count)]


def _peer(name, pieces):
    return PieceSupplier(
        source=ModelSource(kind="url", base=f"http://{name}"),
        holds=frozenset((p.path, p.index) for p in pieces),
        name=name,
    )


def _state(pieces, *suppliers):
    return FetchState(
        suppliers=tuple(SupplierStanding(s) for s in suppliers), queue=tuple(pieces), remaining=len(pieces)
    )


def _want(state, cancelled=False):
    return apply_fetch_event(state, WorkWanted(cancelled=cancelled))


def test_peers_come_before_the_origin_and_the_origin_fills_in():
    pieces = _pieces(2)
    state = _state(pieces, _peer("p", pieces[:1]), ORIGIN)
    state, first = _want(state)
    state, second = _want(state)
    assert (first.piece.index, first.supplier) == (0, 0) and (second.piece.index, second.supplier) == (1, 1)
    state, _ = apply_fetch_event(state, PieceDelivered(first.piece, 0, 0.1))
    state, _ = apply_fetch_event(state, PieceDelivered(second.piece, 1, 0.1))
    assert state.remaining == 0 and _want(state)[1] == Stop()
    assert state.suppliers[0].fetched_bytes == 10 and state.suppliers[0].inflight == 0


def test_a_supplier_takes_at_most_its_share_at_once_then_workers_wait():
    pieces = _pieces(SUPPLIER_INFLIGHT + 1)
    state = _state(pieces, _peer("p", pieces))
    for _ in range(SUPPLIER_INFLIGHT):
        state, decision = _want(state)
        assert isinstance(decision, Fetch)
    assert _want(state)[1] == Wait()


def test_faster_suppliers_get_more():
    pieces = _pieces(4)
    state = _state(pieces, _peer("slow", pieces), _peer("fast", pieces))
    state = dataclasses.replace(
        state,
        suppliers=(
            SupplierStanding(state.suppliers[0].supplier, fetched_bytes=10, busy_seconds=10.0),
            SupplierStanding(state.suppliers[1].supplier, fetched_bytes=100, busy_seconds=1.0),
        ),
    )
    chosen = []
    for _ in range(3):
        state, decision = _want(state)
        chosen.append(decision.supplier)
    assert chosen.count(1) >= 2


def test_a_peer_serving_a_bad_piece_is_dropped_and_the_piece_fetched_elsewhere_after_a_pause():
    pieces = _pieces(1)
    state = _state(pieces, _peer("bad", pieces), ORIGIN)
    state, job = _want(state)
    state, answer = apply_fetch_event(
        state, PieceFailed(job.piece, job.supplier, SourceError(code="piece_corrupt", message="failed verification"))
    )
    assert answer == Carry() and state.rejected == 1 and "verification" in state.suppliers[0].dropped
    state, retry = _want(state)
    assert retry.supplier == 1 and retry.delay_s == pytest.approx(0.1)


def test_a_flaky_peer_is_dropped_after_failures_in_a_row_and_the_origin_is_never_dropped():
    pieces = _pieces(2 * SUPPLIER_FAILURES)
    state = _state(pieces, _peer("flaky", pieces), ORIGIN)
    failures = 0
    while failures < SUPPLIER_FAILURES:
        state, job = _want(state)
        if job.supplier == 0:  # each failed piece moves to the origin; the flaky peer gets the next one
            failures += 1
            state, _ = apply_fetch_event(
                state, PieceFailed(job.piece, 0, SourceError(code="source_short_read", message="cut"))
            )
        else:
            state, _ = apply_fetch_event(state, PieceDelivered(job.piece, 1, 0.1))
    assert state.suppliers[0].dropped.startswith(f"failed {SUPPLIER_FAILURES} pieces in a row")
    state, job = _want(state)
    assert job.supplier == 1
    state, _ = apply_fetch_event(state, PieceFailed(job.piece, 1, SourceError(code="source_short_read", message="cut")))
    assert state.suppliers[1].dropped is None


def test_with_every_holder_dropped_the_fetch_fails_with_no_source():
    pieces = _pieces(1)
    state = _state(pieces, _peer("only", pieces))
    state, job = _want(state)
    state, _ = apply_fetch_event(
        state, PieceFailed(job.piece, 0, SourceError(code="source_unavailable", message="gone"))
    )
    state, decision = _want(state)
    assert decision == Stop() and state.failure.code == "no_source"


def test_an_origin_that_is_wrong_ends_the_fetch_and_so_do_too_many_attempts():
    pieces = _pieces(1)
    state = _state(pieces, ORIGIN)
    state, job = _want(state)
    state, _ = apply_fetch_event(
        state, PieceFailed(job.piece, 0, SourceError(code="source_wrong_size", message="size"))
    )
    assert state.failure.code == "source_wrong_size" and _want(state)[1] == Stop()
    state = _state(pieces, ORIGIN)
    for _ in range(PIECE_ATTEMPTS):
        state, job = _want(state)
        state, _ = apply_fetch_event(
            state, PieceFailed(job.piece, 0, SourceError(code="source_unavailable", message="down"))
        )
    assert state.failure.code == "source_unavailable"


def test_cancel_and_a_broken_worker_stop_the_work():
    pieces = _pieces(2)
    state = _state(pieces, ORIGIN)
    assert _want(state, cancelled=True)[1] == Stop()
    state, job = _want(state)
    state, _ = apply_fetch_event(state, WorkerBroke(job.supplier, OSError("disk")))
    assert isinstance(state.failure, OSError) and _want(state)[1] == Stop() and state.suppliers[0].inflight == 0


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_fetch_event(_state([], ORIGIN), object())
