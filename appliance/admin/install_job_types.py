"""Data shapes of the background installs: one job per model, the events that move it, the effects it asks for.

apply_install_event(state, event) -> (state, effects) is pure; start_install_jobs runs the installs in
threads, feeds their progress and outcome back as events, and performs the effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

JobPhase = Literal["running", "installed", "failed", "cancelled"]


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class InstallJob:
    """What the admin page shows of one install (the API sends it as JSON, field for field)."""

    model: str
    state: JobPhase = "running"
    done_bytes: int = 0
    total_bytes: int = 0
    rate_bps: float = 0.0
    eta_s: float | None = None
    rejected_pieces: int = 0
    error: JobError | None = None


@dataclass(frozen=True)
class InstallJobsState:
    jobs: dict[str, InstallJob] = field(default_factory=dict)  # a value: transitions copy, never change it


# Events.
@dataclass(frozen=True)
class InstallRequested:
    model: str
    trust_mesh: bool = False  # the admin takes a manifest only one unit of the mesh vouches for


@dataclass(frozen=True)
class InstallProgressed:
    model: str
    done_bytes: int
    total_bytes: int
    rate_bps: float
    eta_s: float | None
    rejected_pieces: int


@dataclass(frozen=True)
class InstallEnded:
    model: str
    state: Literal["installed", "failed", "cancelled"]
    error: JobError | None = None


@dataclass(frozen=True)
class CancelRequested:
    model: str


InstallEvent = InstallRequested | InstallProgressed | InstallEnded | CancelRequested


# Effects.
@dataclass(frozen=True)
class RunInstall:
    model: str
    trust_mesh: bool = False


@dataclass(frozen=True)
class StopInstall:
    model: str


@dataclass(frozen=True)
class RefuseRequest:
    """The request cannot be done: start raises LibraryError(code), cancel answers None."""

    code: str
    message: str


InstallEffect = RunInstall | StopInstall | RefuseRequest
