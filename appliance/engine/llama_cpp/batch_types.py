"""Data shapes of the batched decoder: several sequences in one llama.cpp context, stepped together.

Each step feeds every running sequence its next tokens (one sampled token, or a chunk of its prompt) in one
llama_decode, so the model's weights are read once per step for all of them: on a CPU core two sequences
make about 1.4x the tokens of one, on a GPU eight make about 5x (README, "Batched decoding").
apply_batch_event(state, event) -> (state, effects) is pure; start_batch_decoder's loop decodes, samples,
and performs the effects. The decoder deals in tokens only; text, stop strings and chat templates are the
engine's (open_llama_cpp_engine).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EndReason = Literal["stop", "length", "cancelled", "failed"]


@dataclass(frozen=True)
class SequenceJob:
    """A prompt to continue: its tokens (never empty) and the most tokens to sample after it. owner: who
    asks (the chat's client key); a slot's cache is reused only for the owner who filled it."""

    job: int
    prompt: tuple[int, ...]
    limit: int
    owner: str = ""


@dataclass(frozen=True)
class Running:
    """A job on a slot (a llama.cpp sequence id). pending: the tokens to feed next, the rest of the prompt
    or the token just sampled."""

    job: int
    pending: tuple[int, ...]
    limit: int
    produced: int = 0


@dataclass(frozen=True)
class BatchEntry:
    """What one slot feeds in a step: `tokens` at positions from `pos`; logits for the last one when it ends
    what the slot had pending (a token is sampled from them)."""

    slot: int
    tokens: tuple[int, ...]
    pos: int
    sample: bool


@dataclass(frozen=True)
class BatchState:
    """The decoder at one moment. cached[slot]: the tokens the context holds for that slot. They outlive the
    job that put them there, so a conversation's next turn reuses its history instead of evaluating it
    again. owners[slot]: whose they are. Only that owner's next job reuses them: a prompt that starts as
    another phone's did would otherwise come back sooner, and a phone could time its way to what others
    asked."""

    slots: int
    n_batch: int  # the most tokens one step feeds, all slots together
    cached: tuple[tuple[int, ...], ...]
    owners: tuple[str, ...]
    running: dict[int, Running] = field(default_factory=dict)  # slot -> its job
    waiting: tuple[SequenceJob, ...] = ()


# Events.
@dataclass(frozen=True)
class JobSubmitted:
    job: SequenceJob


@dataclass(frozen=True)
class JobCancelled:
    job: int


@dataclass(frozen=True)
class StepDecoded:
    """The step `entries` was decoded; sampled: slot -> (token, whether it ends generation: end of turn)."""

    entries: tuple[BatchEntry, ...]
    sampled: dict[int, tuple[int, bool]]


@dataclass(frozen=True)
class StepFailed:
    """llama_decode refused the step (no room in the cache, an internal error): its jobs end."""

    entries: tuple[BatchEntry, ...]
    message: str


BatchEvent = JobSubmitted | JobCancelled | StepDecoded | StepFailed


# Effects.
@dataclass(frozen=True)
class TrimCache:
    """Drop the slot's cached tokens from position `keep` on (llama_memory_seq_rm)."""

    slot: int
    keep: int


@dataclass(frozen=True)
class EmitToken:
    job: int
    token: int


@dataclass(frozen=True)
class EndJob:
    """The job's last effect. produced: the tokens it sampled (not counting an end-of-turn token)."""

    job: int
    reason: EndReason
    produced: int
    message: str = ""


BatchEffect = TrimCache | EmitToken | EndJob


@dataclass(frozen=True)
class BatchDecoder:
    """The running decoder. submit(prompt, limit, sampler, owner) -> (job, inbox): the inbox gets each sampled token
    (an int), then the job's EndJob. The decoder owns the sampler from then on (it frees it when the job
    ends). cancel(job) ends a job early; close() ends every job and the decoder."""

    slots: int
    n_ctx_per_slot: int
    submit: Callable[[tuple[int, ...], int, Any, str], tuple[int, queue.Queue]]
    cancel: Callable[[int], None]
    close: Callable[[], None]
