"""One event of a thinking answer: the new state and the effects to perform (pure).

Analysing: the prompt is analysed several times under INTENT_SCHEMA (sampled), the analyses merged into an
intent model whose confidences are their agreement. Deciding: the rules and the model's agreement decide
whether to ask the person first (decide_to_clarify); asking ends this answer with the question. Exploring:
candidate answers run in parallel (plan_candidates), each checked as it ends (check_candidate). Converging:
the best candidate is chosen, or the parts' answers merged, and only then does the answer go out.
The time budget is kept on ClockTicked: past the deadline, the unit goes on with what it has.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest
from appliance.thinking.check_candidate import check_candidate
from appliance.thinking.decide_to_clarify import decide_to_clarify
from appliance.thinking.derive_seed import derive_seed
from appliance.thinking.draw_reasoning_graph import draw_reasoning_graph
from appliance.thinking.encode_intent_model import encode_intent_model
from appliance.thinking.intent_types import INTENT_SCHEMA, IntentAnalysis
from appliance.thinking.merge_intent_analyses import merge_intent_analyses
from appliance.thinking.plan_candidates import plan_candidates
from appliance.thinking.read_intent_analysis import read_intent_analysis
from appliance.thinking.refine_intent_model import refine_intent_model
from appliance.thinking.thinking_types import (
    AnalysisEnded,
    AnalysisFailed,
    CancelCalls,
    Candidate,
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
    Step,
    Thinking,
    ThinkingBegun,
    ThinkingEffect,
    ThinkingEvent,
)

_CHARS_PER_TOKEN = 4
# A candidate that fails (its stream breaks, its unit is lost and no other takes it) runs again once.
_CANDIDATE_ATTEMPTS = 2
# Analyses differ by sampling: the same prompt read at temperature 0 several times agrees with itself.
_ANALYSIS_TEMPERATURE = 0.8
_ANALYSIS_SYSTEM = (
    "You work out what a person wants from their message. Reply with JSON only: the goal, "
    "the ambiguities (aspects that could be read in more than one way, each with its possible readings; "
    "none if the message is clear), the components (the separate parts of the request), then constraints, "
    "needs, entities, terms and relations."
)
_UNANSWERED = "*(This part could not be answered.)*"

Result = tuple[Thinking, tuple[ThinkingEffect, ...]]


def _thought(thinking: Thinking, step: Step, detail: str) -> Emit:
    return Emit(ChatEvent("thought", text=detail, step=step, graph=draw_reasoning_graph(thinking)))


def _analysis_request(thinking: Thinking, index: int) -> ChatRequest:
    said = f"\n(They clarified: {'; '.join(thinking.answers)}.)" if thinking.answers else ""
    earlier = f"\n(Earlier in the conversation they wanted: {thinking.prior.goal.text}.)" if thinking.prior else ""
    return dataclasses.replace(
        thinking.request,
        messages=(
            {"role": "system", "content": _ANALYSIS_SYSTEM},
            {"role": "user", "content": f"Message: {thinking.question}{said}{earlier}"},
        ),
        params=ChatParams(
            max_tokens=thinking.budget.analysis_tokens,
            temperature=_ANALYSIS_TEMPERATURE,
            seed=derive_seed(thinking.question, index),
            json_schema=INTENT_SCHEMA,
        ),
        client_key=f"{thinking.request.client_key}/think{index}",
        fit_history=False,
        split=False,
        thinking=None,
    )


def _begin(thinking: Thinking) -> Result:
    start = Emit(ChatEvent("start", prompt_tokens=len(thinking.question) // _CHARS_PER_TOKEN + 1))
    # An answer to a clarifying question refines the model kept from the question; nothing to analyse again.
    if (thinking.answers and thinking.prior is not None) or thinking.budget.analyses < 1:
        decided, effects = _decide(thinking)
        return decided, (start, *effects)
    count = min(thinking.budget.analyses, thinking.budget.max_calls - 1)
    running: tuple[Literal["running"], ...] = tuple("running" for _ in range(count))
    analysing = dataclasses.replace(thinking, analyses=running, calls=thinking.calls + count)
    runs = tuple(RunAnalysis(index, _analysis_request(analysing, index)) for index in range(count))
    detail = f"Working out what you want ({count} readings of your question)"
    return analysing, (start, *runs, _thought(analysing, "analysing", detail))


def _intent_event(thinking: Thinking) -> tuple[ThinkingEffect, ...]:
    return () if thinking.intent is None else (Emit(ChatEvent("intent", text=encode_intent_model(thinking.intent))),)


def _decide(thinking: Thinking) -> Result:
    analyses = [analysis for analysis in thinking.analyses if isinstance(analysis, IntentAnalysis)]
    intent = merge_intent_analyses(analyses) if analyses else None
    if intent is None and thinking.answers:
        intent = thinking.prior  # the model kept from the question this answers
    if intent is not None and thinking.answers:
        intent = refine_intent_model(intent, thinking.answers[-1])
    newest = thinking.answers[-1] if thinking.answers else thinking.question
    has_history = bool(thinking.answers) or any(message["role"] == "user" for message in thinking.context)
    clarification = decide_to_clarify(newest, intent, has_history=has_history, asked=thinking.asked)
    decided = dataclasses.replace(thinking, intent=intent, clarification=clarification)
    # The intent is known once decided: kept for the next turn whether or not this answer runs to its end.
    known = _intent_event(decided)
    if clarification is not None:
        asking = dataclasses.replace(decided, phase="done")
        graph = draw_reasoning_graph(asking)
        return asking, (
            *known,
            _thought(asking, "asking", "Asking you what you mean"),
            Emit(ChatEvent("clarify", text=clarification.question, choices=clarification.choices)),
            Emit(ChatEvent("delta", text=clarification.question)),
            Emit(ChatEvent("done", finish_reason="stop", graph=graph)),
        )
    mode, candidates = plan_candidates(
        thinking.request,
        question=thinking.question,
        context=thinking.context,
        answers=thinking.answers,
        intent=intent,
        budget=thinking.budget,
        calls_left=thinking.budget.max_calls - thinking.calls,
    )
    running = tuple(dataclasses.replace(candidate, phase="running", attempts=1) for candidate in candidates)
    exploring = dataclasses.replace(
        decided, phase="exploring", mode=mode, candidates=running, calls=thinking.calls + len(running)
    )
    runs = tuple(RunCandidate(index, candidate.request) for index, candidate in enumerate(running))
    return exploring, (*known, *runs, _thought(exploring, "exploring", _exploring(exploring)))


def _exploring(thinking: Thinking) -> str:
    count = len(thinking.candidates)
    what = (
        f"Answering {count} parts side by side" if thinking.mode == "merge" else f"Exploring {count} candidate answers"
    )
    words = sum(len(candidate.text.split()) for candidate in thinking.candidates)
    return f"{what}: {words} words so far" if words else what


def _analysis_ended(thinking: Thinking, index: int, analysis: IntentAnalysis | None) -> Result:
    if thinking.phase != "analysing" or not 0 <= index < len(thinking.analyses):
        return thinking, ()
    if thinking.analyses[index] != "running":
        return thinking, ()
    analyses = tuple(analysis if i == index else old for i, old in enumerate(thinking.analyses))
    updated = dataclasses.replace(thinking, analyses=analyses)
    if "running" in analyses:
        done = sum(1 for old in analyses if old != "running")
        return updated, (_thought(updated, "analysing", f"Read your question {done} of {len(analyses)} ways"),)
    return _decide(updated)


def _checked(thinking: Thinking, candidate: Candidate) -> Candidate:
    check = check_candidate(
        candidate.text,
        finish_reason=candidate.finish_reason,
        question=thinking.question,
        parts=candidate.parts,
        answers=thinking.answers,
    )
    return dataclasses.replace(
        candidate, score=check.score, notes=check.passed + tuple(f"not: {n}" for n in check.failed)
    )


def _replace(thinking: Thinking, index: int, candidate: Candidate) -> Thinking:
    candidates = tuple(candidate if i == index else old for i, old in enumerate(thinking.candidates))
    return dataclasses.replace(thinking, candidates=candidates)


def _candidate_ended(thinking: Thinking, event: CandidateEnded) -> Result:
    candidate = thinking.candidates[event.index]
    ended = _checked(
        thinking,
        dataclasses.replace(candidate, phase="done", finish_reason=event.finish_reason, tokens=event.tokens),
    )
    updated = _replace(thinking, event.index, ended)
    if any(c.phase in ("waiting", "running") for c in updated.candidates):
        checked = sum(1 for c in updated.candidates if c.score is not None)
        detail = f"Checked {checked} of {len(updated.candidates)} against what you asked"
        return updated, (_thought(updated, "checking", detail),)
    return _converge(updated)


def _candidate_failed(thinking: Thinking, index: int) -> Result:
    candidate = thinking.candidates[index]
    if candidate.attempts < _CANDIDATE_ATTEMPTS and thinking.calls < thinking.budget.max_calls:
        again = dataclasses.replace(candidate, phase="running", text="", unit="", attempts=candidate.attempts + 1)
        updated = dataclasses.replace(_replace(thinking, index, again), calls=thinking.calls + 1)
        return updated, (RunCandidate(index, again.request), _thought(updated, "exploring", _exploring(updated)))
    updated = _replace(thinking, index, dataclasses.replace(candidate, phase="failed"))
    if any(c.phase in ("waiting", "running") for c in updated.candidates):
        return updated, (_thought(updated, "exploring", _exploring(updated)),)
    return _converge(updated)


def _answer_text(thinking: Thinking, chosen: tuple[int, ...]) -> str:
    if thinking.mode == "choose":
        return thinking.candidates[chosen[0]].text.strip()
    sections = []
    for index, candidate in enumerate(thinking.candidates):
        text = candidate.text.strip() if index in chosen else _UNANSWERED
        sections.append(f"### {candidate.title}\n\n{text}")
    return "\n\n".join(sections)


def _converge(thinking: Thinking) -> Result:
    answered = [i for i, c in enumerate(thinking.candidates) if c.phase == "done" and c.text.strip()]
    if thinking.mode == "choose":
        # The best check wins; among equals, the first (the order they were asked in, not the fastest).
        best = max(answered, key=lambda i: (thinking.candidates[i].score or 0.0, -i), default=None)
        chosen: tuple[int, ...] = () if best is None else (best,)
    else:
        chosen = tuple(answered)
    done = dataclasses.replace(thinking, phase="done", chosen=chosen)
    if not chosen:
        return done, (
            _thought(done, "converging", "No candidate answer came back"),
            Fail("No candidate answer came back; ask again."),
        )
    converging = "Merging the parts' answers" if thinking.mode == "merge" else "Choosing the answer that holds up best"
    tokens = sum(done.candidates[i].tokens for i in chosen)
    reasons = {done.candidates[i].finish_reason for i in chosen}
    graph = draw_reasoning_graph(done)
    return done, (
        _thought(done, "converging", converging),
        _thought(done, "answering", "Answering"),
        Emit(ChatEvent("delta", text=_answer_text(done, chosen))),
        Emit(
            ChatEvent(
                "done", finish_reason="length" if "length" in reasons else "stop", completion_tokens=tokens, graph=graph
            )
        ),
    )


def _tick(thinking: Thinking, now: float) -> Result:
    # Past a deadline: go on with what has come back; what has not is stopped.
    if thinking.phase == "analysing" and now >= thinking.analysis_deadline:
        analyses = tuple(None if analysis == "running" else analysis for analysis in thinking.analyses)
        decided, effects = _decide(dataclasses.replace(thinking, analyses=analyses))
        return decided, (CancelCalls("analysis"), *effects)
    if thinking.phase == "exploring" and now >= thinking.deadline:
        cut = thinking
        for index, candidate in enumerate(thinking.candidates):
            if candidate.phase == "running" and candidate.text.strip():
                cut = _replace(
                    cut, index, _checked(cut, dataclasses.replace(candidate, phase="done", finish_reason="length"))
                )
            elif candidate.phase in ("waiting", "running"):
                cut = _replace(cut, index, dataclasses.replace(candidate, phase="failed"))
        converged, effects = _converge(cut)
        return converged, (CancelCalls("candidate"), *effects)
    if thinking.phase == "exploring" and thinking.changed:
        updated = dataclasses.replace(thinking, changed=False)
        return updated, (_thought(updated, "exploring", _exploring(updated)),)
    return thinking, ()


def apply_thinking_event(thinking: Thinking, event: ThinkingEvent) -> Result:
    """The thinking answer after `event`, and what the edge must do. Events about calls that are no longer
    running (a late analysis, a candidate already given up) change nothing."""
    if thinking.phase in ("done", "cancelled"):
        return thinking, ()
    if isinstance(event, ThinkingBegun):
        return _begin(thinking)
    if isinstance(event, ClientLeft):
        left = dataclasses.replace(thinking, phase="cancelled")
        return left, (
            CancelCalls("analysis"),
            CancelCalls("candidate"),
            Emit(ChatEvent("done", finish_reason="cancelled", graph=draw_reasoning_graph(left))),
        )
    if isinstance(event, ClockTicked):
        return _tick(thinking, event.now)
    if isinstance(event, AnalysisEnded):
        return _analysis_ended(thinking, event.index, read_intent_analysis(event.text))
    if isinstance(event, AnalysisFailed):
        return _analysis_ended(thinking, event.index, None)
    index = event.index
    if thinking.phase != "exploring" or not 0 <= index < len(thinking.candidates):
        return thinking, ()
    candidate = thinking.candidates[index]
    if candidate.phase != "running":
        return thinking, ()
    if isinstance(event, CandidateStarted):
        return _replace(thinking, index, dataclasses.replace(candidate, unit=event.unit)), ()
    if isinstance(event, CandidateText):
        grown = dataclasses.replace(candidate, text=candidate.text + event.text)
        return dataclasses.replace(_replace(thinking, index, grown), changed=True), ()
    if isinstance(event, CandidateEnded):
        return _candidate_ended(thinking, event)
    if isinstance(event, CandidateFailed):
        return _candidate_failed(thinking, index)
    return thinking, ()
