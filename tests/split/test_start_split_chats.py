"""The splitter's edge with a stand-in for the work service: pieces run in threads, their events in order."""

import dataclasses
import threading
import time

import pytest

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest, EngineError
from appliance.split.split_types import MIN_PIECE_TOKENS
from appliance.split.start_split_chats import start_split_chats

QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?\n3. How do magnets work?"


class _Units:
    """run_chat: answers each prompt with its own words reversed, counting who runs at once."""

    def __init__(self, fail_first=(), hold=None):
        self.lock = threading.Lock()
        self.requests, self.cancels = [], []
        self.running = self.most = 0
        self.fail_first = set(fail_first)
        self.hold = hold  # an Event the pieces wait on before they end

    def run_chat(self, request, cancel):
        prompt = request.messages[-1]["content"]
        with self.lock:
            self.requests.append(request)
            self.cancels.append(cancel)
            self.running += 1
            self.most = max(self.most, self.running)
            fail = prompt in self.fail_first
            self.fail_first.discard(prompt)
        try:
            yield ChatEvent("start", prompt_tokens=5, unit="attic" if "thunder" in prompt else "")
            if fail:
                raise EngineError("engine_failed", "the worker died")
            for word in reversed(prompt.split()):
                yield ChatEvent("delta", text=word + " ")
                if len(prompt) < 200:  # short pieces take a moment, so that they overlap
                    time.sleep(0.01)
            while self.hold is not None and not self.hold.is_set():
                if cancel.is_set():
                    yield ChatEvent("done", finish_reason="cancelled")
                    return
                time.sleep(0.01)
            yield ChatEvent("done", finish_reason="stop", completion_tokens=len(prompt.split()))
        finally:
            with self.lock:
                self.running -= 1


def _request(text, **changes):
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": text})
    return ChatRequest(messages=messages, client_key="phone1", **{"split": True, **changes})


def test_a_prompt_that_suits_no_split_runs_whole_and_unchanged():
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 4, context_tokens=lambda: 2048)
    for request in (_request("Tell me a story."), _request(QUESTIONS, split=False)):
        events = list(split.stream_chat(request, threading.Event()))
        assert units.requests[-1] is request
        assert events[0].plan == ()


def test_a_prompt_with_a_schema_or_stop_words_runs_whole():
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 4, context_tokens=lambda: 2048)
    for params in (ChatParams(json_object=True), ChatParams(stop=("###",)), ChatParams(json_schema={"type": "object"})):
        list(split.stream_chat(_request(QUESTIONS, params=params), threading.Event()))
    assert len(units.requests) == 3 and all(r.split for r in units.requests)


def test_pieces_run_alone_under_their_own_queue_places_and_the_answer_has_each_once():
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 2, context_tokens=lambda: 2048)
    events = list(split.stream_chat(_request(QUESTIONS, params=ChatParams(max_tokens=300)), threading.Event()))
    assert events[0].kind == "start"
    assert events[0].plan == ("Why is the sea salty?", "What causes thunder?", "How do magnets work?")
    assert units.most == 2  # the width: never more pieces at once than units to run them
    for request in units.requests:
        assert request.messages[0] == {"role": "system", "content": "Be brief."} and len(request.messages) == 2
        assert request.split is False and request.params.max_tokens == 100
        assert request.client_key in ("phone1/piece0", "phone1/piece1")
    answer = "".join(e.text for e in events if e.kind == "delta")
    for title, reply in (
        ("Why is the sea salty?", "salty? sea the is Why"),
        ("What causes thunder?", "thunder? causes What"),
        ("How do magnets work?", "work? magnets do How"),
    ):
        assert answer.count(f"### {title}\n\n{reply}") == 1
    assert answer.index("Why is the sea") < answer.index("What causes") < answer.index("How do magnets")
    units_named = {e.unit for e in events if e.kind == "piece" and e.unit}
    assert units_named == {"attic"}
    assert events[-1].kind == "done" and events[-1].completion_tokens == 5 + 3 + 4


def test_pieces_share_a_small_max_tokens_no_lower_than_the_floor():
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048)
    list(split.stream_chat(_request(QUESTIONS, params=ChatParams(max_tokens=30)), threading.Event()))
    assert {r.params.max_tokens for r in units.requests} == {MIN_PIECE_TOKENS}


def test_a_piece_whose_unit_fails_runs_again_and_the_answer_is_whole():
    units = _Units(fail_first={"What causes thunder?"})
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048)
    events = list(split.stream_chat(_request(QUESTIONS), threading.Event()))
    asked = [r.messages[-1]["content"] for r in units.requests]
    assert asked.count("What causes thunder?") == 2
    assert any(e.kind == "piece" and e.finish_reason == "restarted" for e in events)
    answer = "".join(e.text for e in events if e.kind == "delta")
    assert answer.count("thunder? causes What") == 1 and "could not be answered" not in answer


def test_a_client_that_leaves_stops_every_piece():
    units = _Units(hold=threading.Event())
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048)
    cancel = threading.Event()
    stream = split.stream_chat(_request(QUESTIONS), cancel)
    seen = []
    for event in stream:
        seen.append(event)
        if sum(e.kind == "piece" and bool(e.text) for e in seen) >= 3:
            cancel.set()
    assert seen[-1].kind == "done" and seen[-1].finish_reason == "cancelled"
    assert len(units.cancels) == 3 and all(c.is_set() for c in units.cancels)
    deadline = time.monotonic() + 5
    while units.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert units.running == 0


def test_closing_the_stream_early_stops_every_piece():
    units = _Units(hold=threading.Event())
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048)
    stream = split.stream_chat(_request(QUESTIONS), threading.Event())
    next(stream)
    while len(units.cancels) < 3:
        next(stream)
    stream.close()  # the HTTP server saw the phone go
    assert all(c.is_set() for c in units.cancels)


def test_a_long_text_is_answered_by_the_merge_of_its_parts():
    sentence = "tells of the harbour, the boats and the weather that week. "
    body = "\n\n".join(f"Paragraph {n} {sentence * 5}" for n in range(9))
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 2, context_tokens=lambda: 2048)
    events = list(split.stream_chat(_request("Summarise the text below.\n\n" + body), threading.Event()))
    merge = units.requests[-1]
    assert merge.client_key == "phone1" and merge.messages[-1]["content"].startswith("Summarise the text below.")
    parts = len(events[0].plan)
    assert merge.messages[-1]["content"].count("Part ") >= parts
    answer = "".join(e.text for e in events if e.kind == "delta")
    assert answer == "".join(w + " " for w in reversed(merge.messages[-1]["content"].split()))


def test_a_phone_gets_only_as_many_split_answers_at_once_as_whole_chats():
    units = _Units(hold=threading.Event())
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048)
    first, second = (split.stream_chat(_request(QUESTIONS), threading.Event()) for _ in range(2))
    assert next(first).plan and next(second).plan
    third = split.stream_chat(_request(QUESTIONS), threading.Event())
    with pytest.raises(EngineError) as refused:
        next(third)
    assert refused.value.code == "too_many_chats" and refused.value.status == 429
    other = split.stream_chat(dataclasses.replace(_request(QUESTIONS), client_key="phone2"), threading.Event())
    assert next(other).plan  # another phone is not held back
    units.hold.set()
    assert list(first)[-1].finish_reason == "stop"
    again = split.stream_chat(_request(QUESTIONS), threading.Event())
    assert list(again)[-1].finish_reason == "stop"
    for stream in (second, other):
        stream.close()


def test_with_one_worker_in_reach_a_prompt_runs_whole_unless_its_text_would_crowd_the_context():
    units = _Units()
    roomy = start_split_chats(run_chat=units.run_chat, width=lambda: 1, context_tokens=lambda: 2048)
    events = list(roomy.stream_chat(_request(QUESTIONS), threading.Event()))
    assert events[0].plan == () and len(units.requests) == 1
    sentence = "tells of the harbour, the boats and the weather that week. "
    long_text = "Summarise the text below.\n\n" + "\n\n".join(f"Paragraph {n} {sentence * 5}" for n in range(9))
    events = list(roomy.stream_chat(_request(long_text), threading.Event()))
    assert events[0].plan == () and len(units.requests) == 2
    cramped = start_split_chats(run_chat=units.run_chat, width=lambda: 1, context_tokens=lambda: 1024)
    events = list(cramped.stream_chat(_request(long_text), threading.Event()))
    assert len(events[0].plan) >= 2


def test_a_long_text_is_read_in_as_many_parts_as_workers_can_take_at_once():
    sentence = "tells of the harbour, the boats and the weather that week. "
    long_text = "Summarise the text below.\n\n" + "\n\n".join(f"Paragraph {n} {sentence * 5}" for n in range(12))
    parts = {}
    for workers in (2, 3, 6):
        units = _Units()
        split = start_split_chats(run_chat=units.run_chat, width=lambda w=workers: w, context_tokens=lambda: 2048)
        parts[workers] = len(next(split.stream_chat(_request(long_text), threading.Event())).plan)
    assert parts[2] == 2 and parts[2] < parts[3] <= parts[6]


def test_a_phone_at_its_limit_gets_no_time_from_the_model_planner():
    units, asked = _Units(hold=threading.Event()), []

    def ask(prompt, schema):
        asked.append(prompt)
        return ""  # a plan that fails its checks: the rules cut

    split = start_split_chats(run_chat=units.run_chat, width=lambda: 3, context_tokens=lambda: 2048, ask_model=ask)
    held = [split.stream_chat(_request(QUESTIONS), threading.Event()) for _ in range(2)]
    assert all(next(stream).plan for stream in held)
    with pytest.raises(EngineError):
        next(split.stream_chat(_request(QUESTIONS), threading.Event()))
    assert len(asked) == 2
    for stream in held:
        stream.close()


def test_a_text_whose_parts_cannot_fit_any_context_runs_whole_for_a_plain_refusal():
    units = _Units()
    split = start_split_chats(run_chat=units.run_chat, width=lambda: 2, context_tokens=lambda: 256)
    huge = "Summarise the text below.\n\n" + "\n\n".join("word " * 400 for _ in range(8))
    events = list(split.stream_chat(_request(huge), threading.Event()))
    assert events[0].plan == () and units.requests[0].messages[-1]["content"] == huge
