"""Decide which of the manifests the units of the mesh offer this unit takes, if any (pure)."""

from __future__ import annotations

import collections

from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ManifestCheck
from appliance.mesh.pieces.peer_offer_types import PeerOffer

# Without a pin or the source's word, this many units (by verified node id) must offer the same content.
MIN_AGREEING_UNITS = 2


def _describe_votes(votes: collections.Counter, roots) -> str:
    return ", ".join(f"{root[:16]}… ({votes[root]} unit{'s' if votes[root] != 1 else ''})" for root in roots)


def choose_peer_manifest(
    model_id: str, offers: tuple[PeerOffer, ...], checks: tuple[ManifestCheck, ...], *, trust_mesh: bool
) -> ManifestCheck:
    """The check of the manifest to take; LibraryError saying why none is taken.

    `offers` holds one offer per verified unit, `checks` one check per offered root (check_peer_manifests).
    In order: this unit's own pin decides alone; else content the whitelist or the source publishes (the
    most units, then the smallest root, among several); else the root most units offer, if at least
    MIN_AGREEING_UNITS do or the admin said to trust the mesh (`trust_mesh`). A tie between roots is never
    broken by chance: it is refused, and the admin decides.
    """
    votes = collections.Counter(offer.manifest.root for offer in offers)
    for verdict in ("pinned", "published"):
        taken = sorted((c for c in checks if c.verdict == verdict), key=lambda c: (-votes[c.root], c.root))
        if taken:
            return taken[0]
    open_ = sorted((c for c in checks if c.verdict == "unverifiable"), key=lambda c: (-votes[c.root], c.root))
    if not open_:
        reasons = "; ".join(sorted({c.reason for c in checks})) or "none offered"
        raise LibraryError(
            code="peer_manifest_differs",
            message=f"no unit of the mesh offers content of {model_id} that this unit can trust: {reasons}",
        )
    best = open_[0]
    if len(open_) > 1 and votes[open_[1].root] == votes[best.root]:
        raise LibraryError(
            code="peer_manifests_disagree",
            message=f"the units of the mesh disagree on {model_id}: roots "
            f"{_describe_votes(votes, [c.root for c in open_])}, and {best.reason}; install it from its "
            "source, or have the admin add the manifest it trusts",
        )
    if votes[best.root] < MIN_AGREEING_UNITS and not trust_mesh:
        raise LibraryError(
            code="peer_manifest_unverified",
            message=f"only {votes[best.root]} unit of the mesh vouches for {model_id} (root {best.root[:16]}…) "
            f"and {best.reason}: install again when the source can be reached, or confirm that you trust "
            'the mesh for it (admin API: {"trust_mesh": true} on the install request)',
        )
    return best
