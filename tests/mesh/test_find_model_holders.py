from appliance.mesh.agent.find_model_holders import find_model_holders
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.presence_types import PeerEntry


def _peer(state, models, address="10.213.0.11", portal=8080, presence=None):
    # What the agent's table holds: the presence as parse_presence read it from the wire.
    payload = presence if presence is not None else {"address": address, "portal": portal, "models": models}
    return PeerEntry(state=state, presence=parse_presence(payload, "n"), last_seen=0.0, via="x", since=0.0)


def test_online_holders_full_first_partial_after():
    peers = {
        "a": _peer("online", [{"id": "M", "state": "partial"}], address="10.0.0.1"),
        "b": _peer("online", [{"id": "M", "state": "installed"}], address="10.0.0.2"),
        "c": _peer("gone", [{"id": "M", "state": "installed"}], address="10.0.0.3"),
        "d": _peer("online", [{"id": "Other", "state": "installed"}], address="10.0.0.4"),
        "e": _peer("online", [{"id": "M", "state": "available"}], address="10.0.0.5"),
    }
    assert find_model_holders(peers, "M") == ["http://10.0.0.2:8080", "http://10.0.0.1:8080"]


def test_peers_with_missing_or_odd_presence_are_skipped():
    peers = {
        "x": _peer("online", None, presence={}),
        "y": _peer("online", "garbage"),
        "z": _peer("online", [None, 5]),
        "w": _peer("online", [{"id": "M", "state": "installed"}], address=""),
    }
    assert find_model_holders(peers, "M") == []
