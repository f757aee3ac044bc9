"""The splitter's edge: prompts the router cuts run as pieces in parallel, each where it finishes soonest.

Decisions are pure (route_prompt, plan_pieces, apply_split_event); this module runs each piece through
run_chat (the work service: this unit or a peer, with its own fall-back when a peer is lost) in a thread
of its own, feeds their events to the answer one at a time, and yields what the answer emits.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable

from appliance.engine.engine_types import (
    CancelSignal,
    ChatEvent,
    ChatRequest,
    ChatStream,
    ClientPlaces,
    EngineError,
    StreamChat,
)
from appliance.engine.hold_client_place import hold_client_place
from appliance.split.apply_split_event import apply_split_event
from appliance.split.plan_pieces import plan_pieces
from appliance.split.route_prompt import route_prompt
from appliance.split.split_types import (
    MAX_PIECES,
    MIN_PIECE_TOKENS,
    SPLITS_PER_CLIENT,
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
    Route,
    RunPiece,
    RunReduce,
    SplitAnswer,
    SplitBegun,
    SplitEvent,
    SplitPlan,
    SplitService,
)

_log = logging.getLogger("iplm.split")
_POLL_S = 0.25
_CHARS_PER_TOKEN = 4


def _route_of(request: ChatRequest, units: int, context_tokens: int) -> tuple[Route, str] | None:
    """The router's cut of a request and the text it cut, or None when it runs whole. units: the chats that
    can run at once in reach (ready sequences here and on peers)."""
    params = request.params
    if not request.split or request.reply_prefix or params.json_schema or params.json_object or params.stop:
        return None
    users = [message for message in request.messages if message["role"] == "user"]
    if not users or request.messages[-1]["role"] != "user":
        return None
    text = request.messages[-1]["content"]
    route = route_prompt(text, has_history=len(users) > 1, most_parts=units)
    if route.kind == "whole":
        return None
    if units < 2 and (route.kind == "sections" or len(text) // _CHARS_PER_TOKEN < context_tokens // 2):
        # One sequence would run the pieces one after the other, each with its own prompt: slower than
        # whole for the same text. A long text is still read in parts there when it would crowd the context.
        return None
    if any(len(part) // _CHARS_PER_TOKEN >= context_tokens for part in route.parts):
        return None  # a part no unit can read: whole, the engine refuses it plainly (context_length_exceeded)
    return route, text


def _piece_request(request: ChatRequest, prompt: str, max_tokens: int | None, slot: int) -> ChatRequest:
    # A piece stands alone: the person's system prompt (if any) and the piece; no history, never split again.
    system = tuple(message for message in request.messages if message["role"] == "system")
    return dataclasses.replace(
        request,
        messages=(*system, {"role": "user", "content": prompt}),
        params=dataclasses.replace(request.params, max_tokens=max_tokens),
        # One queue place per unit that can run a piece: a phone's prompt takes no more of a unit than a chat.
        client_key=f"{request.client_key}/piece{slot}",
        fit_history=False,
        split=False,
    )


def _piece_tokens(request: ChatRequest, plan: SplitPlan) -> int | None:
    # The asked length is the whole answer's: the pieces share it (map-reduce keeps half for its merge).
    asked = request.params.max_tokens
    if asked is None:
        return None
    shares = len(plan.pieces) * (2 if plan.kind == "map_reduce" else 1)
    return max(MIN_PIECE_TOKENS, asked // shares)


def _run_piece(
    run_chat: StreamChat, index: int, request: ChatRequest, cancel: threading.Event, inbox: queue.Queue
) -> None:
    try:
        for event in run_chat(request, cancel):
            if event.kind == "start":
                inbox.put(PieceStarted(index, event.unit))
            elif event.kind == "delta":
                inbox.put(PieceText(index, event.text))
            elif event.kind == "done":
                inbox.put(PieceEnded(index, event.finish_reason or "stop", event.completion_tokens))
                return
        inbox.put(PieceFailed(index, "its stream ended early"))
    except EngineError as exc:
        inbox.put(PieceFailed(index, exc.message))
    except Exception:  # the piece broke; the answer runs it again or shows the gap, the unit stays up
        _log.exception("piece %d failed", index)
        inbox.put(PieceFailed(index, "its unit failed"))


def _stream_split(
    run_chat: StreamChat, request: ChatRequest, cancel: CancelSignal, plan: SplitPlan, width: int
) -> ChatStream:
    answer = SplitAnswer(plan=plan, pieces=tuple(PieceState() for _ in plan.pieces), width=max(1, width))
    inbox: queue.Queue[SplitEvent] = queue.Queue()
    cancels = [threading.Event() for _ in plan.pieces]
    reduce_cancel = threading.Event()
    piece_tokens = _piece_tokens(request, plan)
    prompt_chars = sum(len(piece.prompt) for piece in plan.pieces)
    slots: dict[int, int] = {}
    _log.info("a prompt split in %d pieces (%s, planned by %s)", len(plan.pieces), plan.kind, plan.planner)
    yield ChatEvent(
        "start", prompt_tokens=prompt_chars // _CHARS_PER_TOKEN + 1, plan=tuple(piece.title for piece in plan.pieces)
    )
    try:
        events: list[SplitEvent] = [SplitBegun()]
        while answer.phase not in ("done", "cancelled"):
            if not events:
                if cancel.is_set():
                    events.append(ClientGone())
                else:
                    try:
                        events.append(inbox.get(timeout=_POLL_S))
                    except queue.Empty:
                        continue
            answer, effects = apply_split_event(answer, events.pop(0))
            for effect in effects:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, RunPiece):
                    # A free slot: the pieces running now never share one (width of them at most).
                    running = (i for i, piece in enumerate(answer.pieces) if piece.phase == "running")
                    busy = {slots[i] for i in running if i in slots and i != effect.index}
                    slots[effect.index] = next(slot for slot in range(len(plan.pieces)) if slot not in busy)
                    cancels[effect.index] = threading.Event()
                    piece = _piece_request(request, plan.pieces[effect.index].prompt, piece_tokens, slots[effect.index])
                    threading.Thread(
                        target=_run_piece,
                        args=(run_chat, effect.index, piece, cancels[effect.index], inbox),
                        name=f"iplm-piece-{effect.index}",
                        daemon=True,
                    ).start()
                elif isinstance(effect, CancelPieces):
                    for piece_cancel in cancels:
                        piece_cancel.set()
                    reduce_cancel.set()
                elif isinstance(effect, RunReduce):
                    merge = dataclasses.replace(
                        _piece_request(request, effect.prompt, request.params.max_tokens, 0),
                        client_key=request.client_key,
                    )
                    threading.Thread(
                        target=_run_reduce, args=(run_chat, merge, reduce_cancel, inbox), name="iplm-merge", daemon=True
                    ).start()
    finally:
        # Closed early (the client left while the server wrote): every piece stops, here and on peers.
        for piece_cancel in cancels:
            piece_cancel.set()
        reduce_cancel.set()


def _run_reduce(run_chat: StreamChat, request: ChatRequest, cancel: threading.Event, inbox: queue.Queue) -> None:
    """map-reduce's merge step; its text streams to the client as the answer."""
    try:
        for event in run_chat(request, cancel):
            if event.kind == "delta":
                inbox.put(ReduceText(event.text))
            elif event.kind == "done":
                inbox.put(ReduceEnded(event.finish_reason or "stop", event.completion_tokens))
                return
        inbox.put(ReduceFailed("its stream ended early"))
    except EngineError as exc:
        inbox.put(ReduceFailed(exc.message))
    except Exception:
        _log.exception("the merge step failed")
        inbox.put(ReduceFailed("its unit failed"))


def _stream_chat(
    run_chat: StreamChat,
    width: Callable[[], int],
    context_tokens: Callable[[], int],
    ask_model: Callable[[str, dict], str] | None,
    clients: ClientPlaces,
    request: ChatRequest,
    cancel: CancelSignal,
) -> ChatStream:
    units = width()
    routed = _route_of(request, units, context_tokens())
    if routed is None:
        yield from run_chat(request, cancel)
        return
    # The client's place is taken before any planning: a phone cannot keep the model planner busy either.
    refusal = f"This device already has {SPLITS_PER_CLIENT} answers on the way; wait for one to finish."
    with hold_client_place(clients, request.client_key, SPLITS_PER_CLIENT, refusal):
        plan = plan_pieces(*routed, ask_model)
        if not 2 <= len(plan.pieces) <= MAX_PIECES:
            yield from run_chat(request, cancel)
            return
        yield from _stream_split(run_chat, request, cancel, plan, units)


def start_split_chats(
    *,
    run_chat: StreamChat,
    width: Callable[[], int],
    context_tokens: Callable[[], int],
    ask_model: Callable[[str, dict], str] | None = None,
) -> SplitService:
    """The splitter in front of run_chat (Engine.stream_chat's shape: the work service's, which places each
    chat). width(): how many pieces may run at once (the chats that can run at once: this unit's ready
    sequences and those of its ready peers). context_tokens(): the model's context here.
    ask_model(prompt, schema): the model planner (None: the rules cut)."""
    clients = ClientPlaces()
    return SplitService(
        stream_chat=lambda request, cancel: _stream_chat(
            run_chat, width, context_tokens, ask_model, clients, request, cancel
        ),
    )
