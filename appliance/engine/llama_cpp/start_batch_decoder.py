"""The batched decoder's edge: one thread owns a llama.cpp context with several sequences and steps them.

Every call into the context (decode, sample, trimming a sequence's cache) happens on that thread, so the
native context is never used from two threads. Requests and cancels wait in an inbox and are applied
between steps; apply_batch_event decides, this module only performs.
"""

from __future__ import annotations

import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from appliance.engine.llama_cpp.apply_batch_event import apply_batch_event
from appliance.engine.llama_cpp.batch_types import (
    BatchDecoder,
    BatchEntry,
    BatchEvent,
    BatchState,
    EmitToken,
    EndJob,
    JobCancelled,
    JobSubmitted,
    SequenceJob,
    StepDecoded,
    StepFailed,
    TrimCache,
)
from appliance.engine.llama_cpp.plan_decode_step import plan_decode_step


@dataclass(eq=False)
class _Edge:
    state: BatchState
    ctx: Any  # llama_cpp._internals.LlamaContext
    vocab: Any
    batch: Any  # llama_cpp._internals.LlamaBatch
    cond: threading.Condition = field(default_factory=threading.Condition)
    inbox: list[BatchEvent] = field(default_factory=list)
    outboxes: dict[int, queue.Queue] = field(default_factory=dict)
    samplers: dict[int, Any] = field(default_factory=dict)
    job_ids: Any = field(default_factory=lambda: itertools.count(1))
    closed: bool = False
    failure: str | None = None


def _perform(edge: _Edge, effects: list) -> None:
    import llama_cpp

    for effect in effects:
        if isinstance(effect, TrimCache):
            llama_cpp.llama_memory_seq_rm(edge.ctx.memory, effect.slot, effect.keep, -1)
        elif isinstance(effect, EmitToken):
            edge.outboxes[effect.job].put(effect.token)
        elif isinstance(effect, EndJob):
            sampler = edge.samplers.pop(effect.job, None)
            if sampler is not None:
                sampler.close()
            with edge.cond:
                outbox = edge.outboxes.pop(effect.job, None)
            if outbox is not None:
                outbox.put(effect)


def _apply(edge: _Edge, event: BatchEvent) -> None:
    edge.state, effects = apply_batch_event(edge.state, event)
    _perform(edge, effects)


def _decode(edge: _Edge, entries: tuple[BatchEntry, ...]) -> BatchEvent:
    """Feed `entries` in one llama_decode and sample where they ask: the step's event."""
    import llama_cpp

    batch, rows = edge.batch.batch, {}
    n = 0
    for entry in entries:
        for i, token in enumerate(entry.tokens):
            batch.token[n] = token
            batch.pos[n] = entry.pos + i
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = entry.slot
            batch.logits[n] = entry.sample and i == len(entry.tokens) - 1
            n += 1
        if entry.sample:
            rows[entry.slot] = n - 1
    batch.n_tokens = n
    code = llama_cpp.llama_decode(edge.ctx.ctx, batch)
    if code != 0:
        return StepFailed(entries, f"llama_decode returned {code}")
    sampled = {}
    for entry in entries:
        if entry.sample:
            job = edge.state.running[entry.slot].job
            token = llama_cpp.llama_sampler_sample(edge.samplers[job].sampler, edge.ctx.ctx, rows[entry.slot])
            sampled[entry.slot] = (token, bool(llama_cpp.llama_vocab_is_eog(edge.vocab, token)))
    return StepDecoded(entries, sampled)


def _run(edge: _Edge) -> None:
    try:
        while True:
            with edge.cond:
                while not edge.inbox and not edge.state.running and not edge.closed:
                    edge.cond.wait()
                if edge.closed:
                    break
                events, edge.inbox = edge.inbox, []
            for event in events:
                _apply(edge, event)
            entries = plan_decode_step(edge.state)
            if entries:
                _apply(edge, _decode(edge, entries))
    except Exception as exc:  # a bug here must end the jobs, not leave their streams waiting forever
        edge.failure = f"the batched decoder stopped: {exc}"
    _end_all(edge, edge.failure or "the engine is closing")


def _end_all(edge: _Edge, message: str) -> None:
    with edge.cond:
        edge.closed = True
        outboxes, edge.outboxes = edge.outboxes, {}
    for job, outbox in outboxes.items():
        outbox.put(EndJob(job, "failed", 0, message))
    for sampler in edge.samplers.values():
        sampler.close()
    edge.samplers.clear()


def _submit(edge: _Edge, prompt: tuple[int, ...], limit: int, sampler: Any, owner: str) -> tuple[int, queue.Queue]:
    outbox: queue.Queue = queue.Queue()
    with edge.cond:
        job = next(edge.job_ids)
        if edge.closed:
            sampler.close()
            outbox.put(EndJob(job, "failed", 0, edge.failure or "the engine is closing"))
            return job, outbox
        edge.outboxes[job] = outbox
        edge.samplers[job] = sampler
        edge.inbox.append(JobSubmitted(SequenceJob(job, prompt, limit, owner)))
        edge.cond.notify()
    return job, outbox


def _cancel(edge: _Edge, job: int) -> None:
    with edge.cond:
        edge.inbox.append(JobCancelled(job))
        edge.cond.notify()


def _close(edge: _Edge, thread: threading.Thread) -> None:
    with edge.cond:
        edge.closed = True
        edge.cond.notify()
    thread.join()
    edge.batch.close()
    edge.ctx.close()


def start_batch_decoder(llm: Any, *, slots: int, n_ctx: int, n_threads: int, n_batch: int = 512) -> BatchDecoder:
    """A context of `slots` sequences of `n_ctx` tokens each on `llm`'s model (a llama_cpp.Llama), and the
    thread that steps it."""
    import llama_cpp
    from llama_cpp import _internals

    slots = max(1, min(slots, int(llama_cpp.llama_max_parallel_sequences())))
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx * slots
    params.n_batch = params.n_ubatch = n_batch
    params.n_seq_max = slots
    # Each sequence gets a cache of its own (n_ctx tokens): a long chat cannot crowd out the others.
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = n_threads
    ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
    edge = _Edge(
        state=BatchState(slots=slots, n_batch=n_batch, cached=((),) * slots, owners=("",) * slots),
        ctx=ctx,
        vocab=llm._model.vocab,
        batch=batch,
    )
    thread = threading.Thread(target=_run, args=(edge,), name="llama-batch", daemon=True)
    thread.start()
    return BatchDecoder(
        slots=slots,
        n_ctx_per_slot=int(llama_cpp.llama_n_ctx_seq(ctx.ctx)),
        submit=lambda prompt, limit, sampler, owner: _submit(edge, prompt, limit, sampler, owner),
        cancel=lambda job: _cancel(edge, job),
        close=lambda: _close(edge, thread),
    )
