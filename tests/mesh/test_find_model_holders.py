from appliance.mesh.agent.find_model_holders import find_model_holders


def _peer(state, models, address="10.213.0.11", portal=8080):
    return {"state": state, "presence": {"address": address, "portal": portal, "models": models}}


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
    peers = {"x": {"state": "online"}, "y": _peer("online", "garbage"), "z": _peer("online", [None, 5]),
             "w": _peer("online", [{"id": "M", "state": "installed"}], address="")}
    assert find_model_holders(peers, "M") == []
