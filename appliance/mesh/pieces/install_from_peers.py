"""Install a model from the units of the mesh that hold it: several at once, every piece verified."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import time
from pathlib import Path

import httpx

from appliance.library.check_peer_manifests import check_peer_manifests
from appliance.library.find_model_entry import find_model_entry
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, PieceSupplier
from appliance.library.parse_manifest import parse_manifest
from appliance.mesh.identity.identity_types import MeshAuthority
from appliance.mesh.identity.load_unit_identity import load_unit_identity
from appliance.mesh.mesh_errors import MeshError
from appliance.mesh.mesh_types import MeshSecrets
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.mesh.pieces.choose_peer_manifest import choose_peer_manifest
from appliance.mesh.pieces.peer_offer_types import PeerOffer
from appliance.mesh.pieces.verify_peer_answer import verify_peer_answer

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


def _ask_offer(
    client: httpx.Client, peer_url: str, model_id: str, sign, authority: MeshAuthority, mesh_id: str
) -> PeerOffer | None:
    path = f"/mesh/models/{model_id}/manifest"
    headers = sign("GET", path, "")
    try:
        with client.stream("GET", peer_url.rstrip("/") + path, headers=headers) as response:
            if response.status_code != 200:
                _log.info("peer %s has no %s for us (%s)", peer_url, model_id, response.status_code)
                return None
            raw = _read_capped(response, _MAX_OFFER_BYTES)
        node = verify_peer_answer(
            response.headers,
            raw,
            authority=authority,
            mesh_id=mesh_id,
            model_id=model_id,
            request_signature=headers[PEER_AUTH_HEADER],
        )
        body = json.loads(raw)
        if body.get("node") != node or body.get("model") != model_id:
            claimed = f"{body.get('node')!r}'s offer of {body.get('model')!r}"
            raise MeshError("bad_identity", f"signed by {node}, it claims to be {claimed}")
        manifest = parse_manifest(body["manifest"])
        holds = frozenset((str(p), int(i)) for p, i in body["held"])
    except MeshError as exc:
        _log.warning("peer %s: answer about %s dropped, not signed by a unit of this mesh: %s", peer_url, model_id, exc)
        return None
    except (httpx.HTTPError, LibraryError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.info("peer %s gave no usable offer for %s: %s", peer_url, model_id, exc)
        return None
    return PeerOffer(node=node, url=peer_url, manifest=manifest, holds=holds)


def _load_authority(data_dir: str | Path, node_id: str) -> MeshAuthority:
    mesh = load_unit_identity(data_dir, node_id)
    if mesh is None:
        raise LibraryError(code="no_mesh", message="this unit is in no mesh: it cannot check its peers' answers")
    return mesh[1]


def _one_per_unit(offers: list[PeerOffer], own_node: str) -> tuple[PeerOffer, ...]:
    """One offer per verified unit, whatever number of addresses it answered from; a unit that offers two
    different roots is not counted at all, and this unit's own node id is never a peer."""
    by_node: dict[str, list[PeerOffer]] = collections.defaultdict(list)
    for offer in offers:
        by_node[offer.node].append(offer)
    kept = []
    for node, answers in by_node.items():
        if node == own_node:
            _log.warning("an answer signed as this unit itself (%s) is not a peer's: not counted", node)
            continue
        if len({a.manifest.root for a in answers}) > 1:
            _log.warning("unit %s offered different roots from %d addresses: not counted", node, len(answers))
            continue
        kept.append(answers[0])
    return tuple(kept)


def install_from_peers(
    model_id: str,
    peer_urls: list[str],
    *,
    data_dir: str | Path,
    node_id: str,
    secrets: MeshSecrets,
    authority: MeshAuthority | None = None,
    trust_mesh: bool = False,
    workers: int = 4,
    progress=None,
    cancel=None,
    client: httpx.Client | None = None,
) -> dict:
    """Install `model_id` (whitelisted or admin-added here) with pieces from the peers that hold them.

    Each answer must be signed by a unit of this mesh (`authority`) for this very request; each unit has
    one vote, however many addresses it answers from. Which manifest is taken: choose_peer_manifest (this
    unit's pin first, then the whitelist's or the source's own word, then agreement of units, or the
    admin's `trust_mesh`). Without `authority`, the mesh's CA comes from the mesh key in `data_dir`.
    Peers that serve bad pieces are dropped; what no peer holds comes from the source.
    """
    find_model_entry(model_id)  # nothing else is installable, from peers or not
    authority = authority or _load_authority(data_dir, node_id)
    sign = _signer(secrets, node_id)
    own_client = client is None
    # Peers are on the local link: a silent one (cable cut, unit frozen) is given up after seconds, not
    # minutes. The read timeout is between bytes, so it does not cap a slow but moving transfer.
    client = client or httpx.Client(timeout=httpx.Timeout(8.0, connect=3.0))
    try:
        # All peers at once: a dead one costs its connect timeout once, not once per peer in turn.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(peer_urls)))) as pool:
            answers = list(
                pool.map(
                    lambda url: _ask_offer(client, url, model_id, sign, authority, secrets.mesh_id),
                    dict.fromkeys(peer_urls),
                )
            )
        offers = _one_per_unit([a for a in answers if a is not None], node_id)
        if not offers:
            raise LibraryError(code="no_peer_has_model", message=f"no peer in the mesh offers {model_id}")
        manifests = {offer.manifest.root: offer.manifest for offer in offers}
        checks = check_peer_manifests(model_id, tuple(manifests.values()))
        for check in checks:
            if check.verdict == "differs":
                _log.warning("an offer of %s is not taken: %s", model_id, check.reason)
        chosen = choose_peer_manifest(model_id, offers, checks, trust_mesh=trust_mesh)
        peers = tuple(
            PieceSupplier(
                source=ModelSource(kind="peer", base=offer.url, repo=model_id),
                holds=offer.holds,
                name=offer.url,
                sign=sign,
            )
            for offer in offers
            if offer.manifest.root == chosen.root
        )
        return install_model(
            model_id,
            data_dir=data_dir,
            node_id=node_id,
            manifest=manifests[chosen.root],
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
