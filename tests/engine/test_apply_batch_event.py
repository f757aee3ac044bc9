"""The batched decoder's transitions and step plans: no model, no threads."""

import pytest

from appliance.engine.llama_cpp.apply_batch_event import apply_batch_event
from appliance.engine.llama_cpp.batch_types import (
    BatchEntry,
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

EOT = 99


class Decoder:
    """Feeds events, keeps the state, collects effects; `step` plays one llama_decode whose sampler answers
    from `replies` (slot's job -> tokens to sample, in order)."""

    def __init__(self, slots=2, n_batch=8):
        self.state = BatchState(slots=slots, n_batch=n_batch, cached=((),) * slots, owners=("",) * slots)
        self.effects = []
        self.replies = {}

    def apply(self, event):
        self.state, effects = apply_batch_event(self.state, event)
        self.effects += effects
        return effects

    def submit(self, job, prompt, limit=3, reply=(), owner="phone"):
        self.replies[job] = list(reply)
        return self.apply(JobSubmitted(SequenceJob(job, tuple(prompt), limit, owner)))

    def step(self):
        entries = plan_decode_step(self.state)
        sampled = {}
        for entry in entries:
            if entry.sample:
                token = self.replies[self.state.running[entry.slot].job].pop(0)
                sampled[entry.slot] = (token, token == EOT)
        return entries, self.apply(StepDecoded(entries, sampled))

    def tokens(self, job):
        return [e.token for e in self.effects if isinstance(e, EmitToken) and e.job == job]

    def end(self, job):
        return next(e for e in self.effects if isinstance(e, EndJob) and e.job == job)


def test_two_jobs_decode_in_the_same_steps_each_in_its_own_slot():
    decoder = Decoder()
    decoder.submit(1, [10, 11, 12], reply=[1, 2, 3])
    decoder.submit(2, [20, 21], reply=[4, 5, 6])
    entries, _ = decoder.step()
    # Both prompts in one step, each at its own positions, logits for each prompt's last token.
    assert entries == (BatchEntry(0, (10, 11, 12), 0, True), BatchEntry(1, (20, 21), 0, True))
    entries, _ = decoder.step()
    assert entries == (BatchEntry(0, (1,), 3, True), BatchEntry(1, (4,), 2, True))
    decoder.step()
    assert decoder.tokens(1) == [1, 2, 3] and decoder.tokens(2) == [4, 5, 6]
    assert decoder.end(1) == EndJob(1, "length", 3) and decoder.end(2) == EndJob(2, "length", 3)
    # The slots keep what they decoded (the last sampled token was never fed).
    assert decoder.state.cached == ((10, 11, 12, 1, 2), (20, 21, 4, 5)) and decoder.state.running == {}


def test_an_end_of_turn_token_ends_the_job_and_is_not_emitted():
    decoder = Decoder()
    decoder.submit(1, [10], reply=[1, EOT])
    decoder.step()
    decoder.step()
    assert decoder.tokens(1) == [1] and decoder.end(1) == EndJob(1, "stop", 1)


def test_a_third_job_waits_for_a_free_slot():
    decoder = Decoder(slots=2)
    decoder.submit(1, [10], limit=1, reply=[1])
    decoder.submit(2, [20], limit=2, reply=[2, 3])
    decoder.submit(3, [30], limit=1, reply=[4])
    assert [job.job for job in decoder.state.waiting] == [3]
    decoder.step()  # job 1 ends: job 3 takes its slot
    assert decoder.state.running[0].job == 3 and decoder.state.waiting == ()


def test_a_new_job_reuses_the_slot_that_holds_its_prompts_start():
    decoder = Decoder()
    decoder.submit(1, [1, 2, 3], limit=1, reply=[7])
    decoder.submit(2, [5, 6], limit=1, reply=[8])
    decoder.step()
    assert decoder.state.cached == ((1, 2, 3), (5, 6))
    # The next turn of job 2's conversation: slot 1 holds its start, so only the new tokens are fed.
    effects = decoder.submit(3, [5, 6, 8, 9, 4], limit=1, reply=[0])
    assert effects == [] and decoder.state.running[1].pending == (8, 9, 4)
    entries, _ = decoder.step()
    assert entries == (BatchEntry(1, (8, 9, 4), 2, True),)


def test_another_askers_cache_is_never_reused_and_is_kept_while_an_empty_slot_is_free():
    decoder = Decoder(slots=3)
    decoder.submit(1, [1, 2, 3, 4], limit=1, reply=[7], owner="alice")
    decoder.step()
    # Bob's prompt starts as Alice's did: he gets an empty slot and evaluates all of it, so how soon he is
    # answered says nothing about what Alice asked; her history stays for her next turn.
    effects = decoder.submit(2, [1, 2, 3, 9], limit=1, reply=[0], owner="bob")
    assert effects == [] and decoder.state.running[1].pending == (1, 2, 3, 9)
    decoder.step()
    assert decoder.state.owners == ("alice", "bob", "") and decoder.state.cached[0] == (1, 2, 3, 4)
    # Alice's next turn reuses her slot.
    decoder.submit(3, [1, 2, 3, 4, 7, 5], limit=1, reply=[0], owner="alice")
    assert decoder.state.running[0].pending == (7, 5)
    decoder.step()
    # With no empty slot left, a new asker takes the lowest free one, and what it held is dropped whole.
    decoder.submit(4, [5, 6], limit=1, reply=[0], owner="carol")
    decoder.submit(5, [1, 2, 3, 4, 7, 5, 0, 8], limit=2, reply=[0, 0], owner="dave")
    assert decoder.state.running[2].job == 4
    assert decoder.state.running[0].job == 5 and decoder.state.running[0].pending == (1, 2, 3, 4, 7, 5, 0, 8)
    assert TrimCache(0, 0) in decoder.effects and decoder.state.owners[0] == "dave"


def test_a_prompt_that_differs_drops_what_the_slot_held_from_there():
    decoder = Decoder(slots=1)
    decoder.submit(1, [1, 2, 3, 4], limit=1, reply=[7])
    decoder.step()
    effects = decoder.submit(2, [1, 2, 9], limit=1, reply=[0])
    assert effects == [TrimCache(0, 2)] and decoder.state.cached == ((1, 2),)
    # The same prompt again: its last token is fed again, for the logits of the first reply token.
    decoder.step()
    effects = decoder.submit(3, [1, 2, 9], limit=1, reply=[0])
    assert effects == [TrimCache(0, 2)] and decoder.state.running[0].pending == (9,)


def test_replies_go_first_and_prompts_fill_the_rest_of_the_batch_in_chunks():
    decoder = Decoder(slots=2, n_batch=4)
    decoder.submit(1, [1], limit=5, reply=[2, 3, 4, 5, 6])
    decoder.step()
    decoder.submit(2, list(range(10, 17)), limit=1, reply=[0])
    entries, _ = decoder.step()
    assert entries == (BatchEntry(0, (2,), 1, True), BatchEntry(1, (10, 11, 12), 0, False))
    entries, _ = decoder.step()
    assert entries == (BatchEntry(0, (3,), 2, True), BatchEntry(1, (13, 14, 15), 3, False))
    entries, _ = decoder.step()
    assert entries == (BatchEntry(0, (4,), 3, True), BatchEntry(1, (16,), 6, True))
    assert decoder.end(2) == EndJob(2, "length", 1)


def test_cancelling_ends_a_running_or_waiting_job_and_frees_its_slot():
    decoder = Decoder(slots=1)
    decoder.submit(1, [1, 2], limit=9, reply=[3, 4, 5])
    decoder.submit(2, [7], limit=1, reply=[8])
    assert decoder.apply(JobCancelled(2)) == [EndJob(2, "cancelled", 0)]
    decoder.step()
    decoder.submit(3, [1, 2, 9], limit=1, reply=[0])
    assert decoder.apply(JobCancelled(1)) == [EndJob(1, "cancelled", 1)]
    # The slot went to job 3, keeping the start it shares with job 1's prompt.
    assert decoder.state.running[0].job == 3 and decoder.state.cached == ((1, 2),)
    assert decoder.apply(JobCancelled(1)) == []  # twice, or a job that ended: nothing


def test_a_refused_step_fails_its_jobs_and_empties_their_slots():
    decoder = Decoder()
    decoder.submit(1, [1, 2], reply=[3])
    decoder.submit(2, [4], reply=[5])
    entries = plan_decode_step(decoder.state)
    effects = decoder.apply(StepFailed(entries, "llama_decode returned 1"))
    assert EndJob(1, "failed", 0, "llama_decode returned 1") in effects
    assert TrimCache(0, 0) in effects and TrimCache(1, 0) in effects
    assert decoder.state.running == {} and decoder.state.cached == ((), ())


@pytest.mark.parametrize("prompt, limit", [((), 3), ((1,), 0)])
def test_an_empty_prompt_or_no_room_to_answer_fails_at_once(prompt, limit):
    decoder = Decoder()
    (end,) = decoder.submit(1, prompt, limit=limit)
    assert isinstance(end, EndJob) and end.reason == "failed"
    assert decoder.state.waiting == () and decoder.state.running == {}


def test_the_state_is_not_changed_in_place():
    decoder = Decoder()
    before = decoder.state
    decoder.submit(1, [1], reply=[2])
    assert before.running == {} and before.waiting == ()
