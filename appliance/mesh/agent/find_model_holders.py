"""Which units of the mesh can give pieces of a model."""

from __future__ import annotations

from appliance.mesh.agent.presence_types import PeerEntry


def find_model_holders(peers: dict[str, PeerEntry], model_id: str) -> list[str]:
    """Portal URLs of the online peers whose presence lists `model_id` installed or partial.

    Fully installed holders come first: they can serve every piece.
    """
    holders = []
    for peer in peers.values():
        presence = peer.presence
        if peer.state != "online" or not presence.address or not presence.portal:
            continue
        for model in presence.models:
            if model.id == model_id:
                holders.append((model.state != "installed", f"http://{presence.address}:{presence.portal}"))
    return [url for _, url in sorted(holders)]
