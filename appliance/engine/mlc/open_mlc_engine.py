"""The GPU engine: MLC LLM (`mlc_llm.AsyncMLCEngine`) on CUDA (Jetson) or OpenCL (Mali).

MLC's synchronous MLCEngine does not batch concurrent requests (its documentation says to use
AsyncMLCEngine for that): this adapter runs AsyncMLCEngine on an event loop of its own, so that several
chats (a prompt's pieces, several phones) are decoded together in one batch on the GPU.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import threading
from collections.abc import Coroutine
from typing import Any

from appliance.engine.engine_types import (
    CancelSignal,
    ChatEvent,
    ChatParams,
    ChatRequest,
    ChatStream,
    Engine,
    EngineError,
)
from appliance.engine.fit_chat_history import fit_chat_history

_CONFIG_FILE = "mlc-chat-config.json"
# MLC's prompt check says "Request prompt has N tokens in total, larger than the model input length limit M."
_CONTEXT_MARKERS = ("context", "exceed", "too long", "length limit")
_SCHEMA_MARKERS = ("schema", "grammar")


def _import_mlc():
    try:
        from mlc_llm import AsyncMLCEngine
        from mlc_llm.serve.config import EngineConfig
    except Exception as exc:  # ImportError, or TVM's native library failing to load
        raise EngineError(
            "engine_unavailable",
            "MLC LLM is not installed on this unit (the image installs it; pip cannot): "
            f"the GPU engine cannot start ({exc})",
            status=503,
        ) from exc
    return AsyncMLCEngine, EngineConfig


def _read_context_window(model_dir: str) -> int:
    path = os.path.join(model_dir, _CONFIG_FILE)
    if not os.path.isdir(model_dir):
        raise EngineError("model_invalid", f"MLC model directory not found: {model_dir}", status=503)
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise EngineError("model_invalid", f"cannot read {path}: {exc}", status=503) from exc
    if not isinstance(config, dict):
        raise EngineError("model_invalid", f"{path} is not a JSON object", status=503)
    window, sliding = config.get("context_window_size"), config.get("sliding_window_size", -1)
    if isinstance(window, int) and not isinstance(window, bool) and window > 0:
        return window
    # Sliding-window models (Mistral) write context_window_size -1: their window bounds the KV cache.
    if isinstance(sliding, int) and not isinstance(sliding, bool) and sliding > 0:
        return sliding
    raise EngineError("model_invalid", f"{path} has no usable context_window_size", status=503)


def _build_create_kwargs(request: ChatRequest, model_dir: str, default_max_tokens: int) -> dict:
    params: ChatParams = request.params
    kwargs = {
        "messages": [dict(message) for message in request.messages],
        "model": model_dir,
        "stream": True,
        # The last chunk then carries the token counts (choices empty, usage set).
        "stream_options": {"include_usage": True},
    }
    optional = {
        # The prompt's length is known only after the first chunk, so the default is not capped by the room
        # left (llama.cpp's is): MLC itself ends a reply that reaches the context's end with "length".
        "max_tokens": default_max_tokens if params.max_tokens is None else params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop) or None,
    }
    kwargs.update({name: value for name, value in optional.items() if value is not None})
    if params.json_schema is not None:
        # MLC's RequestResponseFormat takes the schema as a JSON string, not a dict.
        kwargs["response_format"] = {"type": "json_object", "schema": json.dumps(params.json_schema)}
    elif params.json_object:
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


def _map_request_error(exc: Exception, params: ChatParams) -> EngineError:
    message = str(exc) or type(exc).__name__
    lowered = message.lower()
    if params.json_schema is not None and any(marker in lowered for marker in _SCHEMA_MARKERS):
        return EngineError("invalid_schema", f"response_format schema is not usable: {message}")
    if any(marker in lowered for marker in _CONTEXT_MARKERS):
        return EngineError("context_length_exceeded", f"The prompt does not fit this model's context: {message}")
    if isinstance(exc, ValueError):
        # MLC's BadRequestError and pydantic's ValidationError are ValueErrors: the request is at fault.
        return EngineError("invalid_request_error", f"MLC LLM refused the request: {message}")
    return EngineError("engine_failed", f"MLC LLM failed: {message}", status=500)


# What a chat template adds around each message and before the reply, in tokens: generous, because the
# count below is of the contents alone (MLC renders its template only inside the request).
_TEMPLATE_TOKENS_PER_MESSAGE = 16
_TEMPLATE_TOKENS = 32


def _count_tokens(tokenizer, messages: list[dict]) -> int:
    if tokenizer is None:  # an engine without its tokenizer at hand: UTF-8 bytes bound the tokens of BPE
        return sum(len(m["content"].encode("utf-8")) + _TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    return _TEMPLATE_TOKENS + sum(len(tokenizer.encode(m["content"])) + _TEMPLATE_TOKENS_PER_MESSAGE for m in messages)


def _fit_request(request: ChatRequest, tokenizer, context: int, default_max_tokens: int) -> tuple[ChatRequest, int]:
    params = request.params
    room = params.max_tokens if params.max_tokens is not None else min(default_max_tokens, context // 2)
    kept, dropped = fit_chat_history(
        request.messages, lambda messages: _count_tokens(tokenizer, messages), max(1, context - room)
    )
    return dataclasses.replace(request, messages=tuple(kept)), dropped


def _read_chunk(chunk) -> tuple[str, str | None]:
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return "", None
    delta = getattr(choices[0], "delta", None)
    text = getattr(delta, "content", None)
    return (text if isinstance(text, str) else ""), getattr(choices[0], "finish_reason", None)


def _map_finish_reason(reason: str | None) -> str:
    if reason == "error":
        raise EngineError("engine_failed", "MLC LLM stopped the reply with an error", status=500)
    return "length" if reason == "length" else "stop"


def _stream_chunks(chunks, first, cancel: CancelSignal) -> ChatStream:
    finish_reason, prompt_tokens, completion_tokens, steps = None, 0, None, 0
    chunk = first
    while chunk is not None:
        text, reason = _read_chunk(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if getattr(chunk, "choices", None):
            steps += 1
        if text:
            yield ChatEvent("delta", text=text)
        finish_reason = reason or finish_reason
        if cancel.is_set():
            # Closing MLC's generator aborts the request inside the engine (ErrorCleanupScope).
            chunks.close()
            yield ChatEvent("done", prompt_tokens=prompt_tokens, completion_tokens=steps, finish_reason="cancelled")
            return
        chunk = next(chunks, None)
    # Usage is missing only from an engine that ignores include_usage: each chunk is one decode step.
    yield ChatEvent(
        "done",
        prompt_tokens=prompt_tokens,
        completion_tokens=steps if completion_tokens is None else completion_tokens,
        finish_reason=_map_finish_reason(finish_reason),
    )


class _Loop:
    """An event loop on a thread of its own, where the async engine lives; sync code waits on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mlc-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


async def _call(function, *args, **kwargs) -> Any:
    # MLC builds the engine and its streams in the loop's thread: its callbacks find the loop there.
    result = function(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


class _Chunks:
    """An AsyncMLCEngine stream read from sync code: each next() awaits one chunk on the loop; close() closes
    the stream, which aborts the request inside MLC."""

    def __init__(self, loop: _Loop, stream) -> None:
        self.loop, self.stream, self.closed = loop, stream, False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.loop.run(_call(self.stream.__anext__))
        except StopAsyncIteration:
            self.closed = True
            raise StopIteration from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.run(_call(self.stream.aclose))


def open_mlc_engine(
    model_dir: str,
    *,
    model_id: str,
    device: str,
    model_lib: str | None = None,
    n_ctx: int | None = None,
    max_tokens: int = 512,
    # MLC's "local" mode decodes up to 4 requests in one batch, with a KV cache of one context window
    # shared among them (MLC queues a request that does not fit); "interactive" plans for one request
    # at a time; "server" takes as much GPU memory as it can. On Jetson and Mali the GPU memory is the
    # system's memory.
    mode: str = "local",
    sequences: int = 4,
) -> Engine:
    """Load the compiled MLC model in `model_dir` on `device` ("cuda", "opencl", "auto") and return it as an
    Engine that runs up to `sequences` chats at once."""
    mlc_engine_class, engine_config_class = _import_mlc()
    window = _read_context_window(model_dir)
    # The model was compiled for its window: a larger n_ctx would only fail later, on a long prompt.
    context = window if n_ctx is None else max(1, min(n_ctx, window))
    sequences = 1 if mode == "interactive" else max(1, sequences)
    loop = _Loop()
    try:
        mlc = loop.run(
            _call(
                mlc_engine_class,
                model=model_dir,
                device=device,
                model_lib=model_lib,
                mode=mode,
                engine_config=engine_config_class(max_total_sequence_length=context, max_num_sequence=sequences),
            )
        )
    except Exception as exc:  # TVM raises its own errors for a missing or mismatched model library
        loop.stop()
        raise EngineError("engine_unavailable", f"MLC LLM could not load {model_dir}: {exc}", status=503) from exc

    def stream_chat(request: ChatRequest, cancel: CancelSignal) -> ChatStream:
        if request.reply_prefix:
            # MLC's chat API always opens a new assistant turn; continuing one needs its raw completions
            # with the model's conversation template, which is not built yet. The sender runs it elsewhere.
            raise EngineError("continuation_unsupported", "MLC LLM cannot continue a reply started elsewhere.", 501)
        chunks, dropped = None, 0
        if request.fit_history:
            request, dropped = _fit_request(request, getattr(mlc, "tokenizer", None), context, max_tokens)
        try:
            # MLC tokenizes and checks the prompt on the first chunk: pull it before "start", so a prompt that
            # cannot run raises EngineError before the stream begins.
            try:
                kwargs = _build_create_kwargs(request, model_dir, max_tokens)
                chunks = _Chunks(loop, loop.run(_call(mlc.chat.completions.create, **kwargs)))
                first = next(chunks, None)
            except Exception as exc:
                raise _map_request_error(exc, request.params) from exc
            yield ChatEvent("start", dropped_messages=dropped)
            try:
                yield from _stream_chunks(chunks, first, cancel)
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError("engine_failed", f"MLC LLM failed mid-reply: {exc}", status=500) from exc
        finally:
            # Also runs when the consumer drops this stream: MLC aborts the request.
            if chunks is not None:
                chunks.close()

    def close() -> None:
        mlc.terminate()
        loop.stop()

    return Engine(
        kind="mlc", model_id=model_id, n_ctx=context, stream_chat=stream_chat, close=close, sequences=sequences
    )
