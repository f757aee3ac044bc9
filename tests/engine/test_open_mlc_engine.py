"""open_mlc_engine against a fake `mlc_llm` that mirrors MLC LLM's Python API (no GPU, no TVM)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import json
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.engine.engine_types import ChatEvent, ChatParams, ChatRequest, EngineError
from appliance.engine.mlc import open_mlc_engine as open_mlc_engine_module
from appliance.engine.mlc.open_mlc_engine import open_mlc_engine
from tests.engine.make_mlc_model_dir import make_mlc_model_dir

# Keyword arguments of mlc_llm.serve.engine.ChatCompletion.create (mlc-ai/mlc-llm).
_CREATE_KWARGS = {
    "messages",
    "model",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "max_tokens",
    "n",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "user",
    "response_format",
    "request_id",
    "extra_body",
}
MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."})


class FakeBadRequestError(ValueError):
    """Like mlc_llm.protocol.error_protocol.BadRequestError."""


@dataclass(kw_only=True)
class FakeEngineConfig:
    """The fields of mlc_llm.serve.config.EngineConfig that callers may set."""

    model: str | None = None
    model_lib: str | None = None
    additional_models: list = field(default_factory=list)
    mode: str | None = None
    tensor_parallel_shards: int | None = None
    gpu_memory_utilization: float | None = None
    kv_cache_page_size: int = 16
    max_num_sequence: int | None = None
    max_total_sequence_length: int | None = None
    max_single_sequence_length: int | None = None
    prefill_chunk_size: int | None = None
    sliding_window_size: int | None = None
    attention_sink_size: int | None = None
    max_history_size: int | None = None
    kv_state_kind: str | None = None
    speculative_mode: str = "disable"
    spec_draft_length: int = 4
    prefix_cache_mode: str = "radix"
    prefix_cache_max_num_recycling_seqs: int | None = None
    verbose: bool = True


# Chunks shaped like mlc_llm.protocol.openai_api_protocol.ChatCompletionStreamResponse.
@dataclass
class FakeDelta:
    content: str | None
    role: str = "assistant"


@dataclass
class FakeChoice:
    delta: FakeDelta
    finish_reason: str | None = None
    index: int = 0
    logprobs: None = None


@dataclass
class FakeUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    extra: dict | None = None


@dataclass
class FakeChunk:
    choices: list
    usage: FakeUsage | None = None
    id: str = "chatcmpl-0"
    model: str | None = None
    system_fingerprint: str = ""
    object: str = "chat.completion.chunk"


def _make_text_chunk(text: str, finish_reason: str | None = None) -> FakeChunk:
    return FakeChunk(choices=[FakeChoice(delta=FakeDelta(content=text), finish_reason=finish_reason)])


def _make_usage_chunk(prompt_tokens: int, completion_tokens: int) -> FakeChunk:
    # MLC's final chunk: no choices, only usage (sent when stream_options.include_usage is set).
    return FakeChunk(choices=[], usage=FakeUsage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens))


@dataclass
class FakeStream:
    kwargs: dict
    pulled: int = 0
    finished: bool = False
    aborted: bool = False
    # Held here so that only an explicit close() aborts, not the garbage collector.
    generator: object = None


class FakeMLCEngine:
    """Like mlc_llm.AsyncMLCEngine: records how it is built and called; replays `script` (chunks, or an
    exception to raise) per request, as an async generator."""

    instances: list = []
    script: list = []
    fail_on_init: Exception | None = None

    def __init__(self, model, device="auto", *, model_lib=None, mode="local", engine_config=None, enable_tracing=False):
        if FakeMLCEngine.fail_on_init is not None:
            raise FakeMLCEngine.fail_on_init
        self.init = {
            "model": model,
            "device": device,
            "model_lib": model_lib,
            "mode": mode,
            "engine_config": engine_config,
            "enable_tracing": enable_tracing,
        }
        self.streams: list[FakeStream] = []
        self.terminated = 0
        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=self._create))
        FakeMLCEngine.instances.append(self)

    async def _create(self, **kwargs):
        asyncio.get_running_loop()  # MLC's async engine is called on its event loop
        unknown = set(kwargs) - _CREATE_KWARGS
        if unknown:
            raise TypeError(f"create() got unexpected keyword arguments {sorted(unknown)}")
        response_format = kwargs.get("response_format")
        if response_format is not None:
            # What RequestResponseFormat accepts: type text|json_object, schema a string.
            assert response_format.get("type") in ("text", "json_object")
            assert response_format.get("schema") is None or isinstance(response_format["schema"], str)
        if kwargs.get("stream_options") is not None and not kwargs.get("stream"):
            raise ValueError("stream must be set to True when stream_options is present")
        stream = FakeStream(kwargs=kwargs)
        self.streams.append(stream)
        stream.generator = self._replay(stream, list(FakeMLCEngine.script))
        return stream.generator

    @staticmethod
    async def _replay(stream: FakeStream, script: list):
        # An async generator, like MLC's: nothing runs (prompt check included) until the first chunk is asked.
        try:
            for item in script:
                await asyncio.sleep(0)  # MLC's chunks come from its engine thread
                if isinstance(item, Exception):
                    raise item
                stream.pulled += 1
                yield item
            stream.finished = True
        except (GeneratorExit, asyncio.CancelledError):
            stream.aborted = True
            raise

    def terminate(self):
        self.terminated += 1


@pytest.fixture(name="fake_mlc")
def _install_fake_mlc(monkeypatch):
    package = types.ModuleType("mlc_llm")
    serve = types.ModuleType("mlc_llm.serve")
    config = types.ModuleType("mlc_llm.serve.config")
    config.EngineConfig = FakeEngineConfig
    serve.config = config
    serve.EngineConfig = FakeEngineConfig
    serve.AsyncMLCEngine = FakeMLCEngine
    package.serve = serve
    package.AsyncMLCEngine = FakeMLCEngine
    for name, module in (("mlc_llm", package), ("mlc_llm.serve", serve), ("mlc_llm.serve.config", config)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(FakeMLCEngine, "instances", [])
    monkeypatch.setattr(FakeMLCEngine, "script", [_make_text_chunk("Hi", "stop"), _make_usage_chunk(5, 1)])
    monkeypatch.setattr(FakeMLCEngine, "fail_on_init", None)
    return FakeMLCEngine


@pytest.fixture(name="model_dir")
def _make_model_dir(tmp_path):
    return str(make_mlc_model_dir(tmp_path / "Qwen2.5-0.5B-Instruct-q4f16_1-MLC"))


def _open(model_dir, **kwargs):
    return open_mlc_engine(model_dir, model_id="qwen2.5-0.5b", device=kwargs.pop("device", "opencl"), **kwargs)


def _run(engine, params: ChatParams | None = None, cancel: threading.Event | None = None) -> list[ChatEvent]:
    return list(
        engine.stream_chat(ChatRequest(messages=MESSAGES, params=params or ChatParams()), cancel or threading.Event())
    )


# --- the model directory maker -------------------------------------------------------------------


def test_make_mlc_model_dir_writes_real_format(tmp_path):
    path = make_mlc_model_dir(tmp_path / "m")

    assert sorted(os.listdir(path)) == [
        "mlc-chat-config.json",
        "params_shard_0.bin",
        "params_shard_1.bin",
        "tensor-cache.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((path / "mlc-chat-config.json").read_text())
    assert (config["model_type"], config["quantization"], config["context_window_size"]) == ("llama", "q4f16_1", 2048)
    assert config["conv_template"]["name"] == "chatml"
    cache = json.loads((path / "tensor-cache.json").read_text())
    assert [shard["dataPath"] for shard in cache["records"]] == ["params_shard_0.bin", "params_shard_1.bin"]
    for shard in cache["records"]:
        data = (path / shard["dataPath"]).read_bytes()
        assert (shard["format"], shard["nbytes"], shard["md5sum"]) == (
            "raw-shard",
            len(data),
            hashlib.md5(data).hexdigest(),
        )
        offsets = [record["byteOffset"] for record in shard["records"]]
        ends = [record["byteOffset"] + record["nbytes"] for record in shard["records"]]
        assert offsets == [0] + ends[:-1] and ends[-1] == len(data)
    assert cache["metadata"]["ParamSize"] == sum(len(shard["records"]) for shard in cache["records"])
    tokenizer = json.loads((path / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "BPE" and tokenizer["model"]["vocab"]["abc"] == 7


def test_make_mlc_model_dir_is_deterministic(tmp_path):
    first, second = make_mlc_model_dir(tmp_path / "a"), make_mlc_model_dir(tmp_path / "b")

    for name in os.listdir(first):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


# --- opening --------------------------------------------------------------------------------------


def test_module_imports_without_mlc(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlc_llm", None)

    importlib.reload(open_mlc_engine_module)


def test_constructor_arguments(fake_mlc, model_dir):
    engine = _open(model_dir, device="cuda", model_lib="/var/lib/iplm/libs/qwen-cuda-sm87.so")

    (mlc,) = fake_mlc.instances
    assert {k: v for k, v in mlc.init.items() if k != "engine_config"} == {
        "model": model_dir,
        "device": "cuda",
        "model_lib": "/var/lib/iplm/libs/qwen-cuda-sm87.so",
        "mode": "local",
        "enable_tracing": False,
    }
    # Four requests in one batch, sharing a KV cache of one context window.
    assert mlc.init["engine_config"] == FakeEngineConfig(max_total_sequence_length=2048, max_num_sequence=4)
    assert (engine.kind, engine.model_id, engine.n_ctx, engine.sequences) == ("mlc", "qwen2.5-0.5b", 2048, 4)


def test_interactive_mode_runs_one_request_at_a_time(fake_mlc, model_dir):
    engine = _open(model_dir, mode="interactive")
    assert engine.sequences == 1 and fake_mlc.instances[0].init["engine_config"].max_num_sequence == 1


def test_n_ctx_override_is_capped_at_the_model_window(fake_mlc, model_dir):
    smaller = _open(model_dir, n_ctx=1024, mode="server")
    larger = _open(model_dir, n_ctx=8192)

    assert (smaller.n_ctx, larger.n_ctx) == (1024, 2048)
    first, second = fake_mlc.instances
    assert (first.init["mode"], first.init["engine_config"].max_total_sequence_length) == ("server", 1024)
    assert (second.init["mode"], second.init["engine_config"].max_total_sequence_length) == ("local", 2048)
    assert first.init["model_lib"] is None


def test_sliding_window_model(fake_mlc, model_dir):
    path = Path(model_dir, "mlc-chat-config.json")
    config = json.loads(path.read_text())
    config.update(context_window_size=-1, sliding_window_size=4096)
    path.write_text(json.dumps(config))

    assert _open(model_dir).n_ctx == 4096


def test_missing_mlc_is_engine_unavailable(monkeypatch, model_dir):
    monkeypatch.setitem(sys.modules, "mlc_llm", None)

    with pytest.raises(EngineError) as caught:
        _open(model_dir)

    assert (caught.value.code, caught.value.status) == ("engine_unavailable", 503)
    assert "MLC LLM is not installed" in caught.value.message


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not json",
        "[1, 2]",
        '{"model_type": "llama"}',
        '{"context_window_size": "2048"}',
        '{"context_window_size": 0, "sliding_window_size": -1}',
        '{"context_window_size": true}',
    ],
)
def test_malformed_model_dir_is_model_invalid(fake_mlc, model_dir, content):
    path = Path(model_dir, "mlc-chat-config.json")
    path.unlink()
    if content is not None:
        path.write_text(content)

    with pytest.raises(EngineError) as caught:
        _open(model_dir)

    assert caught.value.code == "model_invalid"
    assert fake_mlc.instances == []


def test_missing_model_dir_is_model_invalid(fake_mlc, tmp_path):
    with pytest.raises(EngineError) as caught:
        _open(str(tmp_path / "nowhere"))

    assert caught.value.code == "model_invalid" and "nowhere" in caught.value.message


def test_model_library_failure_is_engine_unavailable(fake_mlc, model_dir):
    fake_mlc.fail_on_init = RuntimeError("Cannot find model lib for Qwen2.5-0.5B on opencl")

    with pytest.raises(EngineError) as caught:
        _open(model_dir)

    assert (caught.value.code, caught.value.status) == ("engine_unavailable", 503)
    assert "Cannot find model lib" in caught.value.message


# --- requests -------------------------------------------------------------------------------------


def test_create_kwargs_with_every_parameter(fake_mlc, model_dir):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    params = ChatParams(max_tokens=64, temperature=0.2, top_p=0.9, stop=("\n\n", "END"), seed=7, json_schema=schema)

    _run(_open(model_dir), params)

    (stream,) = fake_mlc.instances[0].streams
    assert stream.kwargs == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "model": model_dir,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "seed": 7,
        "response_format": {"type": "json_object", "schema": json.dumps(schema)},
    }
    assert json.loads(stream.kwargs["response_format"]["schema"]) == schema


def test_create_kwargs_omit_unset_parameters(fake_mlc, model_dir):
    _run(_open(model_dir))

    # Only max_tokens has a unit default (the reply length); the rest are left to the model's config.
    assert fake_mlc.instances[0].streams[0].kwargs == {
        "messages": list(MESSAGES),
        "model": model_dir,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 512,
    }


def test_default_max_tokens_applies_only_when_unset(fake_mlc, model_dir):
    engine = _open(model_dir, max_tokens=300)

    _run(engine)
    _run(engine, ChatParams(max_tokens=40))
    _run(engine, ChatParams(max_tokens=4000))  # above the default: the request's own value still wins

    assert [stream.kwargs["max_tokens"] for stream in fake_mlc.instances[0].streams] == [300, 40, 4000]


def test_json_object_without_schema(fake_mlc, model_dir):
    _run(_open(model_dir), ChatParams(json_object=True, temperature=0.0))

    kwargs = fake_mlc.instances[0].streams[0].kwargs
    assert kwargs["response_format"] == {"type": "json_object"}
    assert kwargs["temperature"] == 0.0  # zero is a value, not "unset"


def test_event_sequence_and_usage(fake_mlc, model_dir):
    fake_mlc.script = [
        _make_text_chunk("Hel"),
        _make_text_chunk(""),
        _make_text_chunk("lo"),
        _make_text_chunk("!", "stop"),
        _make_usage_chunk(23, 4),
    ]

    events = _run(_open(model_dir))

    assert events == [
        ChatEvent("start"),
        ChatEvent("delta", text="Hel"),
        ChatEvent("delta", text="lo"),
        ChatEvent("delta", text="!"),
        ChatEvent("done", prompt_tokens=23, completion_tokens=4, finish_reason="stop"),
    ]
    assert fake_mlc.instances[0].streams[0].finished


def test_length_finish_reason(fake_mlc, model_dir):
    fake_mlc.script = [_make_text_chunk("a b c"), _make_text_chunk(" d", "length"), _make_usage_chunk(10, 16)]

    events = _run(_open(model_dir), ChatParams(max_tokens=16))

    assert events[-1] == ChatEvent("done", prompt_tokens=10, completion_tokens=16, finish_reason="length")


def test_cancel_closes_the_mlc_stream(fake_mlc, model_dir):
    fake_mlc.script = [
        _make_text_chunk("one"),
        _make_text_chunk(" two"),
        _make_text_chunk(" three", "stop"),
        _make_usage_chunk(9, 3),
    ]
    engine, cancel = _open(model_dir), threading.Event()
    events, aborted_at_done = [], None

    for event in engine.stream_chat(ChatRequest(messages=MESSAGES), cancel):
        events.append(event)
        if event.kind == "delta":
            cancel.set()
        if event.kind == "done":
            # MLC must have dropped the request by the time "done" is reported, not later.
            aborted_at_done = fake_mlc.instances[0].streams[0].aborted

    assert events == [
        ChatEvent("start"),
        ChatEvent("delta", text="one"),
        ChatEvent("done", prompt_tokens=0, completion_tokens=1, finish_reason="cancelled"),
    ]
    stream = fake_mlc.instances[0].streams[0]
    assert (aborted_at_done, stream.finished, stream.pulled) == (True, False, 1)


def test_two_chats_stream_at_once_each_from_its_own_request(fake_mlc, model_dir):
    fake_mlc.script = [_make_text_chunk("one"), _make_text_chunk(" two", "stop"), _make_usage_chunk(9, 2)]
    engine = _open(model_dir)
    first = engine.stream_chat(ChatRequest(messages=MESSAGES), threading.Event())
    second = engine.stream_chat(ChatRequest(messages=MESSAGES), threading.Event())
    steps: list[str] = []

    def interleave():
        # Each reply is read halfway before the other starts: no lock holds one chat until the other ends.
        steps.extend([next(first).kind, next(first).kind, next(second).kind, next(second).kind])
        steps.extend(event.kind for event in first)
        steps.extend(event.kind for event in second)

    reader = threading.Thread(target=interleave, daemon=True)
    reader.start()
    reader.join(10)
    assert steps == ["start", "delta", "start", "delta", "delta", "done", "delta", "done"]
    assert [stream.finished for stream in fake_mlc.instances[0].streams] == [True, True]


def test_dropping_the_stream_aborts_and_frees_the_engine(fake_mlc, model_dir):
    fake_mlc.script = [_make_text_chunk("one"), _make_text_chunk(" two", "stop"), _make_usage_chunk(9, 2)]
    engine = _open(model_dir)

    events = engine.stream_chat(ChatRequest(messages=MESSAGES), threading.Event())
    assert [next(events).kind, next(events).kind] == ["start", "delta"]
    events.close()

    assert fake_mlc.instances[0].streams[0].aborted
    assert _run(engine)[-1].finish_reason == "stop"  # the lock was released


@pytest.mark.parametrize(
    "message",
    [
        "Request prompt has 5000 tokens in total, larger than the model input length limit 2048.",
        "prompt exceeds the context window",
    ],
)
def test_prompt_too_long_raises_before_start(fake_mlc, model_dir, message):
    fake_mlc.script = [FakeBadRequestError(message)]
    engine = _open(model_dir)

    events = engine.stream_chat(ChatRequest(messages=MESSAGES), threading.Event())
    with pytest.raises(EngineError) as caught:
        next(events)

    assert (caught.value.code, caught.value.status) == ("context_length_exceeded", 400)
    fake_mlc.script = [_make_text_chunk("ok", "stop"), _make_usage_chunk(3, 1)]
    assert [event.kind for event in _run(engine)] == ["start", "delta", "done"]


def test_bad_schema_is_invalid_schema(fake_mlc, model_dir):
    fake_mlc.script = [FakeBadRequestError("Failed to convert JSON schema to grammar: unsupported keyword")]

    with pytest.raises(EngineError) as caught:
        _run(_open(model_dir), ChatParams(json_schema={"type": "object", "patternProperties": {}}))

    assert (caught.value.code, caught.value.status) == ("invalid_schema", 400)


def test_request_refused_at_create(fake_mlc, model_dir, monkeypatch):
    engine = _open(model_dir)

    async def refuse(**kwargs):
        raise ValueError("System prompt at position 1 in the message list is invalid.")

    monkeypatch.setattr(fake_mlc.instances[0].chat.completions, "create", refuse)

    with pytest.raises(EngineError) as caught:
        _run(engine)

    assert (caught.value.code, caught.value.status) == ("invalid_request_error", 400)


def test_error_finish_reason_fails_the_stream(fake_mlc, model_dir):
    fake_mlc.script = [_make_text_chunk("par"), _make_text_chunk("", "error"), _make_usage_chunk(4, 1)]
    events = []

    with pytest.raises(EngineError) as caught:
        for event in _open(model_dir).stream_chat(ChatRequest(messages=MESSAGES), threading.Event()):
            events.append(event)

    assert [event.kind for event in events] == ["start", "delta"]
    assert (caught.value.code, caught.value.status) == ("engine_failed", 500)


def test_close_terminates_the_engine(fake_mlc, model_dir):
    engine = _open(model_dir)

    engine.close()

    assert fake_mlc.instances[0].terminated == 1


class _WordTokenizer:
    """MLC's Tokenizer has encode(text) -> token ids; one per word is enough to see the budget kept."""

    def encode(self, text: str) -> list[int]:
        return [7] * len(text.split())


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_a_long_history_is_fitted_before_mlc_sees_it(fake_mlc, model_dir, with_tokenizer):
    engine = _open(model_dir, n_ctx=400)
    if with_tokenizer:
        fake_mlc.instances[0].tokenizer = _WordTokenizer()
    system = {"role": "system", "content": "Be brief."}
    history = [
        {"role": role, "content": " ".join([f"{role}{index}"] * 10)}
        for index in range(30)
        for role in ("user", "assistant")
    ]
    newest = {"role": "user", "content": "And now?"}
    request = ChatRequest(messages=(system, *history, newest), params=ChatParams(max_tokens=100), fit_history=True)

    events = list(engine.stream_chat(request, threading.Event()))

    sent = fake_mlc.instances[0].streams[0].kwargs["messages"]
    assert sent[0] == system and sent[-1] == newest and sent[1]["role"] == "user"
    assert events[0].dropped_messages == len(history) - (len(sent) - 2) > 0
    assert sent[1:-1] == history[events[0].dropped_messages :]
    if with_tokenizer:  # 32 + (words + 16) per message, within the 400 - 100 left for the prompt
        assert 32 + sum(len(m["content"].split()) + 16 for m in sent) <= 300
    # Without fit_history MLC gets the whole conversation (and answers for itself).
    list(engine.stream_chat(dataclasses.replace(request, fit_history=False), threading.Event()))
    assert len(fake_mlc.instances[0].streams[1].kwargs["messages"]) == len(history) + 2


def test_a_reply_started_elsewhere_is_refused_before_mlc_sees_it(fake_mlc, model_dir):
    engine = _open(model_dir)
    request = ChatRequest(messages=MESSAGES, reply_prefix="Red, orange")
    with pytest.raises(EngineError) as info:
        list(engine.stream_chat(request, threading.Event()))
    assert (info.value.code, info.value.status) == ("continuation_unsupported", 501)
    assert _run(engine)[-1].kind == "done"  # the engine goes on serving
