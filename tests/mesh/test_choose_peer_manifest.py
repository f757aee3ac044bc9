"""Which offered manifest a unit takes: pin, then the source's word, then agreeing units or the admin."""

from __future__ import annotations

import pytest

from appliance.library.library_errors import LibraryError
from appliance.library.library_types import Manifest, ManifestCheck
from appliance.mesh.pieces.choose_peer_manifest import choose_peer_manifest
from appliance.mesh.pieces.peer_offer_types import PeerOffer

GOOD, EVIL, OTHER = "a" * 64, "e" * 64, "c" * 64


def _offers(*roots_by_node: tuple[str, str]) -> tuple[PeerOffer, ...]:
    return tuple(
        PeerOffer(node, f"http://{node}", Manifest("gguf", 1, (), root), frozenset()) for node, root in roots_by_node
    )


def _check(root: str, verdict: str, reason: str = "the source cannot be reached") -> ManifestCheck:
    return ManifestCheck(root, verdict, reason, "mesh")


def test_this_units_pin_is_taken_even_when_more_units_offer_another_root():
    offers = _offers(("n1", EVIL), ("n2", EVIL), ("n3", EVIL), ("n4", GOOD))
    checks = (_check(EVIL, "differs", "pinned elsewhere"), _check(GOOD, "pinned", ""))
    assert choose_peer_manifest("M", offers, checks, trust_mesh=False).root == GOOD


def test_no_offer_of_the_pinned_root_is_a_refusal_that_says_why():
    with pytest.raises(LibraryError) as refused:
        choose_peer_manifest(
            "M", _offers(("n1", EVIL)), (_check(EVIL, "differs", "pins M to root x"),), trust_mesh=True
        )
    assert refused.value.code == "peer_manifest_differs" and "pins M to root x" in refused.value.message


def test_content_the_source_publishes_beats_any_number_of_votes():
    offers = _offers(("n1", EVIL), ("n2", EVIL), ("n3", GOOD))
    checks = (_check(EVIL, "unverifiable"), _check(GOOD, "published", ""))
    assert choose_peer_manifest("M", offers, checks, trust_mesh=False).root == GOOD


def test_offline_a_tie_between_units_is_refused_even_with_the_admins_trust():
    offers = _offers(("n1", EVIL), ("n2", GOOD))
    checks = (_check(EVIL, "unverifiable"), _check(GOOD, "unverifiable"))
    for trust_mesh in (False, True):
        with pytest.raises(LibraryError) as refused:
            choose_peer_manifest("M", offers, checks, trust_mesh=trust_mesh)
        assert refused.value.code == "peer_manifests_disagree"


def test_offline_two_agreeing_units_suffice_and_one_needs_the_admin():
    two = _offers(("n1", GOOD), ("n2", GOOD), ("n3", OTHER))
    checks = (_check(GOOD, "unverifiable"), _check(OTHER, "unverifiable"))
    assert choose_peer_manifest("M", two, checks, trust_mesh=False).root == GOOD
    one = _offers(("n1", GOOD))
    with pytest.raises(LibraryError) as refused:
        choose_peer_manifest("M", one, checks[:1], trust_mesh=False)
    assert refused.value.code == "peer_manifest_unverified" and "trust_mesh" in refused.value.message
    assert choose_peer_manifest("M", one, checks[:1], trust_mesh=True).root == GOOD
