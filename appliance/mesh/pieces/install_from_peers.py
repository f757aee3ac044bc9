"""Install a model from the units of the mesh that hold it: several at once, every piece verified."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import time
from pathlib import Path

import httpx

from appliance.library.find_model_entry import find_model_entry
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, PieceSupplier
from appliance.library.parse_manifest import parse_manifest
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request

_log = logging.getLogger("iplm.mesh")
# A manifest of a model of hundreds of GB is a few MB: a peer that sends more is not sending a manifest.
_MAX_OFFER_BYTES = 16 * 1024 * 1024


def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"the offer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _signer(secrets: MeshSecrets, node_id: str):
    def sign(method: str, path: str, range_header: str) -> dict:
        return {
            PEER_AUTH_HEADER: sign_peer_request(
                secrets, node_id, method, path, range_header, now_ms=int(time.time() * 1000)
            )
        }

    return sign


def _ask_offer(client: httpx.Client, peer_url: str, model_id: str, sign) -> tuple | None:
    path = f"/mesh/models/{model_id}/manifest"
    try:
        with client.stream("GET", peer_url.rstrip("/") + path, headers=sign("GET", path, "")) as response:
            if response.status_code != 200:
                _log.info("peer %s has no %s for us (%s)", peer_url, model_id, response.status_code)
                return None
            raw = _read_capped(response, _MAX_OFFER_BYTES)
        body = json.loads(raw)
        manifest = parse_manifest(body["manifest"])
        holds = frozenset((str(p), int(i)) for p, i in body["held"])
    except (httpx.HTTPError, LibraryError, ValueError, KeyError, TypeError) as exc:
        _log.info("peer %s gave no usable offer for %s: %s", peer_url, model_id, exc)
        return None
    return manifest, holds


def install_from_peers(
    model_id: str,
    peer_urls: list[str],
    *,
    data_dir: str | Path,
    node_id: str,
    secrets: MeshSecrets,
    workers: int = 4,
    progress=None,
    cancel=None,
    client: httpx.Client | None = None,
) -> dict:
    """Install `model_id` (whitelisted or admin-added here) with pieces from the peers that hold them.

    The manifest is the pinned one when this unit pins the model, else the one most peers agree on. Peers
    that serve bad pieces are dropped; what no peer holds comes from the model's own source.
    """
    entry = find_model_entry(model_id)  # nothing else is installable, from peers or not
    sign = _signer(secrets, node_id)
    own_client = client is None
    # Peers are on the local link: a silent one (cable cut, unit frozen) is given up after seconds, not
    # minutes. The read timeout is between bytes, so it does not cap a slow but moving transfer.
    client = client or httpx.Client(timeout=httpx.Timeout(8.0, connect=3.0))
    try:
        # All peers at once: a dead one costs its connect timeout once, not once per peer in turn.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(peer_urls)))) as pool:
            answers = list(pool.map(lambda url: (url, _ask_offer(client, url, model_id, sign)), peer_urls))
        offers = {url: offer for url, offer in answers if offer}
        if entry.root_hash:
            offers = {url: o for url, o in offers.items() if o[0].root == entry.root_hash}
        if not offers:
            raise LibraryError(code="no_peer_has_model", message=f"no peer in the mesh offers {model_id}")
        votes = collections.Counter(manifest.root for manifest, _ in offers.values())
        root = max(votes, key=lambda r: (votes[r], sum(len(h) for m, h in offers.values() if m.root == r)))
        manifest = next(m for m, _ in offers.values() if m.root == root)
        peers = tuple(
            PieceSupplier(source=ModelSource(kind="peer", base=url, repo=model_id), holds=holds, name=url, sign=sign)
            for url, (m, holds) in offers.items()
            if m.root == root
        )
        return install_model(
            model_id,
            data_dir=data_dir,
            node_id=node_id,
            manifest=manifest,
            peers=peers,
            vouched_by="mesh",
            workers=workers,
            progress=progress,
            cancel=cancel,
            client=client,
        )
    finally:
        if own_client:
            client.close()
