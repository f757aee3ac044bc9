"""The chats this unit runs for peers, one event at a time (pure): take a job or decline it at once, run
each job id once, stop one its sender cancels."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.mesh.work.served_job_types import (
    MAX_JOBS,
    MAX_JOBS_PER_SENDER,
    Answer,
    JobCancelled,
    JobEnded,
    JobOffered,
    RunJob,
    ServedEffect,
    ServedEvent,
    ServedJobs,
    StopJob,
)
from appliance.route_event import route_event

Step = tuple[ServedJobs, list[ServedEffect]]


def _offered(jobs: ServedJobs, event: JobOffered) -> Step:
    key = (event.sender, event.job)
    if key in jobs.running:  # the same job again (QoS 1 may deliver twice): it runs once
        return jobs, []
    decline = event.refusal or event.decline
    if decline is None and sum(sender == event.sender for sender, _ in jobs.running) >= MAX_JOBS_PER_SENDER:
        decline = f"this unit already runs {MAX_JOBS_PER_SENDER} chats for that unit"
    if decline is None and len(jobs.running) >= MAX_JOBS:
        decline = f"this unit already runs {MAX_JOBS} chats for peers"
    if decline is not None or event.request is None:
        return jobs, [Answer(event.sender, {"type": "declined", "job": event.job, "reason": decline or "unreadable"})]
    running = jobs.running | {key}
    effects: list[ServedEffect] = [
        Answer(event.sender, {"type": "accepted", "job": event.job}),
        RunJob(event.sender, event.job, event.request),
    ]
    return dataclasses.replace(jobs, running=running), effects


def _cancelled(jobs: ServedJobs, event: JobCancelled) -> Step:
    key = (event.sender, event.job)  # only the sender of a job can cancel it
    return (jobs, [StopJob(*key)]) if key in jobs.running else (jobs, [])


def _ended(jobs: ServedJobs, event: JobEnded) -> Step:
    return dataclasses.replace(jobs, running=jobs.running - {(event.sender, event.job)}), []


_TRANSITIONS: dict[type, Callable[[ServedJobs, Any], Step]] = {
    JobOffered: _offered,
    JobCancelled: _cancelled,
    JobEnded: _ended,
}


def apply_served_job_event(jobs: ServedJobs, event: ServedEvent) -> Step:
    """The served jobs after `event`, and the effects to perform, in order; `jobs` is not changed."""
    return route_event(_TRANSITIONS, jobs, event, "served jobs")
