"""Where a whole chat runs: here, or on the peer that would finish it soonest (two random choices)."""

import random

from appliance.mesh.agent.presence_types import PeerEntry, Presence, UnitLoad
from appliance.mesh.work.accept_chat_job import accept_chat_job
from appliance.mesh.work.choose_chat_unit import choose_chat_unit
from appliance.mesh.work.work_types import FORWARD_OVERHEAD_S, MAX_LOAD_AGE_S, ChatCost

NOW = 1000.0
MODEL = "smollm2-135m"
COST = ChatCost(model=MODEL, prompt_tokens=100, reply_tokens=200)


def load(start=0.0, ready=1, model=MODEL, prefill=100.0, decode=20.0, busy=0, queued=0):
    return UnitLoad(
        workers=ready,
        workers_ready=ready,
        busy=busy,
        queued=queued,
        model=model,
        start_in_s=start,
        prefill_tokens_per_s=prefill,
        decode_tokens_per_s=decode,
    )


def peer(node, unit_load, state="online", seen=NOW - 1):
    return PeerEntry(state=state, presence=Presence(node=node, load=unit_load), last_seen=seen, via="x:1883", since=0)


def choose(local, peers, seed=1):
    return choose_chat_unit(local, {p.presence.node: p for p in peers}, COST, now=NOW, rng=random.Random(seed))


def test_an_idle_unit_keeps_its_chat():
    placement = choose(load(), [peer("b", load())])
    assert placement.node is None and placement.reason == "this unit finishes soonest"
    # Both were weighed: here 1 s prefill + 10 s decode; there the same plus the forwarding overhead.
    assert [(e.node, e.finish_s) for e in placement.estimates] == [(None, 11.0), ("b", 11.0 + FORWARD_OVERHEAD_S)]


def test_a_busy_unit_sends_its_chat_to_the_idle_peer():
    placement = choose(load(start=30.0, busy=1, queued=2), [peer("b", load())])
    assert placement.node == "b"
    assert placement.reason == f"finishes {30.0 - FORWARD_OVERHEAD_S:.1f} s sooner there"


def test_a_faster_peer_wins_even_when_this_unit_is_free():
    # A GPU unit decoding at 200 tokens/s beats a free CPU unit at 20.
    assert choose(load(), [peer("gpu", load(prefill=2000.0, decode=200.0))]).node == "gpu"


def test_the_margin_is_the_forwarding_overhead():
    assert choose(load(start=FORWARD_OVERHEAD_S / 2), [peer("b", load())]).node is None
    assert choose(load(start=FORWARD_OVERHEAD_S * 2), [peer("b", load())]).node == "b"


def test_peers_that_cannot_take_it_are_not_weighed():
    busy_here = load(start=60.0)
    unfit = [
        peer("other-model", load(model="qwen")),
        peer("installing", load(ready=0, model=None, start=None)),  # its workers serve nothing yet
        peer("gone", load(), state="gone"),
        peer("stale", load(), seen=NOW - MAX_LOAD_AGE_S - 1),
        peer("loading", UnitLoad(workers=1, workers_ready=0, model=MODEL)),
    ]
    placement = choose(busy_here, unfit)
    assert placement.node is None and placement.reason == "no peer serves this model now"
    assert [e.node for e in placement.estimates] == [None]


def test_a_unit_without_a_ready_worker_sends_it_to_any_peer_that_has_one():
    placement = choose(UnitLoad(workers=1, workers_ready=0, model=MODEL), [peer("b", load(start=50.0))])
    assert placement.node == "b" and placement.reason == "this unit has no ready worker"


def test_unmeasured_speeds_count_as_this_units_and_an_unmeasured_unit_compares_waits():
    unmeasured = load(start=5.0, prefill=None, decode=None)
    placement = choose(load(start=20.0), [peer("b", unmeasured)])
    assert placement.node == "b"
    b = next(e for e in placement.estimates if e.node == "b")
    assert (b.prefill_s, b.decode_s) == (1.0, 10.0)  # this unit's speeds
    nothing_measured = choose(load(start=20.0, prefill=None, decode=None), [peer("b", unmeasured)])
    assert nothing_measured.node == "b"  # 5.5 s wait against 20 s


def test_two_random_choices_spread_simultaneous_picks_over_equal_idle_peers():
    peers = [peer(f"p{i}", load()) for i in range(8)]
    picks = {choose(load(start=60.0), peers, seed=seed).node for seed in range(40)}
    assert len(picks) >= 6  # not all on the alphabetically first idle peer
    for seed in range(40):  # never more than two peers weighed besides this unit
        assert len(choose(load(start=60.0), peers, seed=seed).estimates) == 3


def test_the_least_loaded_of_the_two_drawn_wins():
    peers = [peer("busy", load(start=40.0)), peer("idle", load())]
    assert {choose(load(start=60.0), peers, seed=seed).node for seed in range(10)} == {"idle"}


def test_a_unit_serving_another_model_does_not_forward():
    placement = choose(load(model="qwen"), [peer("b", load())])
    assert placement.node is None and placement.reason == "this unit serves another model"


def test_the_peer_takes_a_chat_while_its_wait_is_about_what_was_announced():
    assert accept_chat_job(load(start=1.0), MODEL, expected_start_s=0.0) is None
    assert accept_chat_job(load(start=19.0), MODEL, expected_start_s=10.0) is None
    assert accept_chat_job(load(start=21.0), MODEL, expected_start_s=10.0) == "busier than announced (a 21.0 s wait)"
    assert accept_chat_job(load(start=3.0), MODEL, expected_start_s=0.5) == "busier than announced (a 3.0 s wait)"


def test_the_peer_declines_what_it_cannot_run():
    assert accept_chat_job(load(model="qwen"), MODEL, 0.0) == "serves another model"
    assert accept_chat_job(UnitLoad(workers=1, workers_ready=0, model=MODEL), MODEL, 0.0) == "no ready worker"
