import json

import pytest

from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_errors import MeshMessageError
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.advance_mesh_counter import advance_mesh_counter
from appliance.mesh.messages.open_mesh_message import open_mesh_message
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message

SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
OTHER_MESH = derive_mesh_secrets(MeshKey(secret=bytes(range(1, 33))))
NOW = 1_800_000_000.0
TOPIC = f"iplm/{SECRETS.mesh_id}/presence/unit-a"
PAYLOAD = {"state": "online", "load": 0.25, "models": ["smollm2-135m"], "name": "Küche ☕"}


def seal(payload=PAYLOAD, *, counter=1000, now=NOW, topic=TOPIC, sender="unit-a", secrets=SECRETS, will=False):
    return seal_mesh_message(secrets, sender, topic, payload, now=now, counter=counter, will=will)


def _open(topic, raw, state):
    message, new_state = open_mesh_message(SECRETS, topic, raw, state)
    return message.sender, message.payload, new_state


def refuse(raw, code, *, topic=TOPIC, state=None):
    with pytest.raises(MeshMessageError) as info:
        _open(topic, raw, state or {})
    assert info.value.code == code, info.value.message
    return info.value


def test_a_sealed_message_opens_and_advances_the_replay_state():
    state = {"unit-b": 5}
    sender, payload, new_state = _open(TOPIC, seal(), state)
    assert (sender, payload) == ("unit-a", PAYLOAD)
    assert new_state == {"unit-b": 5, "unit-a": 1000} and state == {"unit-b": 5}  # the input is left alone
    _, _, newer = _open(TOPIC, seal(counter=1001), new_state)
    assert newer["unit-a"] == 1001


def test_the_envelope_is_plain_json_with_the_documented_fields():
    envelope = json.loads(seal())
    assert set(envelope) == {"version", "sender", "counter", "sent_at", "topic", "will", "payload", "mac"}
    assert envelope["sent_at"] == int(NOW * 1000) and envelope["version"] == 1 and len(envelope["mac"]) == 64


def test_the_payload_is_macd_as_the_receiver_will_see_it():
    raw = seal({"pair": (1, 2), 3: "three", "nested": {"b": 1, "a": [0.1, -0.0, 1e300]}})
    _, payload, _ = _open(TOPIC, raw, {})
    assert payload == {"pair": [1, 2], "3": "three", "nested": {"b": 1, "a": [0.1, -0.0, 1e300]}}


@pytest.mark.parametrize("old, new", [("online", "offline"), ("0.25", "0.26"), ("unit-a", "unit-x")])
def test_a_forged_field_fails_the_mac(old, new):
    raw = seal().replace(old.encode(), new.encode(), 1)
    assert raw != seal()
    refuse(raw, "bad_mac")


def test_every_flipped_byte_is_refused():
    raw = seal()
    for position in range(len(raw)):
        flipped = raw[:position] + bytes([raw[position] ^ 0x01]) + raw[position + 1 :]
        with pytest.raises(MeshMessageError):
            _open(TOPIC, flipped, {})


def test_a_flipped_mac_is_refused():
    envelope = json.loads(seal())
    envelope["mac"] = ("0" if envelope["mac"][0] != "0" else "1") + envelope["mac"][1:]
    refuse(json.dumps(envelope).encode(), "bad_mac")


def test_a_message_of_another_mesh_is_refused():
    refuse(seal(secrets=OTHER_MESH), "bad_mac")


def test_a_replayed_message_is_refused_but_says_replay():
    raw = seal()
    _, _, state = _open(TOPIC, raw, {})
    # What a receiver sees when the broker re-delivers a retained message it already has.
    refuse(raw, "replay", state=state)
    refuse(seal(counter=999), "replay", state=state)
    assert _open(TOPIC, seal(counter=1001), state)[2]["unit-a"] == 1001


def test_no_wall_clock_decides_a_messages_fate():
    # A unit whose clock is an hour, or years, off is still heard: freshness is the counter's job.
    for sent in (NOW - 3600, NOW + 3600, 0.0, NOW + 10 * 365 * 86400):
        assert _open(TOPIC, seal(now=sent), {})[0] == "unit-a"
    _, _, state = _open(TOPIC, seal(counter=2000, now=NOW + 3600), {})
    refuse(seal(counter=1999, now=NOW + 7200), "replay", state=state)  # a later date does not beat the counter


def test_a_message_moved_to_another_topic_is_refused():
    refuse(seal(), "topic_mismatch", topic=f"iplm/{SECRETS.mesh_id}/presence/unit-b")


def test_oversize_messages_are_refused_on_both_ends():
    with pytest.raises(MeshMessageError) as info:
        seal({"blob": "x" * (256 * 1024)})
    assert info.value.code == "oversize"
    refuse(b"{" + b" " * (256 * 1024) + b"}", "oversize")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b"{}",
        b"[" * 100_000,
        json.dumps({"version": 1}).encode(),
    ],
)
def test_garbage_is_malformed(raw):
    refuse(raw, "malformed")


@pytest.mark.parametrize(
    "field, value",
    [
        ("counter", True),
        ("counter", "1000"),
        ("counter", -1),
        ("counter", 2**64),
        ("sent_at", 1.5),
        ("payload", []),
        ("will", 0),
        ("mac", "ab"),
        ("mac", "é" * 64),
        ("mac", "A" * 64),
        ("sender", ""),
        ("version", 2),
        ("version", True),
        ("version", 1.0),
        ("topic", None),
    ],
)
def test_wrongly_typed_fields_are_malformed(field, value):
    envelope = json.loads(seal())
    envelope[field] = value
    refuse(json.dumps(envelope).encode(), "malformed")


def test_extra_or_missing_keys_are_malformed():
    envelope = json.loads(seal())
    refuse(json.dumps({**envelope, "extra": 1}).encode(), "malformed")
    del envelope["will"]
    refuse(json.dumps(envelope).encode(), "malformed")


def test_nan_smuggled_into_a_payload_is_malformed():
    envelope = json.loads(seal())
    envelope["payload"] = {"load": float("nan")}
    refuse(json.dumps(envelope).encode(), "malformed")


def test_a_will_sealed_long_ago_still_opens_and_leaves_the_state_alone():
    will = seal({"state": "offline"}, counter=500, now=NOW - 3600, will=True)
    state = {"unit-a": 2000}
    sender, payload, new_state = _open(TOPIC, will, state)
    assert (sender, payload, new_state) == ("unit-a", {"state": "offline"}, state)
    moved = seal(counter=500, now=NOW - 3600, will=True, topic=f"iplm/{SECRETS.mesh_id}/presence/unit-b")
    refuse(moved, "topic_mismatch")
    envelope = json.loads(seal(counter=500, now=NOW - 3600))
    envelope["will"] = True  # turning an old message into a "will" to dodge the counter check
    refuse(json.dumps(envelope).encode(), "bad_mac")


def test_str_input_is_accepted_like_bytes():
    assert _open(TOPIC, seal().decode(), {})[0] == "unit-a"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sender": ""},
        {"sender": "a\nb"},
        {"sender": "x" * 129},
        {"topic": "iplm/+/x"},
        {"topic": ""},
        {"counter": -1},
        {"counter": True},
        {"payload": ["not", "a", "dict"]},
        {"payload": {"x": float("inf")}},
        {"payload": {"x": object()}},
    ],
)
def test_seal_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        seal(**kwargs)


def test_counters_grow_with_time_and_survive_a_clock_going_back():
    first = advance_mesh_counter(None, now=NOW)
    assert first == int(NOW * 1000)
    assert advance_mesh_counter(first, now=NOW) == first + 1  # two messages in one millisecond
    assert advance_mesh_counter(first, now=NOW - 3600) == first + 1  # the clock stepped back
    assert advance_mesh_counter(first, now=NOW + 1) == first + 1000
    # A restarted sender without its saved counter still starts above what receivers accepted.
    _, _, state = _open(TOPIC, seal(counter=first), {})
    restarted = advance_mesh_counter(None, now=NOW + 5)
    assert _open(TOPIC, seal(counter=restarted, now=NOW + 5), state)[0]
