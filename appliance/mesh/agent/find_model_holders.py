"""Which units of the mesh can give pieces of a model."""
from __future__ import annotations


def find_model_holders(peers: dict, model_id: str) -> list[str]:
    """Portal URLs of the online peers whose presence lists `model_id` installed or partial.

    `peers` is the mesh agent's peer table (node id → {"state", "presence", ...}). Fully installed
    holders come first: they can serve every piece.
    """
    holders = []
    for peer in peers.values():
        presence = peer.get("presence") or {}
        if peer.get("state") != "online" or not presence.get("address") or not presence.get("portal"):
            continue
        for model in presence.get("models") or ():
            if isinstance(model, dict) and model.get("id") == model_id and model.get("state") in ("installed",
                                                                                                  "partial"):
                holders.append((model["state"] != "installed", f"http://{presence['address']}:{presence['portal']}"))
    return [url for _, url in sorted(holders)]
