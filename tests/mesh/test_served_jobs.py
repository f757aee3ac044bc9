"""Chats a unit runs for peers: the job message read as strictly as a phone's request, each job run once,
limits per sender, and cancels only from the job's sender."""

import dataclasses

import pytest

from appliance.engine.engine_types import ChatParams, ChatRequest
from appliance.mesh.work.apply_served_job_event import apply_served_job_event
from appliance.mesh.work.encode_chat_job import encode_chat_job
from appliance.mesh.work.read_chat_job import read_chat_job
from appliance.mesh.work.served_job_types import (
    MAX_JOBS,
    MAX_JOBS_PER_SENDER,
    Answer,
    JobCancelled,
    JobEnded,
    JobOffered,
    RunJob,
    ServedJobs,
    StopJob,
)
from appliance.mesh.work.work_types import ChatCost
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError

JOB = "0123456789abcdef"
MODEL = "smol"
COST = ChatCost(MODEL, prompt_tokens=12, reply_tokens=32)
REQUEST = ChatRequest(
    messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}),
    params=ChatParams(
        max_tokens=32, temperature=0.2, top_p=0.9, stop=("\n\n",), seed=4, json_schema={"type": "object"}
    ),
    fit_history=True,
    reply_prefix="Hel",
)


def parse(body):
    # As the unit wires it: the portal's own checks, an ApiError becoming the refusal's reason.
    try:
        parsed = parse_chat_request(body, models=(MODEL,), n_ctx=512)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return ChatRequest(messages=parsed.messages, params=parsed.params)


def test_a_job_reads_back_as_the_request_that_was_sent_under_the_senders_key():
    payload = encode_chat_job(JOB, COST, REQUEST, 1.25)
    job = read_chat_job(payload, "peer-a", parse)
    assert (job.job, job.cost, job.expect_start_s, job.refusal) == (JOB, COST, 1.25, None)
    assert job.request == ChatRequest(
        messages=REQUEST.messages,
        params=REQUEST.params,
        client_key="peer:peer-a:",
        fit_history=True,
        reply_prefix="Hel",
    )
    hidden = dataclasses.replace(REQUEST, client_key="3f2a9c1d0b7e6a55")
    job = read_chat_job(encode_chat_job(JOB, COST, hidden, 0.0), "peer-a", parse)
    assert job.request.client_key == "peer:peer-a:3f2a9c1d0b7e6a55"  # each of the sender's clients its own queue


@pytest.mark.parametrize(
    "change, refusal",
    [
        ({"model": 5}, "names no model"),
        ({"prompt_tokens": -1}, "token counts"),
        ({"reply_tokens": "many"}, "token counts"),
        ({"reply_tokens": True}, "token counts"),
        ({"expect_start_s": "soon"}, "expected wait"),
        ({"expect_start_s": float("inf")}, "expected wait"),
        ({"expect_start_s": -1}, "expected wait"),
        ({"reply_prefix": "x" * 20000}, "reply_prefix"),
        ({"fit_history": "yes"}, "fit_history"),
        ({"client": "ip:198.18.0.5/../x"}, "client key"),
        ({"client": "x" * 65}, "client key"),
        ({"request": []}, "not an object"),
        ({"request": {"model": "other", "messages": []}}, "not an object for its model"),
        ({"request": {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}}, "refused"),
        ({"request": {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}}, "refused"),
    ],
)
def test_a_job_that_does_not_read_is_refused_with_the_reason(change, refusal):
    job = read_chat_job({**encode_chat_job(JOB, COST, REQUEST, 0.0), **change}, "peer-a", parse)
    assert job.request is None and refusal in job.refusal


@pytest.mark.parametrize("job_id", [None, 5, "", "0123", "0123456789ABCDEF", "../../etc/passwd"])
def test_a_job_without_a_usable_id_is_dropped(job_id):
    assert read_chat_job({**encode_chat_job(JOB, COST, REQUEST, 0.0), "job": job_id}, "peer-a", parse) is None


def offer(sender="a", job=JOB, request=REQUEST, refusal=None, decline=None):
    return JobOffered(sender, job, None if refusal else request, refusal, decline)


def test_a_job_is_accepted_run_once_and_forgotten_when_it_ends():
    jobs, effects = apply_served_job_event(ServedJobs(), offer())
    assert effects == [Answer("a", {"type": "accepted", "job": JOB}), RunJob("a", JOB, REQUEST)]
    again, effects = apply_served_job_event(jobs, offer())
    assert again == jobs and effects == []
    jobs, _ = apply_served_job_event(jobs, JobEnded("a", JOB))
    assert jobs == ServedJobs()


def test_a_job_declined_or_unreadable_is_answered_at_once():
    _, effects = apply_served_job_event(ServedJobs(), offer(decline="no ready worker"))
    assert effects == [Answer("a", {"type": "declined", "job": JOB, "reason": "no ready worker"})]
    _, effects = apply_served_job_event(ServedJobs(), offer(refusal="the job names no model"))
    assert effects == [Answer("a", {"type": "declined", "job": JOB, "reason": "the job names no model"})]


def test_one_sender_and_all_senders_have_a_cap():
    jobs = ServedJobs()
    for n in range(MAX_JOBS_PER_SENDER):
        jobs, _ = apply_served_job_event(jobs, offer(job=f"{n:016x}"))
    _, effects = apply_served_job_event(jobs, offer(job="f" * 16))
    assert (
        effects[0].payload["type"] == "declined"
        and "already runs 4 chats for that unit" in effects[0].payload["reason"]
    )
    for n in range(MAX_JOBS - MAX_JOBS_PER_SENDER):
        jobs, _ = apply_served_job_event(jobs, offer(sender=f"s{n // 4}", job=f"{n:016x}"))
    _, effects = apply_served_job_event(jobs, offer(sender="new", job="e" * 16))
    assert "already runs 16 chats for peers" in effects[0].payload["reason"]


def test_only_the_sender_of_a_job_cancels_it():
    jobs, _ = apply_served_job_event(ServedJobs(), offer())
    assert apply_served_job_event(jobs, JobCancelled("b", JOB)) == (jobs, [])
    assert apply_served_job_event(jobs, JobCancelled("a", "f" * 16)) == (jobs, [])
    assert apply_served_job_event(jobs, JobCancelled("a", JOB)) == (jobs, [StopJob("a", JOB)])
