"""The background installs' transitions: one event in, the new state and the effects out (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from appliance.admin.install_job_types import (
    CancelRequested,
    InstallEffect,
    InstallEnded,
    InstallEvent,
    InstallJob,
    InstallJobsState,
    InstallProgressed,
    InstallRequested,
    RefuseRequest,
    RunInstall,
    StopInstall,
)
from appliance.route_event import route_event

Step = tuple[InstallJobsState, list[InstallEffect]]


def _with_job(state: InstallJobsState, job: InstallJob) -> InstallJobsState:
    return InstallJobsState(jobs={**state.jobs, job.model: job})


def _running(state: InstallJobsState, model: str) -> InstallJob | None:
    job = state.jobs.get(model)
    return job if job is not None and job.state == "running" else None


def _request(state: InstallJobsState, event: InstallRequested) -> Step:
    if _running(state, event.model) is not None:
        return state, [RefuseRequest("install_running", f"{event.model} is already being installed")]
    return _with_job(state, InstallJob(model=event.model)), [RunInstall(event.model, event.trust_mesh)]


def _progress(state: InstallJobsState, event: InstallProgressed) -> Step:
    job = _running(state, event.model)
    if job is None:
        return state, []  # a late report of an install that already ended
    return _with_job(
        state,
        dataclasses.replace(
            job,
            done_bytes=event.done_bytes,
            total_bytes=event.total_bytes,
            rate_bps=event.rate_bps,
            eta_s=event.eta_s,
            rejected_pieces=event.rejected_pieces,
        ),
    ), []


def _end(state: InstallJobsState, event: InstallEnded) -> Step:
    job = _running(state, event.model)
    if job is None:
        return state, []
    return _with_job(
        state, dataclasses.replace(job, state=event.state, error=event.error, rate_bps=0.0, eta_s=None)
    ), []


def _cancel(state: InstallJobsState, event: CancelRequested) -> Step:
    if _running(state, event.model) is None:
        return state, [RefuseRequest("no_install_running", f"No install of {event.model} is running.")]
    # The job stays "running" until the install notices and ends as "cancelled".
    return state, [StopInstall(event.model)]


_TRANSITIONS: dict[type, Callable[[InstallJobsState, Any], Step]] = {
    InstallRequested: _request,
    InstallProgressed: _progress,
    InstallEnded: _end,
    CancelRequested: _cancel,
}


def apply_install_event(state: InstallJobsState, event: InstallEvent) -> Step:
    """The installs after `event`, and the effects to perform; `state` is not changed."""
    return route_event(_TRANSITIONS, state, event, "background installs")
