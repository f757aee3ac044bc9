"""The CPU engine: llama.cpp through llama-cpp-python, for GGUF models."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
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
from appliance.engine.llama_cpp.defuse_special_tokens import defuse_special_tokens
from appliance.engine.llama_cpp.load_cpu_backend import load_cpu_backend

# Used only when a GGUF carries no chat template of its own.
_CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _build_formatter(llm, llama_chat_format):
    template = llm.metadata.get("tokenizer.chat_template") or _CHATML_TEMPLATE
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
    return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


def _list_special_texts(llm) -> tuple[str, ...]:
    """The text of every control and user-defined token of the model, longest first."""
    import llama_cpp

    model, mask = llm._model, llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    texts = {model.token_get_text(token) for token in range(model.n_vocab()) if model.token_get_attr(token) & mask}
    return tuple(sorted((text for text in texts if text), key=len, reverse=True))


def _defuse_messages(messages, specials: tuple[str, ...]) -> list[dict]:
    return [{**message, "content": defuse_special_tokens(message["content"], specials)} for message in messages]


def _count_prompt_tokens(llm, formatter, messages) -> int:
    rendered = formatter(messages=list(messages))
    return len(llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True))


def _fit_messages(llm, formatter, messages: list[dict], params: ChatParams, default_max_tokens: int):
    """The newest messages that leave room for the reply: asked max_tokens, else the default (at most half)."""
    n_ctx = llm.n_ctx()
    room = params.max_tokens if params.max_tokens is not None else min(default_max_tokens, n_ctx // 2)
    budget = max(1, n_ctx - room)
    return fit_chat_history(messages, lambda kept: _count_prompt_tokens(llm, formatter, kept), budget)


def _response_format(params: ChatParams):
    if params.json_schema is not None:
        return {"type": "json_object", "schema": params.json_schema}
    if params.json_object:
        return {"type": "json_object"}
    return None


def _check_schema(llama_grammar, params: ChatParams) -> None:
    # Compile the grammar up front so a bad schema is a 400 for this request, not a failed stream.
    if params.json_schema is None:
        return
    try:
        llama_grammar.LlamaGrammar.from_json_schema(json.dumps(params.json_schema), verbose=False)
    except Exception as exc:  # the converter raises many kinds (ValueError, KeyError, TypeError...)
        raise EngineError("invalid_schema", f"response_format schema is not usable: {exc}") from exc


def _render_continuation(llm, formatter, messages, prefix: str) -> tuple[str, list[str], int, int]:
    """(prompt, stop strings, prompt tokens, prefix tokens) that make the model go on with `prefix` as the
    start of its reply: the chat template's generation prompt, then the prefix itself."""
    rendered = formatter(messages=list(messages))
    prompt = rendered.prompt + prefix
    add_bos = not rendered.added_special
    whole = len(llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True))
    head = len(llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=add_bos, special=True))
    stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
    return prompt, [stop for stop in stops if stop], whole, max(0, whole - head)


def _resolve_max_tokens(params: ChatParams, prompt_tokens: int, n_ctx: int, default_max_tokens: int) -> int:
    room = n_ctx - prompt_tokens
    if room <= 0:
        raise EngineError(
            "context_length_exceeded",
            f"The prompt is {prompt_tokens} tokens; this model's context is {n_ctx} tokens.",
        )
    if params.max_tokens is None:
        return min(default_max_tokens, room)
    if params.max_tokens > room:
        raise EngineError(
            "context_length_exceeded",
            f"The prompt ({prompt_tokens} tokens) plus max_tokens ({params.max_tokens}) exceeds this "
            f"model's context of {n_ctx} tokens; lower max_tokens to at most {room}.",
        )
    return params.max_tokens


def open_llama_cpp_engine(
    model_path: str,
    *,
    model_id: str,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    max_tokens: int = 512,
    temperature: float = 0.7,
    top_p: float = 0.95,
) -> Engine:
    """Load a GGUF model with llama.cpp on the CPU and return it as an Engine (one stream at a time)."""
    if not os.path.isfile(model_path):
        raise EngineError("model_not_found", f"GGUF model file not found: {model_path}", status=503)
    from llama_cpp import Llama, llama_chat_format, llama_grammar

    load_cpu_backend()  # a dynamic build: the variant this CPU and OS grant, not ggml's own pick
    llm = Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=n_threads or os.cpu_count() or 1,
        n_batch=min(512, n_ctx),
        verbose=False,
    )
    formatter = _build_formatter(llm, llama_chat_format)
    specials = _list_special_texts(llm)
    # llama.cpp holds one KV cache: streams on one engine are serialised (the pool runs several engines).
    lock = threading.Lock()

    def stream_chat(request: ChatRequest, cancel: CancelSignal) -> ChatStream:
        params = request.params
        messages = _defuse_messages(request.messages, specials)  # the client's text never forges roles
        # A peer's text, continued here: it must not forge roles either.
        prefix = defuse_special_tokens(request.reply_prefix, specials)
        if prefix and (params.json_schema is not None or params.json_object):
            raise EngineError("invalid_request", "A reply that must be JSON cannot be continued; run it again.")
        with lock:
            dropped = 0
            if request.fit_history:
                messages, dropped = _fit_messages(llm, formatter, messages, params, max_tokens)
            sampling: dict[str, Any] = {
                "stream": True,
                "temperature": temperature if params.temperature is None else params.temperature,
                "top_p": top_p if params.top_p is None else params.top_p,
                "seed": params.seed,
            }
            if prefix:
                prompt, template_stops, prompt_tokens, prefix_tokens = _render_continuation(
                    llm, formatter, messages, prefix
                )
                # The prefix is reply already given: what it used of max_tokens is not given again.
                asked = dataclasses.replace(
                    params, max_tokens=None if params.max_tokens is None else max(1, params.max_tokens - prefix_tokens)
                )
                limit = _resolve_max_tokens(asked, prompt_tokens, llm.n_ctx(), max(1, max_tokens - prefix_tokens))
            else:
                prompt_tokens = _count_prompt_tokens(llm, formatter, messages)
                limit = _resolve_max_tokens(params, prompt_tokens, llm.n_ctx(), max_tokens)
                _check_schema(llama_grammar, params)
            yield ChatEvent("start", prompt_tokens=prompt_tokens, dropped_messages=dropped)
            # llama-cpp-python's types name every variant of its answers; the stream is plain JSON-like dicts.
            chunks: Any
            if prefix:
                chunks = llm.create_completion(
                    prompt=prompt, max_tokens=limit, stop=[*template_stops, *params.stop], **sampling
                )
            else:
                chunks = llm.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=limit,
                    stop=list(params.stop),
                    response_format=_response_format(params),
                    **sampling,
                )
            pieces: list[str] = []
            finish_reason = "stop"
            try:
                for chunk in chunks:
                    if cancel.is_set():
                        finish_reason = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = (choice.get("text") if prefix else choice["delta"].get("content")) or ""
                    if text:
                        pieces.append(text)
                        yield ChatEvent("delta", text=text)
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
            finally:
                chunks.close()
            # Chunks are not tokens one to one (held-back bytes and stop prefixes join): count the text.
            completion_tokens = len(llm.tokenize("".join(pieces).encode("utf-8"), add_bos=False)) if pieces else 0
            yield ChatEvent(
                "done",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason,
            )

    def close() -> None:
        llm.close()

    return Engine(kind="llama.cpp", model_id=model_id, n_ctx=llm.n_ctx(), stream_chat=stream_chat, close=close)
