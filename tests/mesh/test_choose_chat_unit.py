"""Where a whole chat runs: here, or on the peer that would finish it soonest (two random choices)."""

import random

import pytest

from appliance.mesh.agent.presence_types import PeerEntry, Presence, UnitLoad
from appliance.mesh.work.accept_chat_job import accept_chat_job
from appliance.mesh.work.choose_chat_unit import choose_chat_unit
from appliance.mesh.work.estimate_unit_start import estimate_unit_start
from appliance.mesh.work.work_types import FORWARD_OVERHEAD_S, MAX_LOAD_AGE_S, SHARED_DECODE_COST, ChatCost

NOW = 1000.0
MODEL = "smollm2-135m"
# 100 prompt tokens at 100/s and 200 reply tokens at 20/s: a chat holds a worker 11 s.
COST = ChatCost(model=MODEL, prompt_tokens=100, reply_tokens=200)
CHAT_S = 11.0


def load(busy=0, queued=0, ready=1, model=MODEL, prefill=100.0, decode=20.0, start=None, slots=0):
    return UnitLoad(
        slots_ready=slots,
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


def choose(local, peers, seed=1, sent=None):
    peers = {p.presence.node: p for p in peers}
    return choose_chat_unit(local, peers, COST, now=NOW, rng=random.Random(seed), sent=sent)


def test_the_wait_counts_busy_workers_as_half_a_chat_and_queued_ones_whole():
    assert estimate_unit_start(load(), CHAT_S) == 0.0
    assert estimate_unit_start(load(busy=1), CHAT_S) == CHAT_S / 2
    assert estimate_unit_start(load(busy=1, queued=2), CHAT_S) == CHAT_S * 2.5
    assert estimate_unit_start(load(busy=1), CHAT_S, extra=1) == CHAT_S * 1.5  # one sent since its presence
    assert estimate_unit_start(load(busy=2, ready=4), CHAT_S) == 0.0
    assert estimate_unit_start(load(busy=4, queued=2, ready=4), CHAT_S) == CHAT_S * 1.0
    assert estimate_unit_start(load(busy=1, start=7.0), None) == 7.0  # no chat time: the unit's own figure
    assert estimate_unit_start(load(ready=0), CHAT_S) is None


def test_a_worker_that_decodes_several_chats_has_room_until_each_sequence_is_taken():
    assert estimate_unit_start(load(busy=3, slots=4), CHAT_S) == 0.0
    assert estimate_unit_start(load(busy=4, slots=4), CHAT_S) == CHAT_S / 2
    assert estimate_unit_start(load(busy=4, queued=4, slots=4), CHAT_S) == CHAT_S * 1.5


def test_a_free_sequence_beside_a_running_chat_loses_to_an_idle_peer():
    # Here a sequence is free, but it would decode beside another chat: 10 s of decoding takes 15 s.
    placement = choose(load(busy=1, slots=4), [peer("b", load(slots=4))])
    assert placement.node == "b"
    assert [(e.node, e.finish_s) for e in placement.estimates] == [
        ("b", CHAT_S + FORWARD_OVERHEAD_S),
        (None, 1.0 + 10.0 * (1 + SHARED_DECODE_COST)),
    ]
    # With every unit as busy, the chat stays here.
    assert choose(load(busy=1, slots=4), [peer("b", load(busy=1, slots=4))]).node is None


def test_an_idle_unit_keeps_its_chat():
    placement = choose(load(), [peer("b", load())])
    assert placement.node is None and placement.reason == "this unit finishes soonest"
    assert [(e.node, e.finish_s) for e in placement.estimates] == [(None, CHAT_S), ("b", CHAT_S + FORWARD_OVERHEAD_S)]


def test_a_busy_unit_sends_its_chat_to_the_idle_peer():
    placement = choose(load(busy=1, queued=2), [peer("b", load())])
    assert placement.node == "b"
    assert placement.reason == f"finishes {CHAT_S * 2.5 - FORWARD_OVERHEAD_S:.1f} s sooner there"


def test_chats_sent_since_the_peers_presence_count_there():
    # Eight chats at once on two idle units of one worker each: they alternate, four and four.
    here, sent, placed = load(), {}, []
    for _ in range(8):
        node = choose(here, [peer("b", load())], sent=sent).node
        placed.append(node)
        if node is None:
            here = load(busy=1, queued=here.busy + here.queued) if here.busy else load(busy=1)
        else:
            sent["b"] = sent.get("b", 0) + 1
    assert placed.count("b") == 4 and placed.count(None) == 4


def test_a_faster_peer_wins_even_when_this_unit_is_free():
    # A GPU unit decoding at 200 tokens/s beats a free CPU unit at 20.
    assert choose(load(), [peer("gpu", load(prefill=2000.0, decode=200.0))]).node == "gpu"


def test_peers_that_cannot_take_it_are_not_weighed():
    busy_here = load(busy=1, queued=5)
    unfit = [
        peer("other-model", load(model="qwen")),
        peer("installing", load(ready=0, model=None)),  # its workers serve nothing yet
        peer("gone", load(), state="gone"),
        peer("stale", load(), seen=NOW - MAX_LOAD_AGE_S - 1),
        peer("loading", UnitLoad(workers=1, workers_ready=0, model=MODEL)),
    ]
    placement = choose(busy_here, unfit)
    assert placement.node is None and placement.reason == "no peer serves this model now"
    assert [e.node for e in placement.estimates] == [None]


def test_a_unit_without_a_ready_worker_sends_it_to_any_peer_that_has_one():
    placement = choose(UnitLoad(workers=1, workers_ready=0, model=MODEL), [peer("b", load(busy=1, queued=3))])
    assert placement.node == "b" and placement.reason == "this unit has no ready worker"


def test_unmeasured_speeds_count_as_this_units():
    placement = choose(load(busy=1, queued=1), [peer("b", load(busy=1, prefill=None, decode=None))])
    assert placement.node == "b"
    b = next(e for e in placement.estimates if e.node == "b")
    assert (b.prefill_s, b.decode_s, b.start_s) == (1.0, 10.0, CHAT_S / 2 + FORWARD_OVERHEAD_S)
    # Nothing measured anywhere: the units' own waits decide.
    nothing = choose(load(busy=1, prefill=None, decode=None, start=20.0), [peer("b", load(busy=1, start=5.0))])
    assert nothing.node == "b"


def test_two_random_choices_spread_simultaneous_picks_over_equal_idle_peers():
    peers = [peer(f"p{i}", load()) for i in range(8)]
    picks = {choose(load(busy=1, queued=3), peers, seed=seed).node for seed in range(40)}
    assert len(picks) >= 6  # not all on the alphabetically first idle peer
    for seed in range(40):  # never more than two peers weighed besides this unit
        assert len(choose(load(busy=1, queued=3), peers, seed=seed).estimates) == 3


def test_the_least_loaded_of_the_two_drawn_wins():
    peers = [peer("busy", load(busy=1, queued=3)), peer("idle", load())]
    assert {choose(load(busy=1, queued=5), peers, seed=seed).node for seed in range(10)} == {"idle"}


def test_a_unit_serving_another_model_does_not_forward():
    placement = choose(load(model="qwen"), [peer("b", load())])
    assert placement.node is None and placement.reason == "this unit serves another model"


def test_the_peer_takes_a_chat_while_its_wait_is_about_what_was_announced():
    assert accept_chat_job(load(), COST, expected_start_s=0.0) is None
    assert accept_chat_job(load(busy=1), COST, expected_start_s=CHAT_S / 2) is None
    assert accept_chat_job(load(busy=1, queued=1), COST, expected_start_s=CHAT_S) is None  # 16.5 < 2 x 11
    assert accept_chat_job(load(busy=1, queued=2), COST, expected_start_s=CHAT_S / 2) == (
        "busier than announced (a 27.5 s wait)"
    )


@pytest.mark.parametrize(
    "unit_load, reason",
    [
        (load(model="qwen"), "serves another model"),
        (UnitLoad(workers=1, workers_ready=0, model=MODEL), "no ready worker"),
    ],
)
def test_the_peer_declines_what_it_cannot_run(unit_load, reason):
    assert accept_chat_job(unit_load, COST, 0.0) == reason
