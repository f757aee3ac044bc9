"""Data shapes shared by every engine: requests in, events out, the engine handle itself.

Both engines (llama.cpp, MLC LLM) are opened into an `Engine`; everything above the engine layer
(worker process, portal, deep thinking) only sees these shapes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from appliance.errors import UnitError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatParams:
    """Sampling parameters; None means "the engine's or unit's default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # A JSON schema the reply must follow (OpenAI response_format json_object/json_schema).
    json_schema: dict | None = None
    # response_format {"type": "json_object"} without a schema: any JSON object.
    json_object: bool = False


Effort = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class ThinkingAsk:
    """Deep thinking asked for one chat (appliance/thinking). effort "low" answers directly.

    max_calls / max_seconds: the person's override of the unit's budget (None: the unit's).
    asked: how many clarifying questions this prompt has had; the newest user message answers the last
    one, and the prompt being clarified is the user message `asked` exchanges back.
    intent_json: the conversation's kept intent model (encode_intent_model), "" when there is none.
    """

    effort: Effort = "medium"
    max_calls: int | None = None
    max_seconds: float | None = None
    asked: int = 0
    intent_json: str = ""


@dataclass(frozen=True)
class ChatRequest:
    """OpenAI-shaped messages ({"role", "content"} dicts, already validated) and parameters."""

    messages: tuple[dict, ...]
    params: ChatParams = field(default_factory=ChatParams)
    # Who asks (a hash of the phone's cookie, or the API caller): the engine pool queues fairly by it.
    client_key: str = ""
    # A long conversation: leave out its oldest exchanges (never the system prompt) so that it fits.
    fit_history: bool = False
    # The start of the reply, already sent to the client by another unit that then failed: the engine
    # continues it (the events carry only what follows). It counts against max_tokens, as part of the reply.
    reply_prefix: str = ""
    # The asker allows its prompt to be cut into pieces answered in parallel (appliance/split); a piece
    # itself, and every chat a peer sends, runs whole.
    split: bool = False
    # Think before answering (None: answer directly); only the unit the person asks thinks, its model
    # calls run whole.
    thinking: ThinkingAsk | None = None


@dataclass(frozen=True)
class ChatEvent:
    """One event of a chat stream.

    kind "start": the prompt was accepted (prompt_tokens set; dropped_messages: how many old messages
    fit_history left out; unit: the name of the unit of the mesh that answers, "" for this one);
    kind "delta": a piece of the reply text;
    kind "done": the end (finish_reason "stop" | "length" | "cancelled", token counts set);
    kind "piece": progress of one piece of a split answer (piece: its index; text: more of its own reply;
    unit: who answers it, on its first event; finish_reason set on its last). The answer itself still
    comes as "delta" events (the pieces stitched, or the reduce step's reply): a reader that knows only
    start/delta/done gets the whole answer.

    A split answer's "start" carries plan: the title of each piece, in order (empty: answered whole).

    Deep thinking adds three kinds, which a reader that knows only start/delta/done may skip:
    kind "thought": progress (step: "analysing" | "asking" | "exploring" | "checking" | "converging" |
    "answering"; text: a sentence for the person; graph: the reasoning graph so far, a JSON-ready dict);
    kind "clarify": the unit asks back instead of answering (text: the question, which also comes as
    "delta" text; choices: one-tap answers);
    kind "intent": the intent model to keep for the conversation's next turns (text: its JSON).
    A thinking answer's "done" carries the final graph.
    """

    kind: Literal["start", "delta", "done", "piece", "thought", "clarify", "intent"]
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    dropped_messages: int = 0
    unit: str = ""
    piece: int = -1
    plan: tuple[str, ...] = ()
    step: str = ""
    graph: dict | None = None
    choices: tuple[str, ...] = ()


class EngineError(UnitError):
    """An error the engine reports for one request; the engine itself stays usable.

    code follows OpenAI's error codes where one fits ("context_length_exceeded", "invalid_schema",
    "engine_failed", "engine_timeout", "engine_unavailable").
    """

    def __init__(self, code: str, message: str, status: int = 400, retry_after_s: float | None = None):
        super().__init__(code, message)
        self.status = status
        self.retry_after_s = retry_after_s  # a refusal for load (429, 503): when to ask again


@dataclass(eq=False)
class ClientPlaces:
    """What each client runs at once in one layer (hold_client_place): the edge's counter, behind its lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: Counter[str] = field(default_factory=Counter)


class CancelSignal(Protocol):
    """What ends a stream early: a threading.Event, or anything else that can say it is set."""

    def is_set(self) -> bool: ...


ChatStream = Generator[ChatEvent, None, None]
StreamChat = Callable[[ChatRequest, CancelSignal], ChatStream]


@dataclass(frozen=True)
class Engine:
    """An opened engine with one model loaded.

    stream_chat(request, cancel) yields a "start" event, "delta" events, then one "done" event; it
    raises EngineError before "start" for a request it cannot run (prompt too long, bad schema).
    Setting `cancel` ends the stream early with finish_reason "cancelled".
    """

    kind: str  # "llama.cpp" | "mlc"
    model_id: str
    n_ctx: int
    stream_chat: StreamChat
    close: Callable[[], None]
    # A small dict for /healthz and the admin page (workers alive, queue length...).
    describe_status: Callable[[], dict] = dict
    # How many streams it decodes at once (a batched llama.cpp context; MLC batches inside its engine).
    sequences: int = 1
