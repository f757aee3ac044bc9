"""Judge manifests that peers offer for a model against what this unit already trusts, before taking one."""

from __future__ import annotations

import contextlib
import hashlib
import logging

import httpx

from appliance.library.discover_source_files import discover_source_files
from appliance.library.find_model_entry import find_model_entry
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import Manifest, ManifestCheck, ModelSource, WhitelistEntry
from appliance.library.resolve_model_path import resolve_model_path
from appliance.library.stream_source_file import stream_source_file
from appliance.store.store_models import LibraryModel

_log = logging.getLogger("iplm.library")
# A file the source states no SHA-256 for is hashed here when it is this small (configs, tokenizers);
# a larger one is left unchecked rather than downloaded twice.
_MAX_HASHED_BYTES = 16 * 1024 * 1024
_SourceFacts = tuple[dict[str, int], dict[str, str]]  # sizes, SHA-256 by path


def _find_pin(entry: WhitelistEntry) -> tuple[str, str] | None:
    """(root hash, who pinned it) when this unit pins the model: whitelist, admin, or an earlier install."""
    row = LibraryModel.get_or_none(LibraryModel.id == entry.id)
    if row is not None and row.pinned_by and row.root_hash:
        return row.root_hash, row.pinned_by
    return (entry.root_hash, "whitelist") if entry.root_hash else None


def _compare(manifest: Manifest, sizes: dict[str, int], digests: dict[str, str], what: str) -> str | None:
    """Why `manifest` contradicts what `what` states (sizes, SHA-256 where stated); None when it does not."""
    offered = {f.path: f for f in manifest.files}
    if set(offered) != set(sizes):
        return f"its files ({', '.join(sorted(offered))}) are not those of {what} ({', '.join(sorted(sizes))})"
    wrong = [p for p, f in offered.items() if f.size != sizes[p] or (p in digests and f.sha256 != digests[p])]
    return f"{', '.join(sorted(wrong))} differ from {what} (size or SHA-256)" if wrong else None


def _hash_source_file(source: ModelSource, path: str, size: int, client: httpx.Client) -> str:
    digest = hashlib.sha256()
    if source.kind == "dir":
        with open(resolve_model_path(source.base, path), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    else:
        for chunk in stream_source_file(source, path, file_size=size, client=client):
            digest.update(chunk)
    return digest.hexdigest()


def _read_source(entry: WhitelistEntry, client: httpx.Client) -> _SourceFacts | None:
    """The source's files: sizes, and SHA-256 where it states them or the file is small enough to hash
    here; None when the source cannot be reached or read (the offline mesh's normal case)."""
    try:
        files, _, digests = discover_source_files(entry.format, entry.files, entry.source, client)
        sizes = dict(files)
        for path, size in sizes.items():
            if path not in digests and size <= _MAX_HASHED_BYTES:
                digests[path] = _hash_source_file(entry.source, path, size, client)
    except (LibraryError, OSError) as exc:
        _log.info("cannot check peers' manifests of %s against its source: %s", entry.id, exc)
        return None
    return sizes, digests


def _judge(
    manifest: Manifest, pin: tuple[str, str] | None, entry: WhitelistEntry, source: _SourceFacts | None
) -> ManifestCheck:
    if pin is not None:
        root, pinned_by = pin
        if manifest.root == root:
            return ManifestCheck(manifest.root, "pinned", "", pinned_by)
        reason = f"this unit pins {entry.id} to root {root} ({pinned_by}); the offer's root is {manifest.root}"
        return ManifestCheck(manifest.root, "differs", reason, pinned_by)
    if entry.source_files:
        published = {f.path: f.size for f in entry.source_files}, {f.path: f.sha256 for f in entry.source_files}
        why = _compare(manifest, *published, "the whitelist's published files")
        return ManifestCheck(manifest.root, "differs" if why else "published", why or "", "whitelist")
    if source is None:
        return ManifestCheck(manifest.root, "unverifiable", f"the source of {entry.id} cannot be reached", "mesh")
    sizes, digests = source
    why = _compare(manifest, sizes, digests, "the source's files")
    if why:
        return ManifestCheck(manifest.root, "differs", why, "mesh")
    if set(digests) != set(sizes):
        unchecked = ", ".join(sorted(set(sizes) - set(digests)))
        return ManifestCheck(manifest.root, "unverifiable", f"the source states no SHA-256 for {unchecked}", "mesh")
    return ManifestCheck(manifest.root, "published", "", "mesh")


def check_peer_manifests(
    model_id: str, manifests: tuple[Manifest, ...], *, client: httpx.Client | None = None
) -> tuple[ManifestCheck, ...]:
    """One ManifestCheck per manifest, in order. This unit's own pin (whitelist, admin, an earlier install)
    decides alone; without one, the whitelist's published files do; without those, the source's own
    metadata (sizes, Hugging Face's LFS SHA-256, small files hashed here), read once when it can be reached."""
    entry = find_model_entry(model_id)
    pin = _find_pin(entry)
    source = None
    if pin is None and not entry.source_files and manifests:
        with contextlib.ExitStack() as stack:
            if client is None:
                # Hugging Face redirects a file to its CDN; the X-Linked-Etag is on the redirect.
                timeout = httpx.Timeout(10.0, connect=3.0)
                client = stack.enter_context(httpx.Client(follow_redirects=True, timeout=timeout))
            source = _read_source(entry, client)
    return tuple(_judge(manifest, pin, entry, source) for manifest in manifests)
