"""The peer table's rules: presence, leaving, wills (only the current connection's), lost links, silence."""

import pytest

from appliance.mesh.agent.mesh_agent_types import ClockTicked, LinkLost, PresenceHeard, WillHeard
from appliance.mesh.agent.presence_types import PeerEntry, Presence
from appliance.mesh.agent.update_peer_table import update_peer_table

A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"


def _online(table=None, node=A, at=100.0, via="10.0.0.1:1883", will_id="w1"):
    return update_peer_table(table or {}, PresenceHeard(node, Presence(node, "online", will_id=will_id), via, at))


def test_a_presence_puts_the_peer_online_and_keeps_since_while_it_stays():
    table = _online(at=100.0)
    assert table[A] == PeerEntry(
        state="online",
        presence=Presence(A, "online", will_id="w1"),
        last_seen=100.0,
        via="10.0.0.1:1883",
        since=100.0,
        reason=None,
    )
    table = _online(table, at=103.0)
    assert table[A].last_seen == 103.0 and table[A].since == 100.0


def test_the_table_given_is_not_changed():
    table = _online()
    update_peer_table(table, LinkLost("10.0.0.1:1883", 101.0))
    assert table[A].state == "online"


def test_a_unit_that_says_gone_has_left():
    table = update_peer_table(_online(), PresenceHeard(A, Presence(A, "gone"), "10.0.0.1:1883", 105.0))
    assert (table[A].state, table[A].reason, table[A].since) == ("gone", "left", 105.0)


def test_the_will_of_the_current_connection_marks_gone():
    table = update_peer_table(_online(), WillHeard(A, Presence(A, "gone", will_id="w1"), "x", 104.0))
    assert (table[A].state, table[A].reason) == ("gone", "will")


def test_a_will_of_an_earlier_connection_is_ignored():
    table = _online(will_id="w2")  # the unit reconnected: replaying its old will must not take it down
    assert update_peer_table(table, WillHeard(A, Presence(A, "gone", will_id="w1"), "x", 104.0)) == table
    assert update_peer_table({}, WillHeard(A, Presence(A, "gone", will_id="w1"), "x", 104.0)) == {}


def test_a_lost_link_takes_the_peers_heard_on_it_only():
    table = _online(_online(node=B, via="10.0.0.2:1883"), via="10.0.0.1:1883")
    table = update_peer_table(table, LinkLost("10.0.0.1:1883", 110.0))
    assert (table[A].state, table[A].reason, table[B].state) == ("gone", "link", "online")


def test_silence_longer_than_gone_after_marks_gone_and_a_fresh_presence_brings_back():
    table = _online(at=100.0)
    assert update_peer_table(table, ClockTicked(110.0, 10.0))[A].state == "online"
    table = update_peer_table(table, ClockTicked(110.5, 10.0))
    assert (table[A].state, table[A].reason, table[A].since) == ("gone", "silent", 110.5)
    table = update_peer_table(table, ClockTicked(120.0, 10.0))
    assert table[A].since == 110.5  # already gone: the reason and time stay
    table = _online(table, at=121.0)
    assert (table[A].state, table[A].reason, table[A].since) == ("online", None, 121.0)


def test_anything_else_is_refused():
    with pytest.raises(TypeError):
        update_peer_table({}, "tick")
