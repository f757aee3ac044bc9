"""Data shapes of the engine pool: its state, the events it reacts to, the effects it asks for.

apply_pool_event(state, event) -> (state, effects) is pure; start_engine_pool's loop feeds it events
(a worker's message or exit, a request, a timer) and performs the effects (spawn, send, kill, deliver).
Worker generations tell processes apart: each spawn of a slot gets a new one, and an event from an older
process of that slot is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from appliance.engine.engine_types import ChatEvent, ChatRequest, EngineError

# Deaths in a row that point at the build rather than at one request (SIGILL; SIGSEGV/SIGBUS before the
# first token): then the pool stops restarting and says the engine cannot run on this unit.
BROKEN_AFTER_DEATHS = 3
# A broken pool tries once more after this long (a passing fault, or a prompt that crashes native code,
# must not take the unit off the air for good): one more such death breaks it again at once.
RECHECK_BROKEN_AFTER_S = 600.0
MAX_RESTART_DELAY_S = 30.0

Phase = Literal["starting", "ready", "restarting", "stopped"]


@dataclass(frozen=True)
class PoolLimits:
    """How much one client and everyone together may ask at once.

    Every chat that waits holds one of the web server's threads: these bound how many chats can, so the
    server keeps threads for pages, /healthz, the portal's probes and peers' piece requests (see
    count_server_threads). A client is an address (name_chat_client), not a cookie a phone can rotate.
    """

    chats_per_client: int = 2  # running and queued: a reply and the next question, or two tabs
    max_queued: int = 8  # chats waiting for a worker, all clients together: beyond it, 503 and Retry-After


@dataclass(frozen=True)
class WorkerSlot:
    index: int
    generation: int = 0
    phase: Phase = "stopped"
    job_ids: tuple[int, ...] = ()  # the chats it runs, at most `sequences` (decoded together)
    sequences: int = 1  # how many chats its engine runs at once, as it said when ready
    last_activity: float = 0.0
    hang_killed: bool = False
    failures: int = 0  # deaths and failed loads since it was last ready: the restart backoff


@dataclass(frozen=True)
class PoolJob:
    job_id: int
    request: ChatRequest
    worker: int | None = None
    started_at: float = 0.0  # when a worker took it
    streamed: bool = False  # a piece of the reply went out: a death now is not "before the first token"
    # For the speed measure: when the engine accepted the prompt (its "start"), how long the prompt was, and
    # when the first piece of the reply came (the prompt evaluated).
    accepted_at: float | None = None
    prompt_tokens: int = 0
    first_token_at: float | None = None


@dataclass(frozen=True)
class EngineSpeed:
    """How fast the serving model runs on this unit, smoothed over its recent chats: what a scheduler needs to
    tell when a chat sent here would finish."""

    prefill_tokens_per_s: float  # prompt tokens evaluated per second
    decode_tokens_per_s: float  # reply tokens generated per second, one chat alone on a worker
    measured_at: float  # the pool's clock (monotonic s) at the last chat measured


@dataclass(frozen=True)
class LoadFailure:
    code: str
    message: str


@dataclass(frozen=True)
class PoolState:
    """The pool at one moment. Dicts here are values: transitions copy, never change them."""

    workers: tuple[WorkerSlot, ...]
    hang_timeout_s: float = 120.0
    limits: PoolLimits = PoolLimits()
    mean_chat_s: float = 20.0  # how long a chat holds a worker, smoothed: the Retry-After estimate
    speed: EngineSpeed | None = None  # None until a chat was measured (and after the model changes)
    jobs: dict[int, PoolJob] = field(default_factory=dict)
    waiting: dict[str, tuple[int, ...]] = field(default_factory=dict)  # client -> its queued job ids, in order
    turn: tuple[str, ...] = ()  # clients with queued jobs, in round-robin order
    kind: str = ""
    model_id: str = ""
    n_ctx: int = 0
    load_failure: LoadFailure | None = None
    suspect_deaths: int = 0  # deaths in a row that point at the build (see BROKEN_AFTER_DEATHS)
    broken: str | None = None  # why the engine cannot run here; None while it can
    broken_at: float = 0.0
    closed: bool = False


# Events.
@dataclass(frozen=True)
class PoolStarted:
    at: float


@dataclass(frozen=True)
class ChatSubmitted:
    job_id: int
    request: ChatRequest
    at: float


@dataclass(frozen=True)
class ChatCancelled:
    job_id: int


@dataclass(frozen=True)
class WorkerReady:
    worker: int
    generation: int
    kind: str
    model_id: str
    n_ctx: int
    at: float
    sequences: int = 1


@dataclass(frozen=True)
class WorkerLoadFailed:
    worker: int
    generation: int
    code: str
    message: str


@dataclass(frozen=True)
class WorkerStreamed:
    """A chat event (start, delta, done) of the job a worker runs."""

    worker: int
    generation: int
    job_id: int
    event: ChatEvent
    at: float


@dataclass(frozen=True)
class WorkerRefused:
    """The engine ended one request with an error; the worker itself goes on."""

    worker: int
    generation: int
    job_id: int
    code: str
    message: str
    status: int
    at: float


@dataclass(frozen=True)
class WorkerExited:
    worker: int
    generation: int
    returncode: int
    at: float


@dataclass(frozen=True)
class RestartDue:
    worker: int
    generation: int
    at: float


@dataclass(frozen=True)
class ClockTicked:
    at: float


@dataclass(frozen=True)
class PoolClosing:
    pass


PoolEvent = (
    PoolStarted
    | ChatSubmitted
    | ChatCancelled
    | WorkerReady
    | WorkerLoadFailed
    | WorkerStreamed
    | WorkerRefused
    | WorkerExited
    | RestartDue
    | ClockTicked
    | PoolClosing
)


# Effects.
@dataclass(frozen=True)
class SpawnWorker:
    worker: int
    generation: int


@dataclass(frozen=True)
class SendToWorker:
    worker: int
    generation: int
    message: dict


@dataclass(frozen=True)
class KillWorker:
    worker: int
    generation: int


@dataclass(frozen=True)
class ScheduleRestart:
    worker: int
    generation: int
    delay_s: float


@dataclass(frozen=True)
class DeliverEvent:
    """Pass a start or delta event to the caller of the job; the job goes on."""

    job_id: int
    event: ChatEvent


@dataclass(frozen=True)
class FinishJob:
    """The job's last item: its "done" event, or the error it ends with."""

    job_id: int
    outcome: ChatEvent | EngineError


PoolEffect = SpawnWorker | SendToWorker | KillWorker | ScheduleRestart | DeliverEvent | FinishJob
