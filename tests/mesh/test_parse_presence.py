"""A peer's presence is read once, at the edge: every field checked and bounded, nothing trusted."""

import pytest

from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.presence_types import Presence, PresenceModel, UnitLoad
from appliance.mesh.pieces.encode_piece_set import encode_piece_set

B = "b" * 16


def test_a_well_formed_presence_is_read_whole():
    pieces = encode_piece_set([0, 1, 5], 10)
    presence = parse_presence(
        {
            "v": 1,
            "node": B,
            "state": "online",
            "name": "iplm-bbbb",
            "engine": "llama.cpp",
            "device": "rk3588",
            "memory_free": 3_000_000_000,
            "load": {"workers": 2, "workers_ready": 2, "busy": 1, "queued": 4},
            "models": [
                {"id": "M", "state": "installed", "engine": "mlc", "format": "mlc", "root": "ab", "size": 9},
                {"id": "P", "state": "partial", "pieces": pieces},
            ],
            "address": "10.0.0.2",
            "broker": 1883,
            "portal": 8080,
            "will_id": "w1",
        },
        B,
    )
    assert presence == Presence(
        node=B,
        state="online",
        name="iplm-bbbb",
        engine="llama.cpp",
        device="rk3588",
        memory_free=3_000_000_000,
        load=UnitLoad(2, 2, 1, 4, slots_ready=2),  # a load that names no sequences: one chat per worker
        models=(PresenceModel("M", "installed", "mlc", "mlc", "ab", 9), PresenceModel("P", "partial", pieces=pieces)),
        address="10.0.0.2",
        broker=1883,
        portal=8080,
        will_id="w1",
    )


def test_hostile_fields_are_dropped_one_by_one():
    presence = parse_presence(
        {
            "node": B,
            "state": "hacked",
            "name": "x" * 10_000,
            "memory_free": "lots",
            "load": True,
            "models": [
                "junk",
                {"state": "installed"},
                {"id": "", "state": "installed"},
                {"id": "A", "state": "available"},
                {"id": "Q", "state": "partial", "pieces": {"n": 3, "ranges": [[0, 9]]}},
                {"id": "R", "state": "installed", "size": -5, "root": 7},
            ],
            "broker": 70_000,
            "portal": True,
            "address": ["10.0.0.2"],
            "pieces_omitted": "yes",
        },
        B,
    )
    assert presence.state == "online" and len(presence.name) == 200 and presence.memory_free is None
    assert presence.load == UnitLoad() and presence.address == "" and presence.broker is None
    assert presence.portal is None and presence.pieces_omitted is False
    assert presence.models == (PresenceModel("Q", "partial"), PresenceModel("R", "installed"))


def test_a_flood_of_models_is_cut():
    presence = parse_presence({"node": B, "models": [{"id": str(i), "state": "installed"} for i in range(10_000)]}, B)
    assert len(presence.models) == 256


@pytest.mark.parametrize("payload", [[1, 2], "presence", None, {"node": "c" * 16}])
def test_no_presence_at_all_or_one_for_another_unit_is_refused(payload):
    with pytest.raises(ValueError):
        parse_presence(payload, B)


def test_a_will_is_a_presence_that_says_gone():
    presence = parse_presence({"v": 1, "node": B, "state": "gone", "will_id": "w9"}, B)
    assert (presence.state, presence.will_id, presence.models) == ("gone", "w9", ())


def _load(**load):
    return parse_presence({"node": B, "load": {"workers": 1, "workers_ready": 1, **load}}, B).load


def test_a_units_speed_and_wait_are_read_for_a_scheduler():
    load = _load(
        busy=1,
        model="smollm2-135m",
        start_in_s=10.0,
        prefill_tokens_per_s=181.3,
        decode_tokens_per_s=70.8,
        speed_age_s=12.5,
    )
    assert (load.model, load.start_in_s, load.speed_age_s) == ("smollm2-135m", 10.0, 12.5)
    assert (load.prefill_tokens_per_s, load.decode_tokens_per_s) == (181.3, 70.8)


@pytest.mark.parametrize(
    "figures",
    [
        {"prefill_tokens_per_s": -5, "decode_tokens_per_s": 0},  # negative, or zero: no speed to divide by
        {"prefill_tokens_per_s": 1e12, "decode_tokens_per_s": True},  # not a measurement
        {"prefill_tokens_per_s": "fast", "decode_tokens_per_s": [70]},
        {"prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 10.0, "speed_age_s": 7200},  # aged out
        {"prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 10.0, "speed_age_s": None},  # fresh? cannot tell
    ],
)
def test_a_speed_that_is_no_measurement_or_aged_out_is_unknown(figures):
    load = _load(**{"speed_age_s": 1.0, **figures})
    assert (load.prefill_tokens_per_s, load.decode_tokens_per_s, load.speed_age_s) == (None, None, None)


@pytest.mark.parametrize("wait", [-1, float("inf"), 10**9, "soon", None])
def test_a_wait_that_is_no_estimate_is_unknown(wait):
    assert _load(start_in_s=wait).start_in_s is None and _load(model=7).model is None


def test_a_load_gives_the_chats_its_workers_decode_together_bounded():
    def slots(value):
        return parse_presence({"node": "n2", "load": {"workers_ready": 1, "slots_ready": value}}, "n2").load.slots_ready

    assert slots(4) == 4
    assert slots(10**9) == 256  # more would only pull every piece of a split prompt to that peer
    assert slots(-3) == 1 and slots(True) == 1 and slots("many") == 1  # not a count: one per worker
