"""Install a model from a source as verified pieces: parallel range requests, resumable, atomic at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from appliance.library.build_manifest import build_manifest
from appliance.library.discover_source_files import discover_source_files
from appliance.library.fetch_pieces import fetch_pieces
from appliance.library.find_model_entry import find_model_entry
from appliance.library.forget_held_pieces import forget_held_pieces
from appliance.library.library_errors import InstallError, LibraryError, ManifestError
from appliance.library.library_types import (
    DEFAULT_PIECE_SIZE,
    InstallProgress,
    Manifest,
    ModelSource,
    PieceSpec,
    PieceSupplier,
    SupplierReport,
)
from appliance.library.list_held_pieces import list_held_pieces
from appliance.library.lock_model_install import lock_model_install
from appliance.library.parse_manifest import parse_manifest
from appliance.library.render_manifest import render_manifest
from appliance.library.resolve_model_path import resolve_model_path
from appliance.store.store_models import HeldPiece, LibraryModel, ModelFile, database, now_utc
from appliance.store.store_types import INSTALL_RESERVE_BYTES

_FLUSH_SECONDS = 0.5


def _plan(files: tuple[tuple[str, int], ...], piece_size: int, hashes: dict[str, tuple[str, ...]]) -> list[PieceSpec]:
    pieces = []
    for path, size in files:
        expected = hashes.get(path)
        for index, offset in enumerate(range(0, size, piece_size)):
            pieces.append(
                PieceSpec(
                    path, index, offset, min(piece_size, size - offset), size, expected[index] if expected else None
                )
            )
    return pieces


def _describe(row: LibraryModel, node_id: str) -> dict:
    held = len(list_held_pieces(row.id, node_id))
    return {
        "id": row.id,
        "state": row.state,
        "root_hash": row.root_hash,
        "pinned_by": row.pinned_by,
        "total_bytes": row.total_bytes,
        "held_pieces": held,
        "source_revision": row.source_revision,
    }


def _known_manifest(
    entry, row: LibraryModel | None, given: Manifest | None, vouched_by: str
) -> tuple[Manifest | None, str | None]:
    """The manifest to verify against, and who vouched for its root hash."""
    stored = parse_manifest(json.loads(row.manifest)) if row is not None and row.manifest and row.root_hash else None
    pin = (stored.root, row.pinned_by) if stored is not None and row is not None and row.pinned_by else None
    # This unit's own pin is above anything a peer says; only its admin may pin other content.
    if given is not None and pin is not None and given.root != pin[0] and vouched_by != "admin":
        raise ManifestError(
            code="peer_manifest_differs",
            message=f"this unit pins {entry.id} to root {pin[0]} ({pin[1]}); "
            f"the manifest from the {vouched_by} has root {given.root}, so it is not taken",
        )
    manifest = given or stored
    if manifest is None:
        manifest = entry.manifest
    if manifest is not None and entry.root_hash and manifest.root != entry.root_hash:
        raise ManifestError(
            code="root_mismatch",
            message=f"the manifest's root hash {manifest.root} is not the one "
            f"pinned for {entry.id} ({entry.root_hash})",
        )
    if row is not None and row.pinned_by and row.root_hash == (manifest.root if manifest else None):
        return manifest, row.pinned_by
    if entry.root_hash:
        return manifest, "whitelist"
    if given is not None and entry.source_files:
        # Content the whitelist publishes file by file (size, SHA-256) is the whitelist's, whoever brought it.
        _check_source_files(entry, tuple((f.path, f.size) for f in given.files), given)
        return manifest, "whitelist"
    return manifest, vouched_by


def _reset_stale_pieces(row: LibraryModel, node_id: str, files, piece_size: int, hashes: dict) -> None:
    # A resumed install keeps a held piece only if the plan still describes the same bytes.
    sizes = dict(files)
    stored = {f.path: f.size for f in ModelFile.select().where(ModelFile.model == row.id)}
    stale = {p for p, s in stored.items() if sizes.get(p) != s}
    with database.atomic():
        if row.piece_size and row.piece_size != piece_size:
            forget_held_pieces(row.id, node_id)
        else:
            forget_held_pieces(
                row.id,
                node_id,
                [
                    (path, index)
                    for (path, index), sha256 in list_held_pieces(row.id, node_id).items()
                    if path in stale
                    or path not in sizes
                    or (hashes.get(path) and (index >= len(hashes[path]) or hashes[path][index] != sha256))
                ],
            )
        ModelFile.delete().where(ModelFile.model == row.id).execute()
        for path, size in files:
            ModelFile.create(model=row.id, path=path, size=size, sha256=None)
        row.piece_size = piece_size
        row.total_bytes = sum(size for _, size in files)
        row.state = "partial"
        row.updated_at = now_utc()
        row.save()


def _open_files(model_dir: Path, files, needed_bytes: int) -> dict[str, int]:
    free = shutil.disk_usage(model_dir).free
    if needed_bytes + INSTALL_RESERVE_BYTES > free:
        raise InstallError(
            code="disk_full",
            message=f"the model needs {needed_bytes / 1e6:.0f} MB more; {free / 1e6:.0f} MB are free on {model_dir}, "
            f"of which the unit keeps {INSTALL_RESERVE_BYTES / 1e6:.0f} MB for its chats",
        )
    fds = {}
    try:
        for path, size in files:
            target = resolve_model_path(model_dir, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            resolve_model_path(model_dir, path)  # again: mkdir must not have followed a planted symlink
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            fds[path] = fd
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, min(os.fstat(fd).st_size, size))
                if size:
                    os.posix_fallocate(fd, 0, size)  # reserve the space now: a full disk fails here, early
                os.ftruncate(fd, size)
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        if exc.errno == errno.ENOSPC:
            raise InstallError(code="disk_full", message=f"no space left on {model_dir} for the model's files") from exc
        raise InstallError(code="install_failed", message=f"cannot prepare the model's files: {exc}") from exc
    return fds


@dataclass(eq=False)
class _Writer:
    """Pieces written to disk but not yet recorded as held (the fetch threads add, the tick records)."""

    fds: dict[str, int]
    model_id: str
    node_id: str
    written: list[tuple[PieceSpec, str]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _keep(writer: _Writer, piece: PieceSpec, data: bytes) -> None:
    os.pwrite(writer.fds[piece.path], data, piece.offset)
    digest = piece.sha256 or hashlib.sha256(data).hexdigest()
    with writer.lock:
        writer.written.append((piece, digest))
        writer.touched.add(writer.fds[piece.path])


def _record(writer: _Writer) -> int:
    """Record the pieces written since last time as held; the bytes they hold."""
    # Data first, then the record: a piece is "held" only once its bytes are on disk.
    with writer.lock:
        batch, fds = writer.written[:], set(writer.touched)
        writer.written.clear()
        writer.touched.clear()
    for fd in fds:
        os.fdatasync(fd)
    if batch:
        with database.atomic():
            for piece, digest in batch:
                HeldPiece.insert(
                    node_id=writer.node_id, model=writer.model_id, path=piece.path, piece=piece.index, sha256=digest
                ).on_conflict_replace().execute()
    return sum(piece.length for piece, _ in batch)


@dataclass(eq=False)
class _Meter:
    """Progress of one install: bytes held, and how fast they came since it (re)started."""

    model_id: str
    total: int
    done: int
    started_done: int
    started_at: float = field(default_factory=time.monotonic)


def _report_download(
    meter: _Meter,
    progress: Callable[[InstallProgress], None] | None,
    flushed: int,
    rejected: int,
    suppliers: list[SupplierReport],
) -> None:
    meter.done += flushed
    if progress is None:
        return
    rate = (meter.done - meter.started_done) / max(1e-6, time.monotonic() - meter.started_at)
    progress(
        InstallProgress(
            meter.model_id,
            "downloading",
            meter.done,
            meter.total,
            rate,
            (meter.total - meter.done) / rate if rate > 0 else None,
            rejected,
            tuple(suppliers),
        )
    )


def _download(
    pieces: list[PieceSpec],
    suppliers: list[PieceSupplier],
    writer: _Writer,
    client,
    *,
    workers: int,
    cancel: threading.Event,
    report: Callable[[int, int, list[SupplierReport]], None],
) -> None:
    try:
        fetch_pieces(
            pieces,
            suppliers,
            client=client,
            workers=workers,
            cancel=cancel,
            on_piece=lambda piece, data: _keep(writer, piece, data),
            on_tick=lambda stats, rejected: report(_record(writer), rejected, stats),
            tick_seconds=_FLUSH_SECONDS,
        )
    except LibraryError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InstallError(code="disk_full", message="the disk filled up while writing the model") from exc
        raise InstallError(code="install_failed", message=f"cannot write the model: {exc}") from exc


def _report_final(progress: Callable[[InstallProgress], None] | None, model_id: str, total: int, state: str) -> None:
    if progress is not None:
        progress(InstallProgress(model_id, state, total, total, 0.0, 0.0, 0))


def _check_source_files(entry, files, manifest: Manifest | None = None) -> None:
    """The whitelist says what the source publishes (size, SHA-256): files or content that differ are refused."""
    if not entry.source_files:
        return
    expected = {f.path: f for f in entry.source_files}
    sizes = dict(files)
    if set(sizes) != set(expected) or any(sizes[p] != f.size for p, f in expected.items()):
        raise ManifestError(
            code="source_mismatch",
            message=f"the source offers files for {entry.id} that differ from "
            f"the published ones ({_describe_files(sizes)} instead of "
            f"{_describe_files({p: f.size for p, f in expected.items()})})",
        )
    wrong = [f.path for f in manifest.files if f.sha256 != expected[f.path].sha256] if manifest else []
    if wrong:
        raise ManifestError(
            code="source_mismatch",
            message=f"the source served {', '.join(wrong)} with content that is "
            f"not the published one (SHA-256 differs); nothing was kept",
        )


def _describe_files(sizes: dict[str, int]) -> str:
    return ", ".join(f"{path} ({size} bytes)" for path, size in sorted(sizes.items())) or "no files"


def _finish(
    row: LibraryModel,
    model_dir: Path,
    files,
    manifest: Manifest | None,
    pinned_by: str | None,
    entry,
    node_id: str,
    revision: str | None,
) -> None:
    if manifest is None:
        # First install of an unpinned model: the manifest is made from what was written, and pinned now.
        manifest = build_manifest(model_dir, piece_size=row.piece_size)
        held = list_held_pieces(row.id, node_id)
        written = {(f.path, i): sha for f in manifest.files for i, sha in enumerate(f.pieces)}
        if written != held or {f.path for f in manifest.files} != {p for p, _ in files}:
            forget_held_pieces(row.id, node_id)
            raise InstallError(code="install_failed", message="the files on disk changed while installing; start again")
        if entry.root_hash and manifest.root != entry.root_hash:
            forget_held_pieces(row.id, node_id)
            raise ManifestError(
                code="root_mismatch",
                message=f"the source served content whose root hash {manifest.root} is "
                f"not the one pinned for {entry.id} ({entry.root_hash})",
            )
        try:
            _check_source_files(entry, files, manifest)
        except ManifestError:
            forget_held_pieces(row.id, node_id)
            raise
        # Content the whitelist vouches for (by root hash, or by every file's published SHA-256).
        pinned_by = "whitelist" if entry.root_hash or entry.source_files else "first-install"
    hashes = {f.path: f.sha256 for f in manifest.files}
    with database.atomic():
        for model_file in ModelFile.select().where(ModelFile.model == row.id):
            model_file.sha256 = hashes[model_file.path]
            model_file.save()
        row.state = "installed"
        row.manifest = json.dumps(render_manifest(manifest), sort_keys=True)
        row.root_hash = manifest.root
        row.pinned_by = pinned_by
        row.source_revision = revision or row.source_revision
        row.installed_at = row.updated_at = now_utc()
        row.save()


def install_model(
    model_id: str,
    *,
    data_dir: str | Path,
    node_id: str,
    source: ModelSource | None = None,
    manifest: Manifest | None = None,
    workers: int = 4,
    piece_size: int = DEFAULT_PIECE_SIZE,
    progress: Callable[[InstallProgress], None] | None = None,
    cancel: threading.Event | None = None,
    client: httpx.Client | None = None,
    peers: tuple[PieceSupplier, ...] = (),
    vouched_by: str = "admin",
) -> dict:
    """Install `model_id` (whitelisted or admin-added) into `<data_dir>/models/<id>`; return its state.

    Pieces are checked against the manifest before they are written; an unpinned model's first install
    pins the root hash of what it wrote. Killed midway, a later call resumes with the pieces already held.
    With a manifest, `peers` serve the pieces they hold (several at once); the source fills in the rest.
    `vouched_by` names who gave `manifest` ("admin", "mesh") when no pin covers it.
    """
    entry = find_model_entry(model_id)
    source = source or entry.source
    cancel = cancel or threading.Event()
    models_dir = Path(data_dir) / "models"
    with lock_model_install(models_dir, model_id), contextlib.ExitStack() as stack:
        if client is None and (source.kind != "dir" or peers):
            client = stack.enter_context(httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0)))
        row = LibraryModel.get_or_none(LibraryModel.id == model_id)
        if row is not None and row.state == "installed":
            return _describe(row, node_id)
        known, pinned_by = _known_manifest(entry, row, manifest, vouched_by)
        if known is not None:
            files, revision = tuple((f.path, f.size) for f in known.files), None
            piece_size, hashes = known.piece_size, {f.path: f.pieces for f in known.files}
        else:
            files, revision, _ = discover_source_files(entry.format, entry.files, source, client)
            _check_source_files(entry, files)
            hashes = {}
        if row is None:
            row = LibraryModel.create(id=model_id, format=entry.format, engine=entry.engine, state="partial")
        row.source = json.dumps(dataclasses.asdict(source))
        _reset_stale_pieces(row, node_id, files, piece_size, hashes)
        model_dir = models_dir / model_id
        model_dir.mkdir(parents=True, exist_ok=True)
        if model_dir.is_symlink():
            raise InstallError(code="install_failed", message=f"{model_dir} is a symlink; refusing to write through it")
        held = list_held_pieces(row.id, node_id)
        todo = [p for p in _plan(files, piece_size, hashes) if (p.path, p.index) not in held]
        done = row.total_bytes - sum(p.length for p in todo)
        meter = _Meter(model_id, row.total_bytes, done, done)
        writer = _Writer(_open_files(model_dir, files, sum(p.length for p in todo)), model_id, node_id)
        try:
            _report_download(meter, progress, 0, 0, [])
            # Peers can only serve verified pieces: without a manifest, everything comes from the source.
            suppliers = [*(peers if known is not None else ()), PieceSupplier(source=source, name=source.base)]
            _download(
                todo,
                suppliers,
                writer,
                client,
                workers=max(workers, 2 * (len(suppliers) - 1)),
                cancel=cancel,
                report=lambda flushed, rejected, stats: _report_download(meter, progress, flushed, rejected, stats),
            )
        finally:
            for fd in writer.fds.values():
                os.close(fd)
        _report_final(progress, model_id, meter.total, "verifying")
        _finish(row, model_dir, files, known, pinned_by, entry, node_id, revision)
        _report_final(progress, model_id, meter.total, "installed")
        return _describe(LibraryModel.get_by_id(model_id), node_id)
