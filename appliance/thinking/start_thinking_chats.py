"""The thinking layer's edge: a chat that asks to think runs its analyses and candidates through run_chat
(the work service: this unit or a peer, each call where it starts soonest, with its own fall-back when a
peer is lost), one thread per call, and feeds their events to apply_thinking_event one at a time.
Every other chat goes on to next_chat (the splitter) untouched."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from appliance.engine.engine_types import CancelSignal, ChatRequest, ChatStream, ClientPlaces, EngineError, StreamChat
from appliance.engine.hold_client_place import hold_client_place
from appliance.thinking.apply_thinking_event import apply_thinking_event
from appliance.thinking.decode_intent_model import decode_intent_model
from appliance.thinking.plan_thinking_budget import plan_thinking_budget
from appliance.thinking.thinking_types import (
    ANALYSIS_SHARE,
    THINKS_PER_CLIENT,
    AnalysisEnded,
    AnalysisFailed,
    CancelCalls,
    CandidateEnded,
    CandidateFailed,
    CandidateStarted,
    CandidateText,
    ClientLeft,
    ClockTicked,
    Emit,
    Fail,
    RunAnalysis,
    RunCandidate,
    Thinking,
    ThinkingBegun,
    ThinkingBudget,
    ThinkingEvent,
    ThinkingService,
)

_log = logging.getLogger("iplm.thinking")
_POLL_S = 0.25
_TICK_S = 0.5  # progress and the deadline are looked at this often, however busy the calls are


def _begin_state(request: ChatRequest, budget: ThinkingBudget, now: float) -> Thinking | None:
    """The thinking answer for `request`, or None when it has no question to think about (its newest
    message is not the person's)."""
    ask = request.thinking
    messages = request.messages
    users = [index for index, message in enumerate(messages) if message["role"] == "user"]
    if ask is None or not users or users[-1] != len(messages) - 1:
        return None
    # The newest `asked` user messages answer clarifying questions; the question is the one before them.
    asked = ask.asked if len(users) > ask.asked else 0
    question_at = users[-(asked + 1)]
    prior = decode_intent_model(ask.intent_json) if ask.intent_json else None
    return Thinking(
        request=request,
        question=messages[question_at]["content"],
        context=messages[:question_at],
        answers=tuple(messages[index]["content"] for index in users[len(users) - asked :]),
        asked=asked,
        budget=budget,
        deadline=now + budget.max_seconds,
        analysis_deadline=now + budget.max_seconds * ANALYSIS_SHARE,
        prior=prior,
    )


def _run_analysis(run_chat: StreamChat, index: int, request: ChatRequest, cancel: threading.Event, inbox) -> None:
    text: list[str] = []
    try:
        for event in run_chat(request, cancel):
            if event.kind == "delta":
                text.append(event.text)
            elif event.kind == "done":
                inbox.put(AnalysisEnded(index, "".join(text)))
                return
        inbox.put(AnalysisFailed(index, "its stream ended early"))
    except EngineError as exc:
        inbox.put(AnalysisFailed(index, exc.message))
    except Exception:  # one reading lost; the others still count, the unit stays up
        _log.exception("analysis %d failed", index)
        inbox.put(AnalysisFailed(index, "its unit failed"))


def _run_candidate(run_chat: StreamChat, index: int, request: ChatRequest, cancel: threading.Event, inbox) -> None:
    try:
        for event in run_chat(request, cancel):
            if event.kind == "start":
                inbox.put(CandidateStarted(index, event.unit))
            elif event.kind == "delta":
                inbox.put(CandidateText(index, event.text))
            elif event.kind == "done":
                inbox.put(CandidateEnded(index, event.finish_reason or "stop", event.completion_tokens))
                return
        inbox.put(CandidateFailed(index, "its stream ended early"))
    except EngineError as exc:
        inbox.put(CandidateFailed(index, exc.message))
    except Exception:
        _log.exception("candidate %d failed", index)
        inbox.put(CandidateFailed(index, "its unit failed"))


def _stream_thinking(
    run_chat: StreamChat, thinking: Thinking, cancel: CancelSignal, clock: Callable[[], float]
) -> ChatStream:
    inbox: queue.Queue[ThinkingEvent] = queue.Queue()
    calls: dict[tuple[str, int], threading.Event] = {}
    last_tick = clock()
    events: list[ThinkingEvent] = [ThinkingBegun()]
    _log.info(
        "thinking about a prompt (%d analyses, %d candidates)", thinking.budget.analyses, thinking.budget.candidates
    )
    try:
        while thinking.phase not in ("done", "cancelled"):
            if not events:
                if cancel.is_set():
                    events.append(ClientLeft())
                elif clock() - last_tick >= _TICK_S:
                    last_tick = clock()
                    events.append(ClockTicked(last_tick))
                else:
                    try:
                        events.append(inbox.get(timeout=_POLL_S))
                    except queue.Empty:
                        continue
            thinking, effects = apply_thinking_event(thinking, events.pop(0))
            for effect in effects:
                if isinstance(effect, Emit):
                    yield effect.event
                elif isinstance(effect, Fail):
                    raise EngineError("engine_failed", effect.message, 503)  # a phone may ask again
                elif isinstance(effect, (RunAnalysis, RunCandidate)):
                    kind = "analysis" if isinstance(effect, RunAnalysis) else "candidate"
                    stop = calls[(kind, effect.index)] = threading.Event()
                    target = _run_analysis if isinstance(effect, RunAnalysis) else _run_candidate
                    threading.Thread(
                        target=target,
                        args=(run_chat, effect.index, effect.request, stop, inbox),
                        name=f"iplm-think-{kind}-{effect.index}",
                        daemon=True,
                    ).start()
                elif isinstance(effect, CancelCalls):
                    for (kind, _), stop in calls.items():
                        if kind == effect.kind:
                            stop.set()
    finally:
        for stop in calls.values():  # closed early (the client left while the server wrote): every call stops
            stop.set()


def _stream_chat(
    run_chat: StreamChat,
    next_chat: StreamChat,
    engine_kind: Callable[[], str],
    width: Callable[[], int],
    clock: Callable[[], float],
    clients: ClientPlaces,
    request: ChatRequest,
    cancel: CancelSignal,
) -> ChatStream:
    ask = request.thinking
    budget = None
    if ask is not None:
        budget = plan_thinking_budget(
            ask.effort, engine_kind=engine_kind(), width=width(), max_calls=ask.max_calls, max_seconds=ask.max_seconds
        )
    thinking = None if budget is None else _begin_state(request, budget, clock())
    if thinking is None:
        yield from next_chat(request, cancel)
        return
    refusal = "This device already has a question being thought about; wait for it to finish."
    with hold_client_place(clients, request.client_key, THINKS_PER_CLIENT, refusal):
        yield from _stream_thinking(run_chat, thinking, cancel, clock)


def start_thinking_chats(
    *,
    run_chat: StreamChat,
    next_chat: StreamChat,
    engine_kind: Callable[[], str],
    width: Callable[[], int],
    clock: Callable[[], float] = time.monotonic,
) -> ThinkingService:
    """The thinking layer in front of next_chat. run_chat: where its model calls run (the work service);
    engine_kind() and width() (the chats that can run at once in reach) set its budget
    (plan_thinking_budget); clock: seconds, for its time budget."""
    clients = ClientPlaces()
    return ThinkingService(
        stream_chat=lambda request, cancel: _stream_chat(
            run_chat, next_chat, engine_kind, width, clock, clients, request, cancel
        )
    )
