"""Data shapes of a multi-supplier fetch: the suppliers' standing, the pieces left, what workers are told.

apply_fetch_event(state, event) -> (state, decision) is pure; fetch_pieces' worker threads ask it for work,
fetch and verify the piece they are given (or stream a whole file from a source that ignores ranges, cutting
the pieces they are given from it), and report back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.library.library_types import PieceSpec, PieceSupplier

PIECE_ATTEMPTS = 5  # per supplier: a piece that failed this often everywhere ends the fetch
SUPPLIER_FAILURES = 3  # a supplier that fails this many pieces in a row is dropped
SUPPLIER_INFLIGHT = 4  # requests at once per supplier: enough to fill a link, few enough to share peers
# Worth another try: the network hiccuped, or the bytes were wrong this time (a flaky link, a bad cache).
RETRYABLE = frozenset({"source_unavailable", "source_short_read", "source_bad_response"})
# A source answered a range request with the whole file (200): its pieces come from one pass per file.
IGNORES_RANGES = "source_ignores_ranges"

PieceKey = tuple[str, int]  # (path, piece index)


@dataclass(frozen=True)
class SupplierStanding:
    supplier: PieceSupplier
    inflight: int = 0
    fetched_bytes: int = 0
    busy_seconds: float = 0.0
    failures_in_row: int = 0
    dropped: str | None = None  # why it is no longer asked
    whole_files: bool = False  # it ignores ranges: it is asked for whole files (Stream), never for pieces

    @property
    def is_origin(self) -> bool:
        return self.supplier.holds is None

    def holds(self, piece: PieceSpec) -> bool:
        return self.supplier.holds is None or (piece.path, piece.index) in self.supplier.holds


@dataclass(frozen=True)
class FetchState:
    """Dicts here are values: transitions copy, never change them. Suppliers are named by their index."""

    suppliers: tuple[SupplierStanding, ...]
    queue: tuple[PieceSpec, ...]  # still to fetch, rarest first
    remaining: int  # pieces not yet delivered
    attempts: dict[PieceKey, int] = field(default_factory=dict)
    avoided: dict[PieceKey, frozenset[int]] = field(default_factory=dict)  # suppliers a piece failed on
    rejected: int = 0  # pieces that failed verification
    # Pieces no supplier left can serve right: the source's copy is corrupt. The rest is fetched (and kept)
    # first; then the fetch fails, naming these.
    lost: tuple[PieceSpec, ...] = ()
    failure: Exception | None = None  # what ends the fetch


# Events.
@dataclass(frozen=True)
class WorkWanted:
    """A worker is free. cancelled: the install was cancelled (checked by the edge)."""

    cancelled: bool = False


@dataclass(frozen=True)
class PieceDelivered:
    piece: PieceSpec
    supplier: int
    seconds: float


@dataclass(frozen=True)
class PieceFailed:
    piece: PieceSpec
    supplier: int
    error: Exception  # a LibraryError: its code says whether to retry, drop the supplier, or give up


@dataclass(frozen=True)
class PieceStreamed:
    """A piece cut from a Stream came complete and verified, and is written (the stream goes on)."""

    piece: PieceSpec
    supplier: int
    seconds: float


@dataclass(frozen=True)
class StreamedPieceRejected:
    """A piece cut from a Stream came complete but does not match the manifest: the source's copy is bad."""

    piece: PieceSpec
    supplier: int


@dataclass(frozen=True)
class StreamEnded:
    """A Stream's request is over. unfinished: its pieces not yet reported; error: why it broke (None: it ended
    as planned, or stopped early because the fetch was cancelled or failed)."""

    supplier: int
    unfinished: tuple[PieceSpec, ...]
    error: Exception | None = None


@dataclass(frozen=True)
class WorkerBroke:
    """Something beside the download failed (a disk error while writing): the whole fetch stops."""

    supplier: int
    error: Exception


FetchEvent = (
    WorkWanted | PieceDelivered | PieceFailed | PieceStreamed | StreamedPieceRejected | StreamEnded | WorkerBroke
)


# Decisions (for WorkWanted; other events answer Carry).
@dataclass(frozen=True)
class Fetch:
    piece: PieceSpec
    supplier: int
    delay_s: float = 0.0  # a retry waits a little longer each time


@dataclass(frozen=True)
class Stream:
    """Read `path` once from its start, cutting `pieces` (by offset) from it as they pass; stop after the last.

    Reported piece by piece (PieceStreamed, StreamedPieceRejected), then StreamEnded.
    """

    path: str
    pieces: tuple[PieceSpec, ...]
    supplier: int
    delay_s: float = 0.0


@dataclass(frozen=True)
class Wait:
    """Nothing to do now (every supplier of what is left is busy): ask again soon."""


@dataclass(frozen=True)
class Stop:
    """No more work: everything is fetched, the fetch failed, or it was cancelled."""


@dataclass(frozen=True)
class Carry:
    """Go on (the answer to a report)."""


FetchDecision = Fetch | Stream | Wait | Stop | Carry
