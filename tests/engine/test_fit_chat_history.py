"""A long conversation is fitted to the model's context in one go: the system prompt and the newest kept."""

import threading

import pytest

from appliance.engine.engine_types import ChatParams, ChatRequest, EngineError
from appliance.engine.fit_chat_history import fit_chat_history


def _words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def _conversation(exchanges: int, words: int = 10) -> list[dict]:
    messages = []
    for index in range(exchanges):
        messages.append({"role": "user", "content": " ".join([f"q{index}"] * words)})
        messages.append({"role": "assistant", "content": " ".join([f"a{index}"] * words)})
    return messages


def test_a_conversation_that_fits_is_sent_whole():
    messages = [{"role": "system", "content": "be brief"}, *_conversation(3), {"role": "user", "content": "now"}]
    assert fit_chat_history(messages, _words, 1000) == (messages, 0)


@pytest.mark.parametrize("exchanges", [1, 2, 7, 40, 1000])
def test_the_fewest_oldest_exchanges_go_and_the_system_prompt_stays(exchanges):
    system = {"role": "system", "content": "you are a unit"}
    newest = {"role": "user", "content": "and now?"}
    messages = [system, *_conversation(exchanges), newest]
    budget = 55  # the system prompt, the question and two whole exchanges
    kept, dropped = fit_chat_history(messages, _words, budget)
    assert kept[0] == system and kept[-1] == newest
    assert kept == [system, *messages[1 + dropped :]]
    assert dropped % 2 == 0 and _words(kept) <= budget
    if dropped:  # one exchange fewer would not have fitted
        assert _words([system, *messages[1 + dropped - 2 :]]) > budget
    assert [m["role"] for m in kept[1:]] == ["user", "assistant"] * ((len(kept) - 2) // 2) + ["user"]


def test_the_count_is_asked_a_logarithmic_number_of_times():
    calls = []

    def count(messages):
        calls.append(len(messages))
        return _words(messages)

    fit_chat_history([*_conversation(5000), {"role": "user", "content": "hi"}], count, 100)
    assert len(calls) <= 2 + 14  # two ends, then a binary search over 5000 exchanges


def test_a_newest_message_that_alone_does_not_fit_is_refused():
    messages = [{"role": "system", "content": "s " * 10}, *_conversation(3), {"role": "user", "content": "x " * 50}]
    with pytest.raises(EngineError) as caught:
        fit_chat_history(messages, _words, 40)
    assert (caught.value.code, caught.value.status) == ("context_length_exceeded", 400)


@pytest.mark.engine
def test_llama_cpp_fits_a_long_history_to_its_context():
    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine
    from appliance.engine.locate_default_model import locate_default_model

    engine = open_llama_cpp_engine(str(locate_default_model()), model_id="t", n_ctx=512, n_threads=2, max_tokens=64)
    system = {"role": "system", "content": "Answer in one word."}
    messages = (system, *_conversation(60), {"role": "user", "content": "Say yes."})
    params = ChatParams(max_tokens=4, temperature=0)

    def start(request: ChatRequest):
        events = engine.stream_chat(request, threading.Event())
        first = next(events)
        events.close()
        return first

    try:
        with pytest.raises(EngineError) as caught:  # without fitting, the whole history is refused
            start(ChatRequest(messages=messages, params=params))
        assert caught.value.code == "context_length_exceeded"

        fitted = start(ChatRequest(messages=messages, params=params, fit_history=True))
        dropped = fitted.dropped_messages
        assert dropped > 0 and dropped % 2 == 0 and fitted.prompt_tokens <= 512 - 4
        # Exactly the system prompt and the newest messages were sent: the same prompt, counted by llama.cpp...
        kept = (system, *messages[1 + dropped :])
        assert start(ChatRequest(messages=kept, params=params)).prompt_tokens == fitted.prompt_tokens
        # ...and no fewer messages had to go: one more exchange no longer fits.
        with pytest.raises(EngineError):
            start(ChatRequest(messages=(system, *messages[1 + dropped - 2 :]), params=params))
        # The reply runs to the end.
        events = list(
            engine.stream_chat(ChatRequest(messages=messages, params=params, fit_history=True), threading.Event())
        )
        assert events[-1].kind == "done" and events[-1].completion_tokens > 0
    finally:
        engine.close()
