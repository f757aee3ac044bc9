"""What the batched decoder feeds in its next step (pure)."""

from __future__ import annotations

from appliance.engine.llama_cpp.batch_types import BatchEntry, BatchState


def plan_decode_step(state: BatchState) -> tuple[BatchEntry, ...]:
    """The entries of the next llama_decode: every sequence that is answering feeds its sampled token first
    (a long prompt arriving never stalls the replies already streaming), then prompts fill what is left of
    n_batch, oldest slot first. Empty: nothing to do."""
    decoding = [(slot, run) for slot, run in sorted(state.running.items()) if run.produced > 0]
    prompting = [(slot, run) for slot, run in sorted(state.running.items()) if run.produced == 0]
    entries: list[BatchEntry] = []
    budget = state.n_batch
    for slot, run in decoding:
        entries.append(BatchEntry(slot, run.pending, len(state.cached[slot]), True))
        budget -= len(run.pending)
    for slot, run in prompting:
        if budget <= 0:
            break
        chunk = run.pending[:budget]
        entries.append(BatchEntry(slot, chunk, len(state.cached[slot]), len(chunk) == len(run.pending)))
        budget -= len(chunk)
    return tuple(entries)
