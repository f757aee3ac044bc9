"""A split answer's transitions: width, in-order stitching exactly once, reruns, the merge step, leaving."""

from appliance.split.apply_split_event import UNANSWERED, apply_split_event
from appliance.split.split_types import (
    PIECE_ATTEMPTS,
    CancelPieces,
    ClientGone,
    Emit,
    Piece,
    PieceEnded,
    PieceFailed,
    PieceStarted,
    PieceState,
    PieceText,
    ReduceEnded,
    ReduceFailed,
    ReduceText,
    RunPiece,
    RunReduce,
    SplitAnswer,
    SplitBegun,
    SplitPlan,
)

TITLES = ("Sea", "Thunder", "Magnets")


def _answer(kind="sections", width=3, n=3):
    pieces = tuple(Piece(TITLES[i], f"question {i}") for i in range(n))
    plan = SplitPlan(kind, pieces, reduce_prompt="Summarise." if kind == "map_reduce" else "")
    return SplitAnswer(plan=plan, pieces=tuple(PieceState() for _ in pieces), width=width)


def _run(answer, *events):
    effects = []
    for event in events:
        answer, more = apply_split_event(answer, event)
        effects.extend(more)
    return answer, effects


def _answer_text(effects):
    return "".join(e.event.text for e in effects if isinstance(e, Emit) and e.event.kind == "delta")


def test_pieces_start_up_to_the_width_and_the_next_when_one_ends():
    answer, effects = _run(_answer(width=2), SplitBegun())
    assert [e for e in effects if isinstance(e, RunPiece)] == [RunPiece(0, 1), RunPiece(1, 1)]
    answer, effects = _run(answer, PieceStarted(1, ""), PieceEnded(1, "stop", 5))
    assert [e for e in effects if isinstance(e, RunPiece)] == [RunPiece(2, 1)]


def test_sections_are_stitched_in_order_each_exactly_once_whatever_order_pieces_end():
    answer, _ = _run(_answer(), SplitBegun())
    answer, early = _run(answer, PieceText(2, "Iron."), PieceEnded(2, "stop", 3), PieceText(1, "Air."))
    assert _answer_text(early) == ""  # piece 0 has not ended: nothing may be stitched yet
    answer, rest = _run(answer, PieceEnded(1, "stop", 2), PieceText(0, "Salt."), PieceEnded(0, "stop", 4))
    text = _answer_text(rest)
    assert text == "### Sea\n\nSalt.\n\n### Thunder\n\nAir.\n\n### Magnets\n\nIron."
    done = [e.event for e in rest if isinstance(e, Emit) and e.event.kind == "done"]
    assert len(done) == 1 and done[0].completion_tokens == 9 and done[0].finish_reason == "stop"
    assert answer.phase == "done"
    # Late events after the end change nothing.
    assert _run(answer, PieceEnded(0, "stop", 4), PieceText(1, "more")) == (answer, [])


def test_piece_progress_is_shown_as_piece_events_not_as_answer_text():
    answer, _ = _run(_answer(), SplitBegun())
    _, effects = _run(answer, PieceStarted(0, "attic"), PieceText(0, "Salt"))
    events = [e.event for e in effects]
    assert [(e.kind, e.piece, e.unit, e.text) for e in events] == [("piece", 0, "attic", ""), ("piece", 0, "", "Salt")]


def test_a_failed_piece_runs_again_from_its_start_then_shows_the_gap():
    answer, _ = _run(_answer(n=2), SplitBegun(), PieceText(0, "half a rep"))
    answer, effects = _run(answer, PieceFailed(0, "its unit failed"))
    assert RunPiece(0, 2) in effects
    assert any(isinstance(e, Emit) and e.event.finish_reason == "restarted" for e in effects)
    assert answer.pieces[0].text == ""
    shown = []
    for _attempt in range(2, PIECE_ATTEMPTS + 1):
        answer, effects = _run(answer, PieceFailed(0, "its unit failed."))
        shown += effects
    assert answer.pieces[0].phase == "failed"
    answer, effects = _run(answer, PieceText(1, "Air."), PieceEnded(1, "stop", 2))
    text = _answer_text(shown + effects)
    assert UNANSWERED.format(reason="its unit failed") in text and "half a rep" not in text
    assert text.count("### ") == 2 and answer.phase == "done"


def test_a_piece_cut_at_its_length_makes_the_answer_length():
    answer, _ = _run(_answer(n=2), SplitBegun())
    _, effects = _run(answer, PieceEnded(0, "length", 9), PieceEnded(1, "stop", 3))
    done = [e.event for e in effects if isinstance(e, Emit) and e.event.kind == "done"]
    assert done[0].finish_reason == "length"


def test_map_reduce_merges_the_parts_notes_once_all_are_in():
    answer, _ = _run(_answer("map_reduce", n=2), SplitBegun())
    answer, effects = _run(answer, PieceText(1, "Note two."), PieceEnded(1, "stop", 3))
    assert not any(isinstance(e, RunReduce) for e in effects)
    answer, effects = _run(answer, PieceText(0, "Note one."), PieceEnded(0, "stop", 3))
    reduce = [e for e in effects if isinstance(e, RunReduce)]
    assert reduce == [RunReduce("Summarise.\n\nPart 1: Note one.\n\nPart 2: Note two.")]
    assert _answer_text(effects) == ""  # the parts' notes are not the answer; the merge is
    answer, effects = _run(answer, ReduceText("All "), ReduceText("told."), ReduceEnded("stop", 4))
    assert _answer_text(effects) == "All told."
    done = [e.event for e in effects if isinstance(e, Emit) and e.event.kind == "done"]
    assert done[0].completion_tokens == 10 and answer.phase == "done"


def test_a_failed_merge_gives_the_notes_under_their_headings():
    answer, _ = _run(_answer("map_reduce", n=2), SplitBegun())
    answer, _ = _run(answer, PieceText(0, "One."), PieceEnded(0, "stop", 1), PieceText(1, "Two."))
    answer, _ = _run(answer, PieceEnded(1, "stop", 1))
    answer, effects = _run(answer, ReduceFailed("busy"))
    assert _answer_text(effects) == "### Sea\n\nOne.\n\n### Thunder\n\nTwo."
    assert answer.phase == "done"


def test_a_client_that_leaves_cancels_every_piece_once():
    answer, _ = _run(_answer(), SplitBegun(), PieceText(0, "x"))
    answer, effects = _run(answer, ClientGone())
    assert CancelPieces() in effects and answer.phase == "cancelled"
    assert [e.event.finish_reason for e in effects if isinstance(e, Emit)] == ["cancelled"]
    assert _run(answer, ClientGone()) == (answer, [])
