"""A chat sent to a peer (pure transitions): deltas in order and once, and the fall-back to this unit."""

import pytest

from appliance.engine.engine_types import ChatEvent
from appliance.mesh.work.apply_remote_chat_event import apply_remote_chat_event
from appliance.mesh.work.remote_chat_types import (
    ACCEPT_TIMEOUT_S,
    MAX_RESULT_TEXT,
    SILENCE_TIMEOUT_S,
    CancelOnPeer,
    ClientLeft,
    Deliver,
    PeerLost,
    RemoteChat,
    RemoteTicked,
    ResultArrived,
    RunElsewhere,
)

JOB, NODE = "j1", "peer-b"


def asked(**fields):
    return RemoteChat(job=JOB, node=NODE, phase="asked", heard_at=0.0, **fields)


def result(kind, at=1.0, **payload):
    return ResultArrived({"type": kind, "job": JOB, **payload}, at)


def run(chat, *events):
    effects = []
    for event in events:
        chat, more = apply_remote_chat_event(chat, event)
        effects += more
    return chat, effects


def delivered(effects):
    return [effect.event for effect in effects if isinstance(effect, Deliver)]


STREAM = [
    result("accepted"),
    result("start", prompt_tokens=12),
    result("delta", seq=0, text="Red"),
    result("delta", seq=1, text=", orange"),
]
DONE = result("done", seq=2, finish_reason="stop", prompt_tokens=12, completion_tokens=4)


def test_a_reply_streams_through_in_order_and_ends():
    chat, effects = run(asked(), *STREAM, DONE)
    assert chat.phase == "finished" and chat.text == "Red, orange"
    assert delivered(effects) == [
        ChatEvent("start", prompt_tokens=12),
        ChatEvent("delta", text="Red"),
        ChatEvent("delta", text=", orange"),
        ChatEvent("done", prompt_tokens=12, completion_tokens=4, finish_reason="stop"),
    ]
    assert not [e for e in effects if not isinstance(e, Deliver)]


def test_a_delta_delivered_twice_is_shown_once():
    chat, effects = run(asked(), *STREAM, STREAM[2], STREAM[3], DONE, DONE)
    assert [e.text for e in delivered(effects) if e.kind == "delta"] == ["Red", ", orange"]
    assert chat.phase == "finished"


def test_a_missing_delta_hands_the_chat_back_with_the_text_the_client_has():
    chat, effects = run(asked(), *STREAM[:3], result("delta", seq=2, text=" and blue"))
    assert chat.phase == "failed"
    assert effects[-2:] == [
        CancelOnPeer(JOB, NODE),
        RunElsewhere(reply_prefix="Red", started=True, reason="delta 1 from the peer went missing"),
    ]


def test_a_lost_peer_mid_reply_hands_over_what_was_said_so_far():
    chat, effects = run(asked(), *STREAM, PeerLost(2.0))
    assert effects[-1] == RunElsewhere(reply_prefix="Red, orange", started=True, reason="the peer is gone")
    # Whatever the peer still sends afterwards is not shown: the reply goes on elsewhere.
    chat, later = run(chat, DONE, result("delta", seq=2, text="!"))
    assert later == []


def test_a_decline_or_a_refusal_runs_it_here_from_the_start():
    _, effects = run(asked(), result("declined", reason="busier than announced"))
    assert effects == [RunElsewhere("", False, "the peer declined: busier than announced")]
    _, effects = run(asked(), result("accepted"), result("error", code="rate_limited"))
    assert effects == [RunElsewhere("", False, "the peer's engine refused it (rate_limited)")]


def test_no_answer_in_time_or_silence_gives_up_on_the_peer():
    chat, effects = run(asked(), RemoteTicked(ACCEPT_TIMEOUT_S - 0.1))
    assert effects == [] and chat.phase == "asked"
    _, effects = run(chat, RemoteTicked(ACCEPT_TIMEOUT_S))
    assert effects == [CancelOnPeer(JOB, NODE), RunElsewhere("", False, "the peer did not answer in 3 s")]
    # Accepted and queued there: keepalives keep it; silence does not.
    chat, effects = run(asked(), result("accepted", at=1.0), result("keepalive", at=15.0), RemoteTicked(30.0))
    assert effects == [] and chat.phase == "accepted"
    _, effects = run(chat, RemoteTicked(15.0 + SILENCE_TIMEOUT_S))
    assert isinstance(effects[-1], RunElsewhere) and "silent" in effects[-1].reason


def test_a_client_that_leaves_cancels_the_job_on_the_peer():
    chat, effects = run(asked(), *STREAM, ClientLeft(3.0))
    assert chat.phase == "finished" and effects[-1] == CancelOnPeer(JOB, NODE)
    _, later = run(chat, PeerLost(4.0), RemoteTicked(100.0))
    assert later == []


def test_a_continued_reply_sends_no_second_start():
    chat, effects = run(asked(text="Red", started=True), *STREAM[:2], result("delta", seq=0, text=", orange"))
    assert [e.kind for e in delivered(effects)] == ["delta"] and chat.text == "Red, orange"


def test_results_of_another_job_are_ignored():
    chat, effects = run(asked(), ResultArrived({"type": "declined", "job": "other", "reason": "x"}, 1.0))
    assert chat == asked() and effects == []


@pytest.mark.parametrize(
    "bad",
    [
        result("start"),  # no prompt_tokens
        result("start", prompt_tokens=-1),
        result("start", prompt_tokens=True),
        result("delta", seq=0, text=5),
        result("delta", seq="0", text="x"),
        result("delta", seq=0, text="x" * (MAX_RESULT_TEXT + 1)),
        result("done", seq=0, finish_reason="exploded", prompt_tokens=1, completion_tokens=1),
        result("done", seq=0, finish_reason="stop", prompt_tokens=1),
        result("surprise"),
    ],
)
def test_a_result_that_does_not_fit_hands_the_chat_back(bad):
    start = [result("accepted"), result("start", prompt_tokens=3)] if bad.payload["type"] != "start" else []
    chat, effects = run(asked(), *start, bad)
    assert chat.phase == "failed" and isinstance(effects[-1], RunElsewhere)


def test_a_delta_before_the_start_does_not_fit():
    chat, effects = run(asked(), result("accepted"), result("delta", seq=0, text="Red"))
    assert chat.phase == "failed" and effects[-1] == RunElsewhere("", False, "the peer sent a delta that does not fit")


def test_a_reply_the_peer_cut_short_goes_on_here():
    cut = result("done", seq=2, finish_reason="cancelled", prompt_tokens=12, completion_tokens=2)
    _, effects = run(asked(), *STREAM, cut)
    assert effects[-1] == RunElsewhere("Red, orange", True, "the peer cut the reply short")


def test_a_peer_that_sends_more_than_the_reply_may_hold_is_given_up():
    chat, effects = run(asked(max_text=10), *STREAM[:3], result("delta", seq=1, text=" and a lot more"))
    assert chat.phase == "failed" and chat.text == "Red"
    assert effects[-2:] == [
        CancelOnPeer(JOB, NODE),
        RunElsewhere("Red", True, "the peer sent more than the reply may hold"),
    ]
