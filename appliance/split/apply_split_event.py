"""A split answer, one event at a time (pure): pieces started as units free up, their text shown as it comes,
each piece's section stitched into the answer exactly once and in order, a failed piece run again, and
map-reduce's merge step once every part has its notes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.engine.engine_types import ChatEvent
from appliance.route_event import route_event
from appliance.split.split_types import (
    PIECE_ATTEMPTS,
    CancelPieces,
    ClientGone,
    Emit,
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
    SplitEffect,
    SplitEvent,
)

Step = tuple[SplitAnswer, list[SplitEffect]]
# What a piece's section says when the piece could not be answered at all: the reader sees the gap.
UNANSWERED = "(This part could not be answered: {reason}.)"


def _with_piece(answer: SplitAnswer, index: int, piece: PieceState) -> SplitAnswer:
    pieces = list(answer.pieces)
    pieces[index] = piece
    return dataclasses.replace(answer, pieces=tuple(pieces))


def _ended(piece: PieceState) -> bool:
    return piece.phase in ("done", "failed")


def _start_waiting(answer: SplitAnswer) -> Step:
    """Start waiting pieces, in order, while fewer than `width` run."""
    effects: list[SplitEffect] = []
    running = sum(piece.phase == "running" for piece in answer.pieces)
    for index, piece in enumerate(answer.pieces):
        if running >= answer.width:
            break
        if piece.phase == "waiting":
            piece = dataclasses.replace(piece, phase="running", attempts=piece.attempts + 1, text="")
            answer = _with_piece(answer, index, piece)
            effects.append(RunPiece(index, piece.attempts))
            running += 1
    return answer, effects


def _section(answer: SplitAnswer, index: int) -> str:
    title, text = answer.plan.pieces[index].title, answer.pieces[index].text.strip()
    gap = "" if index == 0 else "\n\n"
    return f"{gap}### {title}\n\n{text}"


def _reduce_prompt(answer: SplitAnswer) -> str:
    notes = "\n\n".join(
        f"Part {index + 1}: {piece.text.strip()}" for index, piece in enumerate(answer.pieces) if piece.phase == "done"
    )
    return f"{answer.plan.reduce_prompt}\n\n{notes}"


def _advance(answer: SplitAnswer) -> Step:
    """After a piece ended: stitch what can be stitched, start what waits, and finish or reduce at the end."""
    effects: list[SplitEffect] = []
    if answer.plan.kind == "sections":
        while answer.stitched < len(answer.pieces) and _ended(answer.pieces[answer.stitched]):
            effects.append(Emit(ChatEvent("delta", text=_section(answer, answer.stitched))))
            answer = dataclasses.replace(answer, stitched=answer.stitched + 1)
    answer, started = _start_waiting(answer)
    effects.extend(started)
    if not all(_ended(piece) for piece in answer.pieces):
        return answer, effects
    if answer.plan.kind == "map_reduce":
        if not any(piece.phase == "done" for piece in answer.pieces):
            failed = Emit(ChatEvent("delta", text=UNANSWERED.format(reason="no part of the text was read")))
            done = Emit(ChatEvent("done", finish_reason="stop", completion_tokens=answer.completion_tokens))
            return dataclasses.replace(answer, phase="done"), [*effects, failed, done]
        return dataclasses.replace(answer, phase="reducing"), [*effects, RunReduce(_reduce_prompt(answer))]
    # A piece cut at its share of max_tokens makes the answer "length", as a whole reply cut there would be.
    reason = "length" if any(piece.finish_reason == "length" for piece in answer.pieces) else "stop"
    finished = ChatEvent("done", finish_reason=reason, completion_tokens=answer.completion_tokens)
    return dataclasses.replace(answer, phase="done"), [*effects, Emit(finished)]


def _begin(answer: SplitAnswer, event: SplitBegun) -> Step:
    return _start_waiting(answer) if answer.phase == "pieces" else (answer, [])


def _piece_started(answer: SplitAnswer, event: PieceStarted) -> Step:
    piece = answer.pieces[event.index]
    if answer.phase != "pieces" or piece.phase != "running":
        return answer, []
    answer = _with_piece(answer, event.index, dataclasses.replace(piece, unit=event.unit))
    return answer, [Emit(ChatEvent("piece", piece=event.index, unit=event.unit))]


def _piece_text(answer: SplitAnswer, event: PieceText) -> Step:
    piece = answer.pieces[event.index]
    if answer.phase != "pieces" or piece.phase != "running" or not event.text:
        return answer, []
    answer = _with_piece(answer, event.index, dataclasses.replace(piece, text=piece.text + event.text))
    return answer, [Emit(ChatEvent("piece", piece=event.index, text=event.text))]


def _piece_ended(answer: SplitAnswer, event: PieceEnded) -> Step:
    piece = answer.pieces[event.index]
    if answer.phase != "pieces" or piece.phase != "running":
        return answer, []
    piece = dataclasses.replace(piece, phase="done", tokens=event.tokens, finish_reason=event.finish_reason)
    answer = _with_piece(answer, event.index, piece)
    answer = dataclasses.replace(answer, completion_tokens=answer.completion_tokens + event.tokens)
    shown = Emit(ChatEvent("piece", piece=event.index, finish_reason=event.finish_reason))
    answer, effects = _advance(answer)
    return answer, [shown, *effects]


def _piece_failed(answer: SplitAnswer, event: PieceFailed) -> Step:
    piece = answer.pieces[event.index]
    if answer.phase != "pieces" or piece.phase != "running":
        return answer, []
    if piece.attempts < PIECE_ATTEMPTS:
        # Again from its start, wherever it now finishes soonest; the client clears what it showed of it.
        answer = _with_piece(answer, event.index, dataclasses.replace(piece, phase="waiting", text="", unit=""))
        restarted = Emit(ChatEvent("piece", piece=event.index, finish_reason="restarted"))
        answer, effects = _start_waiting(answer)
        return answer, [restarted, *effects]
    text = UNANSWERED.format(reason=event.reason.rstrip("."))
    answer = _with_piece(answer, event.index, dataclasses.replace(piece, phase="failed", text=text))
    shown = Emit(ChatEvent("piece", piece=event.index, finish_reason="failed", text=""))
    answer, effects = _advance(answer)
    return answer, [shown, *effects]


def _reduce_text(answer: SplitAnswer, event: ReduceText) -> Step:
    if answer.phase != "reducing" or not event.text:
        return answer, []
    return answer, [Emit(ChatEvent("delta", text=event.text))]


def _reduce_ended(answer: SplitAnswer, event: ReduceEnded) -> Step:
    if answer.phase != "reducing":
        return answer, []
    tokens = answer.completion_tokens + event.tokens
    done = ChatEvent("done", finish_reason=event.finish_reason, completion_tokens=tokens)
    return dataclasses.replace(answer, phase="done", completion_tokens=tokens), [Emit(done)]


def _reduce_failed(answer: SplitAnswer, event: ReduceFailed) -> Step:
    # No merge: the parts' own notes are the answer, under their headings (nothing read is lost).
    if answer.phase != "reducing":
        return answer, []
    sections = "".join(_section(answer, index) for index in range(len(answer.pieces)))
    done = ChatEvent("done", finish_reason="stop", completion_tokens=answer.completion_tokens)
    return dataclasses.replace(answer, phase="done"), [Emit(ChatEvent("delta", text=sections)), Emit(done)]


def _client_gone(answer: SplitAnswer, event: ClientGone) -> Step:
    if answer.phase in ("done", "cancelled"):
        return answer, []
    done = ChatEvent("done", finish_reason="cancelled", completion_tokens=answer.completion_tokens)
    return dataclasses.replace(answer, phase="cancelled"), [CancelPieces(), Emit(done)]


_TRANSITIONS: dict[type, Callable[[SplitAnswer, Any], Step]] = {
    SplitBegun: _begin,
    PieceStarted: _piece_started,
    PieceText: _piece_text,
    PieceEnded: _piece_ended,
    PieceFailed: _piece_failed,
    ReduceText: _reduce_text,
    ReduceEnded: _reduce_ended,
    ReduceFailed: _reduce_failed,
    ClientGone: _client_gone,
}


def apply_split_event(answer: SplitAnswer, event: SplitEvent) -> Step:
    """The split answer after `event`, and the effects to perform, in order; `answer` is not changed."""
    return route_event(_TRANSITIONS, answer, event, "split answer")
