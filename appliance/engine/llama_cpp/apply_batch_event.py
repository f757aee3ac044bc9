"""The batched decoder's transitions: one event in, the new state and the effects to perform out (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.engine.llama_cpp.batch_types import (
    BatchEffect,
    BatchEntry,
    BatchEvent,
    BatchState,
    EmitToken,
    EndJob,
    JobCancelled,
    JobSubmitted,
    Running,
    SequenceJob,
    StepDecoded,
    StepFailed,
    TrimCache,
)
from appliance.route_event import route_event

Step = tuple[BatchState, list[BatchEffect]]


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _set_cached(state: BatchState, slot: int, tokens: tuple[int, ...], owner: str | None = None) -> BatchState:
    cached = tuple(tokens if i == slot else held for i, held in enumerate(state.cached))
    owners = state.owners
    if owner is not None:
        owners = tuple(owner if i == slot else held for i, held in enumerate(owners))
    return dataclasses.replace(state, cached=cached, owners=owners)


def _shared(state: BatchState, slot: int, job: SequenceJob) -> int:
    """How much of the job's prompt the slot holds already, and may give it: only its owner's."""
    if state.owners[slot] != job.owner:
        return 0
    return _common_prefix(state.cached[slot], job.prompt)


def _assign(state: BatchState, effects: list[BatchEffect]) -> BatchState:
    """Put waiting jobs, oldest first, on free slots: each on its owner's slot that shares most of its prompt,
    else on an empty slot (another owner's history stays for their next turn), else on the lowest."""
    while state.waiting:
        free = [slot for slot in range(state.slots) if slot not in state.running]
        if not free:
            break
        job, *rest = state.waiting
        # max() keeps the first of equals: the lowest free slot when nothing is shared.
        slot = max(free, key=lambda s: (_shared(state, s, job), not state.cached[s]))
        # The last prompt token is always fed again: its logits give the first reply token.
        keep = min(_shared(state, slot, job), len(job.prompt) - 1)
        if len(state.cached[slot]) > keep:
            effects.append(TrimCache(slot, keep))
        state = _set_cached(state, slot, state.cached[slot][:keep], job.owner)
        state = dataclasses.replace(
            state,
            waiting=tuple(rest),
            running={**state.running, slot: Running(job.job, job.prompt[keep:], job.limit)},
        )
    return state


def _without(state: BatchState, slot: int) -> BatchState:
    return dataclasses.replace(state, running={s: r for s, r in state.running.items() if s != slot})


def _submit(state: BatchState, event: JobSubmitted) -> Step:
    job = event.job
    if not job.prompt or job.limit < 1:
        return state, [EndJob(job.job, "failed", 0, "an empty prompt or no tokens to generate")]
    effects: list[BatchEffect] = []
    state = dataclasses.replace(state, waiting=state.waiting + (job,))
    return _assign(state, effects), effects


def _cancel(state: BatchState, event: JobCancelled) -> Step:
    effects: list[BatchEffect] = []
    if any(job.job == event.job for job in state.waiting):
        effects.append(EndJob(event.job, "cancelled", 0))
        state = dataclasses.replace(state, waiting=tuple(job for job in state.waiting if job.job != event.job))
        return state, effects
    slot = next((s for s, run in state.running.items() if run.job == event.job), None)
    if slot is None:
        return state, effects
    # What the slot decoded stays cached: a phone that stops a reply and asks again reuses it.
    effects.append(EndJob(event.job, "cancelled", state.running[slot].produced))
    return _assign(_without(state, slot), effects), effects


def _advance(state: BatchState, entry: BatchEntry, sampled: dict[int, tuple[int, bool]], effects: list) -> BatchState:
    state = _set_cached(state, entry.slot, state.cached[entry.slot] + entry.tokens)
    run = state.running[entry.slot]
    run = dataclasses.replace(run, pending=run.pending[len(entry.tokens) :])
    if not entry.sample:
        return dataclasses.replace(state, running={**state.running, entry.slot: run})
    token, ends_turn = sampled[entry.slot]
    if ends_turn:
        effects.append(EndJob(run.job, "stop", run.produced))
        return _without(state, entry.slot)
    run = dataclasses.replace(run, pending=(token,), produced=run.produced + 1)
    effects.append(EmitToken(run.job, token))
    if run.produced >= run.limit:
        # The last token is never fed: the cache holds what was decoded, nothing more.
        effects.append(EndJob(run.job, "length", run.produced))
        return _without(state, entry.slot)
    return dataclasses.replace(state, running={**state.running, entry.slot: run})


def _decoded(state: BatchState, event: StepDecoded) -> Step:
    effects: list[BatchEffect] = []
    for entry in event.entries:
        if entry.slot in state.running:
            state = _advance(state, entry, event.sampled, effects)
    return _assign(state, effects), effects


def _failed(state: BatchState, event: StepFailed) -> Step:
    effects: list[BatchEffect] = []
    for entry in event.entries:
        run = state.running.get(entry.slot)
        if run is None:
            continue
        # What a refused step left in the slot is not known: start it afresh.
        effects.append(EndJob(run.job, "failed", run.produced, event.message))
        effects.append(TrimCache(entry.slot, 0))
        state = _set_cached(_without(state, entry.slot), entry.slot, ())
    return _assign(state, effects), effects


_TRANSITIONS: dict[type, Callable[[BatchState, Any], Step]] = {
    JobSubmitted: _submit,
    JobCancelled: _cancel,
    StepDecoded: _decoded,
    StepFailed: _failed,
}


def apply_batch_event(state: BatchState, event: BatchEvent) -> Step:
    """The decoder after `event`, and the effects to perform, in order; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "batched decoder")
