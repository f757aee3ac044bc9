"""llama.cpp with several sequences in one context, with the real default model: streams decoded together."""

import json
import threading

import pytest

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest, EngineError
from appliance.engine.locate_default_model import locate_default_model


@pytest.fixture(scope="module")
def engine():
    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine

    opened = open_llama_cpp_engine(
        str(locate_default_model()), model_id="t", n_ctx=512, n_threads=1, max_tokens=48, sequences=2
    )
    yield opened
    opened.close()


def _ask(text, **params) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), params=ChatParams(temperature=0, **params))


def _run(engine, request, cancel=None) -> tuple[str, ChatEvent]:
    events = list(engine.stream_chat(request, cancel or threading.Event()))
    assert events[0].kind == "start" and events[-1].kind == "done"
    return "".join(e.text for e in events if e.kind == "delta"), events[-1]


def test_it_says_how_many_sequences_it_decodes_and_each_gets_the_whole_context(engine):
    assert engine.sequences == 2 and engine.n_ctx == 512


def test_two_streams_are_decoded_together_and_each_gets_its_own_answer(engine):
    order: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    lock = threading.Lock()

    def run(name, question):
        parts = []
        for event in engine.stream_chat(_ask(question, max_tokens=32), threading.Event()):
            with lock:
                order.append((name, event.kind))
            parts.append(event.text if event.kind == "delta" else "")
        texts[name] = "".join(parts)

    threads = [
        threading.Thread(target=run, args=("a", "What is the capital of France? Answer in one word.")),
        threading.Thread(target=run, args=("b", "Tell a long story about a dragon.")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert "Paris" in texts["a"] and "dragon" in texts["b"].lower()
    # Each reply began before the other ended: they ran at once, not one after the other.
    first_delta = {name: order.index((name, "delta")) for name in "ab"}
    done = {name: order.index((name, "done")) for name in "ab"}
    assert first_delta["a"] < done["b"] and first_delta["b"] < done["a"]


def test_a_reply_is_cut_at_max_tokens_and_counted_in_tokens(engine):
    text, done = _run(engine, _ask("Tell a long story about a dragon.", max_tokens=10))
    assert done.finish_reason == "length" and done.completion_tokens == 10 and text


def test_a_stop_string_ends_the_reply_before_it(engine):
    text, done = _run(engine, _ask("Count from 1 to 10, one number per line.", stop=("4",)))
    assert done.finish_reason == "stop" and "3" in text and "4" not in text


def test_a_json_schema_is_followed(engine):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text, done = _run(engine, _ask("Name the capital of France as JSON.", max_tokens=40, json_schema=schema))
    assert done.finish_reason == "stop" and isinstance(json.loads(text)["city"], str)


def test_a_bad_schema_is_refused_before_the_stream_starts(engine):
    with pytest.raises(EngineError) as refused:
        next(engine.stream_chat(_ask("hi", json_schema={"type": "object", "$ref": "#/nowhere"}), threading.Event()))
    assert refused.value.code == "invalid_schema"


def test_a_prompt_that_leaves_no_room_is_refused(engine):
    with pytest.raises(EngineError) as refused:
        next(engine.stream_chat(_ask("word " * 600), threading.Event()))
    assert refused.value.code == "context_length_exceeded"


def test_a_cancelled_stream_ends_and_its_sequence_serves_the_next_chat(engine):
    cancel = threading.Event()
    stream = engine.stream_chat(_ask("Tell a long story about a dragon.", max_tokens=200), cancel)
    assert next(stream).kind == "start"
    assert next(stream).kind == "delta"
    cancel.set()
    events = list(stream)
    assert events[-1].kind == "done" and events[-1].finish_reason == "cancelled"
    # Both sequences are free again: two more chats run.
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(_run(engine, _ask("Say hello.", max_tokens=8))[1].kind))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == ["done", "done"]


def test_a_reader_that_goes_away_frees_its_sequence(engine):
    stream = engine.stream_chat(_ask("Tell a long story about a dragon.", max_tokens=200), threading.Event())
    next(stream)
    next(stream)
    stream.close()  # what a disconnected phone's generator gets
    _, first = _run(engine, _ask("Say hello.", max_tokens=8))
    _, second = _run(engine, _ask("Say goodbye.", max_tokens=8))
    assert first.kind == second.kind == "done"


def test_characters_made_of_several_tokens_come_out_whole(engine):
    text, _ = _run(engine, _ask("Repeat exactly: 日本語 ✓ café", max_tokens=24))
    assert "\ufffd" not in text and text.strip()


def test_a_continued_reply_goes_on_from_its_prefix(engine):
    request = ChatRequest(
        messages=({"role": "user", "content": "Count from 1 to 10 with commas."},),
        params=ChatParams(temperature=0, max_tokens=24),
        reply_prefix="1, 2, 3,",
    )
    text, done = _run(engine, request)
    assert text.lstrip().startswith("4") and done.finish_reason in ("stop", "length")
