"""The background installs' transitions, one event at a time: no threads, no downloads."""

import pytest

from appliance.admin.apply_install_event import apply_install_event
from appliance.admin.install_job_types import (
    CancelRequested,
    InstallEnded,
    InstallJob,
    InstallJobsState,
    InstallProgressed,
    InstallRequested,
    JobError,
    RefuseRequest,
    RunInstall,
    StopInstall,
)


def _apply(state, event):
    return apply_install_event(state, event)


def test_a_request_starts_a_job_and_a_second_one_is_refused_while_it_runs():
    state, effects = _apply(InstallJobsState(), InstallRequested("M"))
    assert effects == [RunInstall("M")] and state.jobs["M"] == InstallJob("M")
    again, effects = _apply(state, InstallRequested("M"))
    assert again == state and effects == [RefuseRequest("install_running", "M is already being installed")]


def test_progress_then_the_outcome_and_late_reports_change_nothing():
    state, _ = _apply(InstallJobsState(), InstallRequested("M"))
    state, _ = _apply(state, InstallProgressed("M", 50, 100, 10.0, 5.0, 1))
    assert state.jobs["M"] == InstallJob("M", "running", 50, 100, 10.0, 5.0, 1)
    state, _ = _apply(state, InstallEnded("M", "installed"))
    assert (state.jobs["M"].state, state.jobs["M"].rate_bps, state.jobs["M"].eta_s) == ("installed", 0.0, None)
    assert _apply(state, InstallProgressed("M", 60, 100, 1.0, 1.0, 0)) == (state, [])
    assert _apply(state, InstallEnded("M", "failed", JobError("x", "y"))) == (state, [])


def test_a_failed_job_can_start_again():
    state, _ = _apply(InstallJobsState(), InstallRequested("M"))
    state, _ = _apply(state, InstallEnded("M", "failed", JobError("source_failed", "gone")))
    assert state.jobs["M"].error == JobError("source_failed", "gone")
    state, effects = _apply(state, InstallRequested("M"))
    assert effects == [RunInstall("M")] and state.jobs["M"] == InstallJob("M")


def test_cancel_asks_a_running_install_to_stop_and_refuses_otherwise():
    state, _ = _apply(InstallJobsState(), InstallRequested("M"))
    after, effects = _apply(state, CancelRequested("M"))
    assert effects == [StopInstall("M")] and after.jobs["M"].state == "running"  # until the install notices
    after, _ = _apply(after, InstallEnded("M", "cancelled", JobError("cancelled", "stopped")))
    assert _apply(after, CancelRequested("M"))[1][0].code == "no_install_running"
    assert _apply(InstallJobsState(), CancelRequested("Other"))[1][0].code == "no_install_running"


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_install_event(InstallJobsState(), object())


def test_the_admins_trust_in_the_mesh_goes_with_the_install_it_asked_for():
    _, effects = _apply(InstallJobsState(), InstallRequested("M", trust_mesh=True))
    assert effects == [RunInstall("M", trust_mesh=True)]
