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


# --- a source that ignores ranges: whole files, one pass each ---

IGNORED = SourceError(code="source_ignores_ranges", message="answered 200")


def _whole_file_origin(state, supplier=0):
    """The state once the origin (at `supplier`) answered a range request with the whole file."""
    state, job = _want(state)
    assert isinstance(job, Fetch) and job.supplier == supplier
    state, answer = apply_fetch_event(state, PieceFailed(job.piece, supplier, IGNORED))
    assert answer == Carry()
    return state


def test_an_origin_that_ignores_ranges_is_asked_for_each_file_once():
    pieces = _pieces(3, "a.bin") + _pieces(2, "b.bin")
    state = _whole_file_origin(_state(pieces, ORIGIN))
    assert state.suppliers[0].whole_files and state.suppliers[0].inflight == 0
    assert state.attempts == {} and state.queue[0] == pieces[0]  # nothing was wrong: no attempt spent
    state, first = _want(state)
    assert first == Stream("a.bin", tuple(pieces[:3]), 0)  # every piece of the file, by offset
    state, second = _want(state)
    assert second == Stream("b.bin", tuple(pieces[3:]), 0)
    assert state.queue == () and state.suppliers[0].inflight == 2
    for piece in pieces[:3]:
        state, _ = apply_fetch_event(state, PieceStreamed(piece, 0, 0.1))
    assert state.remaining == 2 and state.suppliers[0].inflight == 2  # the request is still open
    state, _ = apply_fetch_event(state, StreamEnded(0, ()))
    assert state.suppliers[0].inflight == 1 and state.suppliers[0].fetched_bytes == 30


def test_a_peer_that_ignores_ranges_is_dropped_and_the_origin_serves_the_piece():
    pieces = _pieces(2)
    state = _whole_file_origin(_state(pieces, _peer("p", pieces), ORIGIN), supplier=0)
    assert "ignores ranges" in state.suppliers[0].dropped and not state.suppliers[1].whole_files
    state, job = _want(state)
    assert isinstance(job, Fetch) and job.supplier == 1


def _with_whole_file_origin(pieces, peer_holds):
    state = _state(pieces, _peer("p", peer_holds), ORIGIN)
    return dataclasses.replace(
        state, suppliers=(state.suppliers[0], dataclasses.replace(state.suppliers[1], whole_files=True))
    )


def test_a_stream_leaves_to_peers_what_they_offer():
    pieces = _pieces(4)
    state = _with_whole_file_origin(pieces, pieces[2:])
    state, stream = _want(state)
    assert stream == Stream("w.bin", (pieces[0], pieces[1]), 1)
    state, first = _want(state)
    state, second = _want(state)
    assert (first, second) == (Fetch(pieces[2], 0), Fetch(pieces[3], 0))


def test_a_streamed_piece_that_does_not_match_is_the_sources_corrupt_copy_once_the_rest_is_in():
    pieces = _pieces(3)
    state = _whole_file_origin(_state(pieces, ORIGIN))
    state, stream = _want(state)
    state, _ = apply_fetch_event(state, PieceStreamed(pieces[0], 0, 0.1))
    state, _ = apply_fetch_event(state, StreamedPieceRejected(pieces[1], 0))
    assert state.failure is None and state.lost == (pieces[1],) and state.rejected == 1
    state, _ = apply_fetch_event(state, PieceStreamed(pieces[2], 0, 0.1))  # the stream goes on past it
    state, _ = apply_fetch_event(state, StreamEnded(0, ()))
    assert state.remaining == 1
    state, decision = _want(state)
    assert decision == Stop() and state.failure.code == "source_corrupt"
    assert state.failure.message == "the source's copy of w.bin is corrupt (piece 1 does not match the manifest)"


def test_a_streamed_piece_that_does_not_match_comes_from_a_peer_that_holds_it():
    pieces = _pieces(2)
    state = _with_whole_file_origin(pieces, pieces[1:])
    state, stream = _want(state)
    assert stream == Stream("w.bin", (pieces[0],), 1)
    state, _ = apply_fetch_event(state, StreamedPieceRejected(pieces[0], 1))
    assert state.lost == (pieces[0],)  # no peer holds piece 0: the origin's copy is bad
    state = _with_whole_file_origin(pieces, pieces)
    state, _ = apply_fetch_event(state, StreamedPieceRejected(pieces[0], 1))
    assert state.lost == () and state.queue[0] == pieces[0]  # one a peer holds is asked of the peer
    state, job = _want(state)
    assert job == Fetch(pieces[0], 0, delay_s=pytest.approx(0.1))


def test_a_broken_stream_puts_its_pieces_back_and_too_many_breaks_are_an_interrupted_download():
    pieces = _pieces(3)
    state = _whole_file_origin(_state(pieces, ORIGIN))
    cut = SourceError(code="source_short_read", message="http://origin/w.bin broke off after 12 of 30 bytes")
    state, stream = _want(state)
    state, _ = apply_fetch_event(state, PieceStreamed(pieces[0], 0, 0.1))
    state, _ = apply_fetch_event(state, StreamEnded(0, tuple(pieces[1:]), cut))
    assert state.failure is None and state.queue == tuple(pieces[1:]) and state.suppliers[0].inflight == 0
    for _ in range(PIECE_ATTEMPTS - 1):
        state, stream = _want(state)
        assert stream.pieces == tuple(pieces[1:]) and stream.delay_s > 0  # the same pass, started again
        state, _ = apply_fetch_event(state, StreamEnded(0, stream.pieces, cut))
    assert state.failure.code == "source_interrupted"
    assert state.failure.message.startswith("the download of w.bin from origin broke off: ")
    assert _want(state)[1] == Stop()


def test_a_stream_stopped_early_puts_its_pieces_back_without_blame():
    pieces = _pieces(2)
    state = _whole_file_origin(_state(pieces, ORIGIN))
    state, stream = _want(state)
    state, _ = apply_fetch_event(state, StreamEnded(0, stream.pieces))
    assert state.queue == stream.pieces and state.attempts == {} and state.suppliers[0].failures_in_row == 0


def test_a_whole_file_of_another_size_ends_the_fetch():
    pieces = _pieces(2)
    state = _whole_file_origin(_state(pieces, ORIGIN))
    state, stream = _want(state)
    wrong = SourceError(code="source_wrong_size", message="w.bin is 31 bytes on the source; the manifest says 20")
    state, _ = apply_fetch_event(state, StreamEnded(0, stream.pieces, wrong))
    assert state.failure is wrong and _want(state)[1] == Stop()


def test_a_ranged_piece_bad_every_time_is_the_sources_corrupt_copy_after_the_rest():
    pieces = _pieces(2)
    state = _state(pieces, ORIGIN)
    bad = SourceError(code="piece_corrupt", message="failed verification")
    for _ in range(PIECE_ATTEMPTS):
        state, job = _want(state)
        assert job.piece == pieces[0]
        state, _ = apply_fetch_event(state, PieceFailed(job.piece, 0, bad))
    assert state.failure is None and state.lost == (pieces[0],)
    state, job = _want(state)
    state, _ = apply_fetch_event(state, PieceDelivered(job.piece, 0, 0.1))
    state, decision = _want(state)
    assert decision == Stop() and state.failure.code == "source_corrupt" and state.rejected == PIECE_ATTEMPTS


def test_a_corrupt_copy_names_its_pieces_and_counts_those_of_other_files():
    pieces = _pieces(12, "a.bin") + _pieces(2, "b.bin")
    state = _whole_file_origin(_state(pieces, ORIGIN))
    state, stream = _want(state)
    while isinstance(stream, Stream):
        for piece in stream.pieces:
            state, _ = apply_fetch_event(state, StreamedPieceRejected(piece, 0))
        state, _ = apply_fetch_event(state, StreamEnded(0, ()))
        state, stream = _want(state)
    assert state.failure.message == (
        "the source's copy of a.bin is corrupt (pieces 0, 1, 2, 3, 4, 5, 6, 7 and 4 more do not match the "
        "manifest); 2 pieces of its other files too"
    )
