"""The thinking layer end to end over a scripted engine: analyses, the clarify loop across turns, candidates
in parallel, their checks and convergence, the budget, stopping, and bad model output."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest, EngineError, ThinkingAsk
from appliance.thinking.decode_intent_model import decode_intent_model
from appliance.thinking.intent_types import INTENT_SCHEMA
from appliance.thinking.start_thinking_chats import start_thinking_chats


def _analysis(goal="find out a height", ambiguities=(), components=()) -> str:
    return json.dumps(
        {
            "goal": goal,
            "ambiguities": [{"aspect": a, "readings": list(r)} for a, r in ambiguities],
            "components": list(components),
            "constraints": [],
            "needs": [],
            "entities": [],
            "terms": [],
            "relations": [],
        }
    )


class _Engine:
    """run_chat for the layer: JSON-schema calls are analyses (answered from `analyses`, in turn), the rest
    candidates (answered by `answer(request, attempt)`); every request is kept."""

    def __init__(self, analyses=None, answer=None, delay=0.0):
        self.analyses = list(analyses or [_analysis()])
        self.answer = answer or (lambda request, attempt: "Paris is the capital of France.")
        self.delay = delay
        self.requests: list[ChatRequest] = []
        self.cancels: list[threading.Event] = []
        self.lock = threading.Lock()

    def __call__(self, request: ChatRequest, cancel):
        with self.lock:
            self.requests.append(request)
            self.cancels.append(cancel)
            attempt = sum(1 for r in self.requests if r.messages == request.messages and r.params == request.params)
            count = sum(1 for r in self.requests if r.params.json_schema is INTENT_SCHEMA)
        return self._stream(request, cancel, attempt, count)

    def _stream(self, request, cancel, attempt, count):
        yield ChatEvent("start", prompt_tokens=3, unit="")
        if request.params.json_schema is INTENT_SCHEMA:
            text = self.analyses[(count - 1) % len(self.analyses)]
        else:
            text = self.answer(request, attempt)
        for word in text.split(" "):
            if cancel.is_set():
                yield ChatEvent("done", finish_reason="cancelled")
                return
            time.sleep(self.delay)
            yield ChatEvent("delta", text=word + " ")
        yield ChatEvent("done", finish_reason="stop", completion_tokens=len(text.split()))


def _next_chat(request, cancel):
    yield ChatEvent("start", prompt_tokens=1)
    yield ChatEvent("delta", text="direct")
    yield ChatEvent("done", finish_reason="stop", completion_tokens=1)


def _service(engine, **kwargs):
    return start_thinking_chats(
        run_chat=engine, next_chat=_next_chat, engine_kind=lambda: "llama.cpp", width=lambda: 4, **kwargs
    )


def _ask(*texts, effort="medium", asked=0, intent_json="", client="phone", **kwargs):
    roles = ["user", "assistant"]
    messages = tuple({"role": roles[i % 2], "content": text} for i, text in enumerate(texts))
    thinking = ThinkingAsk(effort=effort, asked=asked, intent_json=intent_json, **kwargs)
    return ChatRequest(messages=messages, client_key=client, thinking=thinking)


def _run(service, request, cancel=None):
    return list(service.stream_chat(request, cancel or threading.Event()))


def _reply(events) -> str:
    return "".join(event.text for event in events if event.kind == "delta")


def test_a_clear_question_is_analysed_explored_checked_and_answered_without_a_question_back():
    engine = _Engine()
    events = _run(_service(engine), _ask("What is the capital of France?"))
    kinds = [event.kind for event in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "clarify" not in kinds
    steps = [event.step for event in events if event.kind == "thought"]
    assert steps[0] == "analysing" and "exploring" in steps and steps[-2:] == ["converging", "answering"]
    assert _reply(events).startswith("Paris is the capital of France.")
    analyses = [r for r in engine.requests if r.params.json_schema is not None]
    candidates = [r for r in engine.requests if r.params.json_schema is None]
    assert len(analyses) == 3 and len(candidates) == 2  # medium: three readings, two candidates
    # Each call is whole, never thought about or split again, with a queue place of its own.
    assert all(r.thinking is None and not r.split for r in engine.requests)
    assert len({r.client_key for r in candidates}) == 2
    assert len({r.params.seed for r in candidates}) == 2  # candidates differ by their sampling
    graph = events[-1].graph
    kinds_drawn = {node["kind"] for node in graph["nodes"]}
    assert {"goal", "candidate", "check", "answer"} <= kinds_drawn
    states = [node["state"] for node in graph["nodes"] if node["kind"] == "candidate"]
    assert sorted(states) == ["chosen", "rejected"]
    ids = {node["id"] for node in graph["nodes"]}
    assert all(edge["from"] in ids and edge["to"] in ids for edge in graph["edges"])
    intent = decode_intent_model(next(event.text for event in events if event.kind == "intent"))
    assert intent is not None and intent.goal.text == "find out a height" and intent.goal.confidence == 1.0


def test_an_unclear_referent_gets_one_question_with_the_readings_the_analyses_agree_on_as_choices():
    readings = ("he", ("Barack Obama", "Michael Jordan"))
    engine = _Engine(analyses=[_analysis(ambiguities=[readings])])
    events = _run(_service(engine), _ask("How tall is he?"))
    clarify = [event for event in events if event.kind == "clarify"]
    assert len(clarify) == 1 and "he" in clarify[0].text
    assert clarify[0].choices == ("Barack Obama", "Michael Jordan")
    assert _reply(events) == clarify[0].text  # a reader that knows only deltas sees the question
    assert events[-1].kind == "done" and events[-1].finish_reason == "stop"
    assert all(r.params.json_schema is not None for r in engine.requests)  # nothing answered yet


def test_the_answer_to_the_question_refines_the_kept_model_and_the_answer_follows_it():
    readings = ("he", ("Barack Obama", "Michael Jordan"))
    engine = _Engine(analyses=[_analysis(ambiguities=[readings])])
    first = _run(_service(engine), _ask("How tall is he?"))
    kept = next(event.text for event in first if event.kind == "intent")
    question = next(event.text for event in first if event.kind == "clarify")

    engine2 = _Engine(answer=lambda request, attempt: "Michael Jordan is 1.98 m tall.")
    events = _run(_service(engine2), _ask("How tall is he?", question, "Michael Jordan", asked=1, intent_json=kept))
    assert not [event for event in events if event.kind == "clarify"]
    assert all(r.params.json_schema is None for r in engine2.requests)  # the kept model, not analysed again
    prompt = engine2.requests[0].messages[-1]["content"]
    assert "How tall is he?" in prompt and "Michael Jordan" in prompt
    refined = decode_intent_model(next(event.text for event in events if event.kind == "intent"))
    assert refined is not None and not refined.ambiguities
    assert refined.constraints[0].text == "he: Michael Jordan" and refined.constraints[0].confidence == 1.0
    assert "Michael Jordan" in _reply(events)
    said = [node for node in events[-1].graph["nodes"] if node["id"] == "said0"]
    assert said and "Michael Jordan" in said[0]["label"]


def test_the_api_without_a_kept_model_analyses_the_question_with_the_answer():
    engine = _Engine()
    _run(_service(engine), _ask("How tall is he?", "Who or what do you mean by “he”?", "Michael Jordan", asked=1))
    analyses = [r for r in engine.requests if r.params.json_schema is not None]
    assert analyses and "Michael Jordan" in analyses[0].messages[-1]["content"]


def test_the_question_budget_is_kept_then_the_unit_answers_with_what_it_has():
    engine = _Engine()
    events = _run(_service(engine), _ask("How tall is he?", "Who?", "him", "Who?", "the other one", asked=2))
    assert not [event for event in events if event.kind == "clarify"] and _reply(events)


@pytest.mark.parametrize("bad", ["", "not json", "{", "[]", '{"goal": 7}', "{" * 5000, '{"goal": "x", "ambig'])
def test_bad_analyses_are_no_model_and_the_rules_still_decide(bad):
    engine = _Engine(analyses=[bad])
    events = _run(_service(engine), _ask("What is the capital of France?"))
    assert _reply(events).startswith("Paris") and events[-1].finish_reason == "stop"
    assert not [event for event in events if event.kind == "intent"] or bad.startswith('{"goal": "x"')
    clarify = _run(_service(_Engine(analyses=[bad])), _ask("How tall is he?"))
    assert [event.kind for event in clarify].count("clarify") == 1


def test_a_many_part_question_is_answered_part_by_part_in_parallel_and_merged():
    def answer(request, attempt):
        return {"France": "Paris.", "Japan": "Mount Fuji.", "Hamlet": "Shakespeare wrote Hamlet."}[
            next(k for k in ("France", "Japan", "Hamlet") if k in request.messages[-1]["content"])
        ]

    engine = _Engine(answer=answer)
    question = "What is the capital of France? What is the tallest mountain in Japan? Who wrote Hamlet?"
    events = _run(_service(engine), _ask(question))
    reply = _reply(events)
    assert reply.index("Paris") < reply.index("Fuji") < reply.index("Shakespeare")
    assert reply.count("### ") == 3
    graph = events[-1].graph
    assert sum(node["kind"] == "component" for node in graph["nodes"]) == 3
    assert [n["state"] for n in graph["nodes"] if n["kind"] == "candidate"] == ["chosen"] * 3


def test_a_candidate_that_fails_runs_again_and_the_answer_still_comes():
    failed = []

    def answer(request, attempt):
        if not failed:
            failed.append(request.params.seed)
            raise EngineError("engine_failed", "the peer was lost", 503)
        return "Paris is the capital of France."

    engine = _Engine(answer=answer)
    events = _run(_service(engine), _ask("What is the capital of France?"))
    assert _reply(events).startswith("Paris")
    candidates = [r for r in engine.requests if r.params.json_schema is None]
    assert len(candidates) == 3 and [r.params.seed for r in candidates].count(failed[0]) == 2  # it ran again


def test_when_every_candidate_fails_the_client_gets_an_error_not_a_hang():
    def answer(request, attempt):
        raise EngineError("engine_failed", "no engine", 503)

    with pytest.raises(EngineError) as failed:
        _run(_service(_Engine(answer=answer)), _ask("What is the capital of France?"))
    assert failed.value.code == "engine_failed"


def test_stopping_mid_thinking_ends_the_answer_and_every_call():
    engine = _Engine(answer=lambda request, attempt: "word " * 400, delay=0.01)
    cancel = threading.Event()
    stream = _service(engine).stream_chat(_ask("What is the capital of France?"), cancel)
    seen = []
    for event in stream:
        seen.append(event)
        if event.kind == "thought" and event.step == "exploring":
            cancel.set()
    assert seen[-1].kind == "done" and seen[-1].finish_reason == "cancelled"
    assert not [event for event in seen if event.kind == "delta"]
    assert all(stop.is_set() for stop in engine.cancels)


def test_past_its_time_the_unit_converges_with_what_came_back():
    now = [0.0]
    engine = _Engine(answer=lambda request, attempt: "Paris is the capital of France. " + "More. " * 2000, delay=0.002)

    def clock():
        now[0] += 0.3
        return now[0]

    events = _run(_service(engine, clock=clock), _ask("What is the capital of France?", max_seconds=5))
    assert events[-1].kind == "done" and events[-1].finish_reason == "length"
    assert _reply(events).startswith("Paris")
    assert all(stop.is_set() for stop in engine.cancels[3:])  # the candidates still running were stopped


def test_the_person_may_cap_the_calls():
    engine = _Engine()
    _run(_service(engine), _ask("What is the capital of France?", max_calls=2))
    assert sum(1 for r in engine.requests if r.params.json_schema is not None) == 1
    assert sum(1 for r in engine.requests if r.params.json_schema is None) == 1


def test_low_effort_and_requests_without_thinking_go_straight_on():
    engine = _Engine()
    assert _reply(_run(_service(engine), _ask("What is the capital of France?", effort="low"))) == "direct"
    plain = ChatRequest(messages=({"role": "user", "content": "hi"},), params=ChatParams())
    assert _reply(_run(_service(engine), plain)) == "direct"
    assert not engine.requests


def test_one_phone_thinks_about_one_question_at_a_time_and_others_are_not_held_up():
    engine = _Engine(answer=lambda request, attempt: "word " * 200, delay=0.01)
    service = _service(engine)
    first = service.stream_chat(_ask("What is the capital of France?"), threading.Event())
    next(first)
    with pytest.raises(EngineError) as refused:
        _run(service, _ask("What is the capital of Spain?"))
    assert refused.value.status == 429
    assert _reply(_run(service, _ask("What is the capital of Spain?", client="other phone")))
    first.close()
    assert _reply(_run(service, _ask("What is the capital of Spain?")))


def test_analyses_that_hang_are_given_up_at_half_the_time_and_the_candidates_get_the_rest():

    class _Hanging(_Engine):
        def _stream(self, request, cancel, attempt, count):
            if request.params.json_schema is None:
                yield from super()._stream(request, cancel, attempt, count)
                return
            yield ChatEvent("start", prompt_tokens=3)
            cancel.wait(10)  # an analysis that never ends by itself
            yield ChatEvent("done", finish_reason="cancelled")

    def clock():  # 40 times real time: the 10 s left for analyses pass in a quarter of a second
        return time.monotonic() * 40

    engine = _Hanging()
    events = _run(_service(engine, clock=clock), _ask("What is the capital of France?", max_seconds=20))
    assert _reply(events).startswith("Paris") and events[-1].finish_reason == "stop"
    assert all(
        stop.is_set()
        for stop, r in zip(engine.cancels, engine.requests, strict=True)
        if r.params.json_schema is not None
    )
    assert not [event for event in events if event.kind == "intent"]  # no analysis came back: the rules decided


def test_a_reply_held_to_json_is_chosen_whole_never_merged_from_parts():
    engine = _Engine(
        answer=lambda request, attempt: '{"capital": "Paris", "mountain": "Fuji", "author": "Shakespeare"}'
    )
    question = "What is the capital of France? What is the tallest mountain in Japan? Who wrote Hamlet?"
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}}
    request = dataclasses.replace(_ask(question), params=ChatParams(json_schema=schema))
    events = _run(_service(engine), request)
    assert json.loads(_reply(events))["capital"] == "Paris"
    candidates = [r for r in engine.requests if r.params.json_schema is schema]
    assert len(candidates) == 2 and all(r.messages[-1]["content"] == question for r in candidates)
