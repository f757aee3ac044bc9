"""Data shapes of split answers: the router's decision, the planned pieces, and a split answer in progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.engine.engine_types import CancelSignal, ChatEvent, ChatRequest, ChatStream

# How a prompt is answered: whole; "sections": independent questions or subjects, each answered on its own
# and stitched under headings; "map_reduce": a long text cut into parts, each part answered, then one
# reduce step answers from the parts' notes.
RouteKind = Literal["whole", "sections", "map_reduce"]

# More pieces than this cost more in prompts and merging than they save on the units of a small mesh.
MAX_PIECES = 6
# A piece's reply: at least this many tokens, however many pieces share the asked max_tokens.
MIN_PIECE_TOKENS = 48
# Split answers one client may have running at once (as many as whole chats: a reply and the next question);
# its pieces' queue places are shared between them, so more would only fail.
SPLITS_PER_CLIENT = 2
# A piece that fails (its stream breaks, its engine refuses) is run again this many times, then given up.
PIECE_ATTEMPTS = 2


@dataclass(frozen=True)
class Route:
    """The router's decision for one prompt. parts: what the rules cut it into (sections: the questions or
    subjects; map_reduce: the text's parts), instruction: what is asked of each part or subject."""

    kind: RouteKind
    reason: str
    parts: tuple[str, ...] = ()
    instruction: str = ""


@dataclass(frozen=True)
class Piece:
    """One self-contained piece: its heading in the answer and the prompt it is asked as."""

    title: str
    prompt: str


@dataclass(frozen=True)
class SplitPlan:
    """The pieces of one answer and how they come together (reduce_prompt: map_reduce's merge step; the
    parts' notes are added under it)."""

    kind: RouteKind
    pieces: tuple[Piece, ...]
    reduce_prompt: str = ""
    planner: str = "rules"  # "rules" | "model": who cut it


PiecePhase = Literal["waiting", "running", "done", "failed"]


@dataclass(frozen=True)
class PieceState:
    phase: PiecePhase = "waiting"
    text: str = ""
    unit: str = ""
    attempts: int = 0
    tokens: int = 0
    finish_reason: str = ""


@dataclass(frozen=True)
class SplitAnswer:
    """A split answer in progress. stitched: how many pieces' sections the client has (sections go out in
    order, each once, as soon as every earlier one is out); phase "reducing": the merge step is running."""

    plan: SplitPlan
    pieces: tuple[PieceState, ...]
    width: int = 1  # pieces running at once: as many as the units that can take one
    phase: Literal["pieces", "reducing", "done", "cancelled"] = "pieces"
    stitched: int = 0
    completion_tokens: int = 0


# --- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitBegun:
    pass


@dataclass(frozen=True)
class PieceStarted:
    index: int
    unit: str


@dataclass(frozen=True)
class PieceText:
    index: int
    text: str


@dataclass(frozen=True)
class PieceEnded:
    index: int
    finish_reason: str
    tokens: int


@dataclass(frozen=True)
class PieceFailed:
    index: int
    reason: str


@dataclass(frozen=True)
class ReduceText:
    text: str


@dataclass(frozen=True)
class ReduceEnded:
    finish_reason: str
    tokens: int


@dataclass(frozen=True)
class ReduceFailed:
    reason: str


@dataclass(frozen=True)
class ClientGone:
    pass


SplitEvent = (
    SplitBegun
    | PieceStarted
    | PieceText
    | PieceEnded
    | PieceFailed
    | ReduceText
    | ReduceEnded
    | ReduceFailed
    | ClientGone
)


# --- effects -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPiece:
    index: int
    attempt: int


@dataclass(frozen=True)
class RunReduce:
    prompt: str


@dataclass(frozen=True)
class Emit:
    event: ChatEvent


@dataclass(frozen=True)
class CancelPieces:
    pass


SplitEffect = RunPiece | RunReduce | Emit | CancelPieces


@dataclass(frozen=True)
class SplitService:
    """The running splitter (start_split_chats): stream_chat is Engine.stream_chat, with prompts that suit
    it cut into pieces run in parallel (through run_chat: where each finishes soonest)."""

    stream_chat: Callable[[ChatRequest, CancelSignal], ChatStream]
