"""Data shapes of one deep-thinking answer in progress (issue 13): its budget, its state, its events and
the effects the edge performs (start_thinking_chats). apply_thinking_event is the pure transition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.engine.engine_types import CancelSignal, ChatEvent, ChatRequest, ChatStream
from appliance.thinking.clarify_types import Clarification
from appliance.thinking.intent_types import IntentAnalysis, IntentModel

Step = Literal["analysing", "asking", "exploring", "checking", "converging", "answering"]

# Thinking answers one client may have running at once: each takes several of the unit's sequences.
THINKS_PER_CLIENT = 1
# The person's override of the unit's budget is held to these bounds.
MIN_CALLS, MAX_CALLS = 1, 16
MIN_SECONDS, MAX_SECONDS = 5.0, 600.0
# The share of the time budget analyses may take: past it, the unit decides with the ones that came back.
ANALYSIS_SHARE = 0.5


@dataclass(frozen=True)
class ThinkingBudget:
    """What one thinking answer may spend (plan_thinking_budget): sampled analyses, candidate answers, model
    calls in all (a failed call run again counts), and wall time before it converges with what it has."""

    analyses: int
    candidates: int
    max_calls: int
    max_seconds: float
    analysis_tokens: int = 160  # a small model fills every list it may: what matters comes first (INTENT_SCHEMA)


@dataclass(frozen=True)
class Candidate:
    """One candidate answer: a whole answer (mode "choose"), or the answer to one part (mode "merge")."""

    title: str
    request: ChatRequest
    parts: tuple[str, ...] = ()  # the words each part it must cover is known by (check_candidate)
    phase: Literal["waiting", "running", "done", "failed"] = "waiting"
    text: str = ""
    unit: str = ""
    finish_reason: str = ""
    tokens: int = 0
    attempts: int = 0
    score: float | None = None  # check_candidate's, once it ended
    notes: tuple[str, ...] = ()  # what the check found, in words


@dataclass(frozen=True)
class CandidateCheck:
    """How a candidate answer holds up against the intent (check_candidate): score 0..1, and each check in
    words, passed or not."""

    score: float
    passed: tuple[str, ...]
    failed: tuple[str, ...]


Phase = Literal["analysing", "exploring", "done", "cancelled"]


@dataclass(frozen=True)
class Thinking:
    """A thinking answer in progress.

    question: the prompt being thought about (the one a clarification is about, not the answer to it);
    answers: the person's answers to the clarifying questions so far; context: the messages before the
    question (the conversation so far), which candidates see; prior: the intent model kept from earlier.
    """

    request: ChatRequest
    question: str
    context: tuple[dict, ...]
    answers: tuple[str, ...]
    asked: int
    budget: ThinkingBudget
    deadline: float  # when it converges with what it has
    analysis_deadline: float  # when it decides with the analyses that came back: candidates get the rest
    phase: Phase = "analysing"
    prior: IntentModel | None = None
    analyses: tuple[IntentAnalysis | None | Literal["running"], ...] = ()
    intent: IntentModel | None = None
    clarification: Clarification | None = None
    mode: Literal["choose", "merge"] = "choose"
    candidates: tuple[Candidate, ...] = ()
    chosen: tuple[int, ...] = ()
    calls: int = 0
    changed: bool = False  # candidates grew since the last progress event (sent on the next tick)


# --- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThinkingBegun:
    pass


@dataclass(frozen=True)
class AnalysisEnded:
    index: int
    text: str


@dataclass(frozen=True)
class AnalysisFailed:
    index: int
    reason: str


@dataclass(frozen=True)
class CandidateStarted:
    index: int
    unit: str


@dataclass(frozen=True)
class CandidateText:
    index: int
    text: str


@dataclass(frozen=True)
class CandidateEnded:
    index: int
    finish_reason: str
    tokens: int


@dataclass(frozen=True)
class CandidateFailed:
    index: int
    reason: str


@dataclass(frozen=True)
class ClockTicked:
    now: float


@dataclass(frozen=True)
class ClientLeft:
    pass


ThinkingEvent = (
    ThinkingBegun
    | AnalysisEnded
    | AnalysisFailed
    | CandidateStarted
    | CandidateText
    | CandidateEnded
    | CandidateFailed
    | ClockTicked
    | ClientLeft
)


# --- effects -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emit:
    event: ChatEvent


@dataclass(frozen=True)
class RunAnalysis:
    index: int
    request: ChatRequest


@dataclass(frozen=True)
class RunCandidate:
    index: int
    request: ChatRequest


@dataclass(frozen=True)
class CancelCalls:
    """Stop every running model call of a kind (analyses: "analysis", candidates: "candidate")."""

    kind: Literal["analysis", "candidate"]


@dataclass(frozen=True)
class Fail:
    """Nothing to answer with: the answer ends with this error (EngineError engine_failed, 503)."""

    message: str


ThinkingEffect = Emit | RunAnalysis | RunCandidate | CancelCalls | Fail


@dataclass(frozen=True)
class ThinkingService:
    """The thinking layer in front of the chats' way in (start_thinking_chats); stream_chat has
    Engine.stream_chat's shape."""

    stream_chat: Callable[[ChatRequest, CancelSignal], ChatStream]
