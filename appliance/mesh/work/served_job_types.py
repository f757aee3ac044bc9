"""Data shapes of the chats this unit runs for peers: which are running, what arrives, what to do."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.engine.engine_types import ChatRequest

# A member may have this many chats running here at once (the engine pool queues them fairly beside the
# phones, by a client key of its own); more are declined at once, so one broken unit cannot fill the queue.
MAX_JOBS_PER_SENDER = 4
MAX_JOBS = 16


@dataclass(frozen=True)
class ServedJobs:
    """{(sender, job id)} of the chats running here for peers."""

    running: frozenset[tuple[str, str]] = field(default_factory=frozenset)


# Events.
@dataclass(frozen=True)
class JobOffered:
    """A chat a peer asks this unit to run: its request already checked (the same checks as a phone's), or
    `refusal` saying why it could not be read; `decline` is accept_chat_job's answer on this unit's load."""

    sender: str
    job: str
    request: ChatRequest | None
    refusal: str | None
    decline: str | None


@dataclass(frozen=True)
class JobCancelled:
    sender: str
    job: str


@dataclass(frozen=True)
class JobEnded:
    sender: str
    job: str


ServedEvent = JobOffered | JobCancelled | JobEnded


# Effects.
@dataclass(frozen=True)
class Answer:
    """Send this result payload to `sender`."""

    sender: str
    payload: dict


@dataclass(frozen=True)
class RunJob:
    sender: str
    job: str
    request: ChatRequest


@dataclass(frozen=True)
class StopJob:
    sender: str
    job: str


ServedEffect = Answer | RunJob | StopJob
