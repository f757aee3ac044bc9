"""The candidate answers a thinking answer explores (pure): one per part of a many-part prompt, whose
answers are merged, or several whole answers, of which the best is chosen."""

from __future__ import annotations

import dataclasses
from typing import Literal

from appliance.engine.engine_types import ChatParams, ChatRequest
from appliance.split.plan_pieces import plan_pieces
from appliance.split.route_prompt import route_prompt
from appliance.split.split_types import MAX_PIECES
from appliance.thinking.check_grounded import check_grounded
from appliance.thinking.derive_seed import derive_seed
from appliance.thinking.intent_types import IntentModel
from appliance.thinking.thinking_types import Candidate, ThinkingBudget

# Candidates of one prompt differ by their sampling: without it they would all be the same answer.
_CANDIDATE_TEMPERATURE = 0.7
# A component the analyses name becomes a part to answer only when most of them name it and most of its
# words are the prompt's own: a small model's components are often invented.
_COMPONENT_SHARE = 0.6


def _grounded_components(question: str, intent: IntentModel | None) -> tuple[str, ...]:
    if intent is None:
        return ()
    return tuple(
        component.text
        for component in intent.components
        if component.confidence >= _COMPONENT_SHARE and check_grounded(component.text, question)
    )


def _call(request: ChatRequest, index: int, messages: tuple[dict, ...], params: ChatParams, fit: bool) -> ChatRequest:
    # One model call of the answer: whole (never split or thought about again), with a queue place of its own
    # as a split answer's pieces have (the pool queues per client, fairly).
    return dataclasses.replace(
        request,
        messages=messages,
        params=params,
        client_key=f"{request.client_key}/think{index}",
        fit_history=fit,
        split=False,
        thinking=None,
    )


def _clarified(question: str, answers: tuple[str, ...]) -> str:
    if not answers:
        return question
    return f"{question}\n\n(To be clear: {'; '.join(answers)}.)"


def plan_candidates(
    request: ChatRequest,
    *,
    question: str,
    context: tuple[dict, ...],
    answers: tuple[str, ...],
    intent: IntentModel | None,
    budget: ThinkingBudget,
    calls_left: int,
) -> tuple[Literal["choose", "merge"], tuple[Candidate, ...]]:
    """The mode and the candidates for `question` (with the person's `answers` to clarifying questions).

    A prompt the splitter's rules cut into sections, or whose analyses agree on parts that are in its own
    words, gets one candidate per part (each asked on its own, all merged under headings). Any other gets
    budget.candidates whole answers with the conversation so far, each sampled with its own seed.
    At most calls_left candidates, at least one.
    """
    most = max(1, calls_left)
    params = request.params
    route = route_prompt(question, has_history=bool(context), most_parts=min(MAX_PIECES, most))
    # A reply held to a JSON schema (or any JSON) is one value: parts under headings would break it.
    structured = params.json_schema is not None or params.json_object
    if route.kind == "sections" and 2 <= len(route.parts) <= most and not structured:
        pieces = plan_pieces(route, question)
        return "merge", tuple(
            Candidate(
                title=piece.title,
                request=_call(
                    request,
                    index,
                    (*_system(context), {"role": "user", "content": _clarified(piece.prompt, answers)}),
                    params,
                    False,
                ),
                parts=(part,),
            )
            for index, (piece, part) in enumerate(zip(pieces.pieces, route.parts, strict=False))
        )
    components = _grounded_components(question, intent)
    if route.kind == "sections":
        components = route.parts  # more parts than calls: whole answers, each checked for every part
    asked = _clarified(question, answers)
    if 2 <= len(components) <= min(most, MAX_PIECES) and not structured and route.kind != "sections":
        return "merge", tuple(
            Candidate(
                title=component,
                request=_call(
                    request,
                    index,
                    (*_system(context), {"role": "user", "content": f"{asked}\n\nAnswer only this part: {component}"}),
                    params,
                    False,
                ),
                parts=(component,),
            )
            for index, component in enumerate(components)
        )
    count = max(1, min(budget.candidates, most))
    temperature = params.temperature if params.temperature is not None else _CANDIDATE_TEMPERATURE
    messages = (*context, {"role": "user", "content": asked})
    return "choose", tuple(
        Candidate(
            title=f"Candidate {index + 1}",
            request=_call(
                request,
                index,
                messages,
                dataclasses.replace(
                    params,
                    temperature=temperature,
                    seed=(params.seed + index) % 2**63 if params.seed is not None else derive_seed(question, index),
                ),
                True,
            ),
            parts=components,
        )
        for index in range(count)
    )


def _system(context: tuple[dict, ...]) -> tuple[dict, ...]:
    # A part stands alone, as a split answer's piece does: the person's system prompt, no history.
    return tuple(message for message in context if message["role"] == "system")
