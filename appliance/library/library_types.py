"""Data shapes of the model library: manifests, sources and whitelist entries.

A model is a set of files. Its manifest lists every file (path, size, SHA-256) and cuts each file into
fixed-size pieces with their SHA-256; the root hash is the SHA-256 of the manifest's canonical JSON
(see hash_manifest). Pieces are what units verify, store, and (later) exchange with peers.
"""

from __future__ import annotations

from dataclasses import dataclass

# 4 MiB: large enough that hashing and HTTP range requests run at full speed, small enough that a
# bad piece costs little to fetch again and that several peers can serve one file in parallel.
DEFAULT_PIECE_SIZE = 4 * 1024 * 1024
MANIFEST_VERSION = 1
FORMATS = ("mlc", "gguf")


@dataclass(frozen=True)
class ManifestFile:
    path: str  # relative POSIX path inside the model directory, checked by resolve_model_path
    size: int
    sha256: str
    pieces: tuple[str, ...]  # SHA-256 of each piece, in order; the last one may be short


@dataclass(frozen=True)
class Manifest:
    format: str  # "mlc" | "gguf"
    piece_size: int
    files: tuple[ManifestFile, ...]  # sorted by path
    root: str  # SHA-256 of the canonical JSON of (version, format, piece_size, files)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def piece_count(self) -> int:
        return sum(len(f.pieces) for f in self.files)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files come from.

    kind "hf": `<base>/<repo>/resolve/<revision>/<file>` (Hugging Face or any mirror with that layout);
    kind "url": `<base>/<file>` (a plain HTTP directory); kind "dir": a local directory or USB stick.
    """

    kind: str
    base: str
    repo: str = ""
    revision: str = "main"


@dataclass(frozen=True)
class SourceFile:
    """A file as its source publishes it (Hugging Face's LFS pointer: size and SHA-256 of the whole file)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class WhitelistEntry:
    id: str
    format: str  # "mlc" | "gguf"
    engine: str  # "mlc" | "llama.cpp"
    source: ModelSource
    size_bytes: int  # approximate total, for "does it fit" before the manifest is known
    license: str
    min_memory_bytes: int
    boards: tuple[str, ...]  # recommended board classes ("jetson-orin", "rk3588", "generic-x86_64"...)
    # Pinned root hash of the manifest; None = unpinned: pinned on first install (trust on first use).
    root_hash: str | None
    files: tuple[str, ...] = ()  # known file names (GGUF: the one file); MLC lists come from its configs
    description: str = ""
    # The full manifest, when it is known before installing (bundled, or given by an admin).
    manifest: Manifest | None = None
    # What the source says its files are, when known: an unpinned model's first install must match it,
    # so that it pins content the whitelist vouches for instead of whatever the source served.
    source_files: tuple[SourceFile, ...] = ()


@dataclass(frozen=True)
class PieceSpec:
    """One piece to fetch: where it lies in which file, and (when known) what it must hash to."""

    path: str
    index: int
    offset: int
    length: int
    file_size: int
    sha256: str | None  # None: first install of an unpinned model, nothing to check against yet


@dataclass(frozen=True)
class PieceSupplier:
    """A place pieces can come from: the model's origin source (holds every piece), or a peer.

    holds: the (path, index) pieces a peer has verified; None for an origin source. Peers are asked
    first (they are on the local link); the origin fills in what no peer holds, and what peers fail on.
    """

    source: ModelSource
    holds: frozenset | None = None
    name: str = ""  # for progress and errors: a peer's node id, or the source's base
    sign: object = None  # for peers: sign(method, path, range) -> request headers proving mesh membership


@dataclass(frozen=True)
class HeldModel:
    """A model this unit holds some verified pieces of (describe_held_model), as it tells its peers."""

    id: str
    format: str
    engine: str
    root_hash: str
    manifest: dict  # the verified manifest, as rendered JSON
    piece_size: int
    file_sizes: dict[str, int]
    held: frozenset[tuple[str, int]]  # (path, piece index)


@dataclass(frozen=True)
class SupplierReport:
    """How one supplier did in an install so far (for progress displays and benchmarks)."""

    name: str  # a peer's node id or portal, or the source's base
    origin: bool  # the model's own source (holds every piece), not a peer
    bytes: int
    rate_bps: float
    dropped: str | None  # why it is no longer asked, if it is not


@dataclass(frozen=True)
class InstallProgress:
    """One progress report of install_model. state: "downloading", then "verifying", then "installed"."""

    model: str
    state: str
    done_bytes: int
    total_bytes: int
    rate_bps: float
    eta_s: float | None
    rejected_pieces: int
    suppliers: tuple[SupplierReport, ...] = ()


@dataclass(frozen=True)
class ManifestCheck:
    """What this unit can say about a manifest a peer offers, before taking it (check_peer_manifests).

    verdict: "pinned" (it is this unit's own pin), "published" (every file's size and SHA-256 are what the
    whitelist or the source itself publishes), "differs" (it contradicts the pin, the whitelist or the
    source: never taken), "unverifiable" (no pin, and the source cannot be reached or states too little).
    pinned_by: who vouches for it once taken ("whitelist", "admin", "first-install", "mesh").
    """

    root: str
    verdict: str
    reason: str
    pinned_by: str
