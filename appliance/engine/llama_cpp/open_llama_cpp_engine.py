"""The CPU engine: llama.cpp through llama-cpp-python, for GGUF models."""

from __future__ import annotations

import codecs
import dataclasses
import json
import os
import queue
import threading
from dataclasses import dataclass
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
from appliance.engine.llama_cpp.batch_types import BatchDecoder, EndJob
from appliance.engine.llama_cpp.defuse_special_tokens import defuse_special_tokens
from appliance.engine.llama_cpp.load_cpu_backend import load_cpu_backend
from appliance.engine.llama_cpp.start_batch_decoder import start_batch_decoder

_POLL_S = 0.1  # how often a waiting stream looks at its cancel signal
_SPARE_CTX = 256  # a batched engine's tokenizer-only Llama: its unused context, kept small

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


def _fit_messages(llm, formatter, messages: list[dict], params: ChatParams, default_max_tokens: int, n_ctx: int):
    """The newest messages that leave room for the reply: asked max_tokens, else the default (at most half)."""
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


def _render_continuation(llm, formatter, messages, prefix: str) -> tuple[str, list[str], tuple[int, ...], int]:
    """(prompt, stop strings, prompt tokens, how many of them are the prefix) that make the model go on with
    `prefix` as the start of its reply: the chat template's generation prompt, then the prefix itself."""
    rendered = formatter(messages=list(messages))
    prompt = rendered.prompt + prefix
    add_bos = not rendered.added_special
    tokens = tuple(llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True))
    head = len(llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=add_bos, special=True)) if prefix else len(tokens)
    stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
    return prompt, [stop for stop in stops if stop], tokens, max(0, len(tokens) - head)


def _limit_reply(params: ChatParams, prompt_tokens: int, prefix_tokens: int, n_ctx: int, default_max: int) -> int:
    """The most tokens to sample; a continued reply's prefix is reply already given, so what it used of
    max_tokens is not given again."""
    if not prefix_tokens:
        return _resolve_max_tokens(params, prompt_tokens, n_ctx, default_max)
    asked = dataclasses.replace(
        params, max_tokens=None if params.max_tokens is None else max(1, params.max_tokens - prefix_tokens)
    )
    return _resolve_max_tokens(asked, prompt_tokens, n_ctx, max(1, default_max - prefix_tokens))


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
    sequences: int = 1,
) -> Engine:
    """Load a GGUF model with llama.cpp on the CPU and return it as an Engine.

    sequences 1: one stream at a time, through llama-cpp-python's own completion. More: that many streams
    decoded together in one context (start_batch_decoder), each with a cache of n_ctx tokens.
    """
    if not os.path.isfile(model_path):
        raise EngineError("model_not_found", f"GGUF model file not found: {model_path}", status=503)
    from llama_cpp import Llama, llama_chat_format, llama_grammar

    load_cpu_backend()  # a dynamic build: the variant this CPU and OS grant, not ggml's own pick
    if sequences > 1:
        defaults = _Defaults(max_tokens, temperature, top_p)
        return _open_batched(model_path, model_id, n_ctx, n_threads or os.cpu_count() or 1, sequences, defaults)
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
    cache = _CacheOwner()

    def stream_chat(request: ChatRequest, cancel: CancelSignal) -> ChatStream:
        params = request.params
        messages = _defuse_messages(request.messages, specials)  # the client's text never forges roles
        # A peer's text, continued here: it must not forge roles either.
        prefix = defuse_special_tokens(request.reply_prefix, specials)
        if prefix and (params.json_schema is not None or params.json_object):
            raise EngineError("invalid_request", "A reply that must be JSON cannot be continued; run it again.")
        with lock:
            if cache.client != request.client_key:
                # llama-cpp-python reuses the cached start of the last prompt: only for the client that sent it.
                llm.reset()
                cache.client = request.client_key
            dropped = 0
            if request.fit_history:
                messages, dropped = _fit_messages(llm, formatter, messages, params, max_tokens, llm.n_ctx())
            sampling: dict[str, Any] = {
                "stream": True,
                "temperature": temperature if params.temperature is None else params.temperature,
                "top_p": top_p if params.top_p is None else params.top_p,
                "seed": params.seed,
            }
            if prefix:
                prompt, template_stops, tokens, prefix_tokens = _render_continuation(llm, formatter, messages, prefix)
                prompt_tokens = len(tokens)
                limit = _limit_reply(params, prompt_tokens, prefix_tokens, llm.n_ctx(), max_tokens)
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


@dataclass(eq=False)
class _CacheOwner:
    """Whose prompt the one-sequence engine's cache holds. A prompt that starts as another client's did would
    be answered sooner, and a phone could time its way to what others asked."""

    client: str | None = None


@dataclass(frozen=True)
class _Defaults:
    max_tokens: int
    temperature: float
    top_p: float


@dataclass(frozen=True)
class _Batched:
    """What a batched engine's streams share: the model (for its tokenizer and template) and the decoder."""

    llm: Any
    formatter: Any
    specials: tuple[str, ...]
    decoder: BatchDecoder
    defaults: _Defaults


def _open_batched(
    model_path: str, model_id: str, n_ctx: int, n_threads: int, sequences: int, defaults: _Defaults
) -> Engine:
    from llama_cpp import Llama, llama_chat_format

    # The Llama object is kept for its tokenizer and chat template; its own context is not used, so it
    # gets a small one. The decoder's context holds the sequences.
    llm = Llama(model_path=model_path, n_ctx=_SPARE_CTX, n_batch=_SPARE_CTX, n_threads=n_threads, verbose=False)
    decoder = start_batch_decoder(llm, slots=sequences, n_ctx=n_ctx, n_threads=n_threads)
    parts = _Batched(llm, _build_formatter(llm, llama_chat_format), _list_special_texts(llm), decoder, defaults)

    def close() -> None:
        decoder.close()
        llm.close()

    return Engine(
        kind="llama.cpp",
        model_id=model_id,
        n_ctx=decoder.n_ctx_per_slot,
        stream_chat=lambda request, cancel: _stream_batched(parts, request, cancel),
        close=close,
        sequences=decoder.slots,
    )


def _grammar_text(llama_grammar, params: ChatParams) -> str | None:
    if params.json_schema is not None:
        try:
            return llama_grammar.json_schema_to_gbnf(json.dumps(params.json_schema))
        except Exception as exc:  # the converter raises many kinds (ValueError, KeyError, TypeError...)
            raise EngineError("invalid_schema", f"response_format schema is not usable: {exc}") from exc
    return llama_grammar.JSON_GBNF if params.json_object else None


def _make_sampler(parts: _Batched, params: ChatParams, grammar: str | None):
    """The sampler chain llama-cpp-python's completion uses (grammar, top-k 40, top-p, min-p 0.05,
    temperature; greedy at temperature 0), one per sequence."""
    import llama_cpp
    from llama_cpp import _internals

    sampler = _internals.LlamaSampler()
    if grammar is not None:
        native = llama_cpp.llama_sampler_init_grammar(parts.llm._model.vocab, grammar.encode("utf-8"), b"root")
        if not native:
            sampler.close()
            raise EngineError("invalid_schema", "response_format schema gives a grammar llama.cpp cannot parse.")
        llama_cpp.llama_sampler_chain_add(sampler.sampler, native)
    temperature = parts.defaults.temperature if params.temperature is None else params.temperature
    if temperature <= 0:
        sampler.add_greedy()
        return sampler
    sampler.add_top_k(40)
    sampler.add_top_p(parts.defaults.top_p if params.top_p is None else params.top_p, 1)
    sampler.add_min_p(0.05, 1)
    sampler.add_temp(temperature)
    sampler.add_dist(llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF)
    return sampler


def _token_bytes(vocab, token: int) -> bytes:
    """The bytes a token stands for (control tokens: none), which may be part of a character."""
    import ctypes

    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
        if n >= 0:
            return buf.raw[:n]
        size = -n  # too small: it says how much it needs


def _hold_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def _prepare_batched(parts: _Batched, request: ChatRequest):
    """(prompt tokens, stop strings, reply limit, dropped messages, grammar) for a request, or EngineError."""
    from llama_cpp import llama_grammar

    llm, formatter, params, n_ctx = parts.llm, parts.formatter, request.params, parts.decoder.n_ctx_per_slot
    default_max = parts.defaults.max_tokens
    messages = _defuse_messages(request.messages, parts.specials)  # the client's text never forges roles
    prefix = defuse_special_tokens(request.reply_prefix, parts.specials)  # a peer's text must not either
    if prefix and (params.json_schema is not None or params.json_object):
        raise EngineError("invalid_request", "A reply that must be JSON cannot be continued; run it again.")
    dropped = 0
    if request.fit_history:
        messages, dropped = _fit_messages(llm, formatter, messages, params, default_max, n_ctx)
    _, template_stops, tokens, prefix_tokens = _render_continuation(llm, formatter, messages, prefix)
    limit = _limit_reply(params, len(tokens), prefix_tokens, n_ctx, default_max)
    stops = [*template_stops, *(stop for stop in params.stop if stop)]
    return tokens, stops, limit, dropped, _grammar_text(llama_grammar, params)


def _stream_batched(parts: _Batched, request: ChatRequest, cancel: CancelSignal) -> ChatStream:
    tokens, stops, limit, dropped, grammar = _prepare_batched(parts, request)
    sampler = _make_sampler(parts, request.params, grammar)
    submitted = False
    try:
        yield ChatEvent("start", prompt_tokens=len(tokens), dropped_messages=dropped)
        # The decoder owns the sampler from here on.
        job, inbox = parts.decoder.submit(tokens, limit, sampler, request.client_key)
        submitted = True
    finally:
        if not submitted:
            sampler.close()  # the reader went away at "start"
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
    held, produced, stopped, cancel_sent = "", 0, False, False
    end: EndJob | None = None
    try:
        while end is None:
            if cancel.is_set() and not cancel_sent:
                parts.decoder.cancel(job)
                cancel_sent = True
            try:
                item = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, EndJob):
                end = item
                break
            if stopped:
                continue  # tokens sampled before the cancel arrived
            produced += 1
            held += utf8.decode(_token_bytes(parts.llm._model.vocab, item))
            cut = min((i for i in (held.find(stop) for stop in stops) if i >= 0), default=-1)
            if cut >= 0:
                # A stop string: the reply ends before it, and the sequence is freed.
                if held[:cut]:
                    yield ChatEvent("delta", text=held[:cut])
                held, stopped = "", True
                parts.decoder.cancel(job)
                cancel_sent = True
                continue
            ready = len(held) - _hold_back(held, stops)
            if ready > 0:
                yield ChatEvent("delta", text=held[:ready])
                held = held[ready:]
    finally:
        if end is None:
            parts.decoder.cancel(job)  # the reader went away: free the sequence
    if end.reason == "failed":
        raise EngineError("engine_failed", f"engine error: {end.message}", 500)
    if not stopped:
        held += utf8.decode(b"", final=True)
        if held:
            yield ChatEvent("delta", text=held)
    reason = "stop" if stopped else end.reason
    yield ChatEvent("done", prompt_tokens=len(tokens), completion_tokens=produced, finish_reason=reason)
