"""The mesh agent's transitions, one event at a time: real sealed messages, no brokers, no threads, no clocks."""

import dataclasses

import pytest

from appliance.mesh.agent.agent_state_types import (
    OWN_LINK,
    AgentConfig,
    AgentState,
    AgentStopping,
    AgentTicked,
    ArmWill,
    BleSighted,
    CloseLink,
    DeliverWork,
    LinkConnected,
    LinkDropped,
    LogWarning,
    MdnsFound,
    MdnsLost,
    MessageArrived,
    NotifyPeers,
    OpenLink,
    OwnConnected,
    OwnDropped,
    PaceReconnects,
    PeerAdded,
    PublishPresence,
    SubscribePresence,
    SubscribeWork,
)
from appliance.mesh.agent.apply_agent_event import apply_agent_event
from appliance.mesh.agent.mesh_agent_types import AgentTiming, BleSighting, MdnsPeer
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey
from appliance.mesh.messages.seal_mesh_message import seal_mesh_message

SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))
OTHER = derive_mesh_secrets(MeshKey(secret=bytes(range(1, 33))))
ME, B, C = "a" * 16, "b" * 16, "c" * 16
LINK = "10.0.0.2:1883"
TIMING = AgentTiming(heartbeat_s=3.0, gone_after_s=10.0, link_grace_s=1.0)
NOW = 1_800_000_000.0


class Agent:
    def __init__(self):
        self.state = AgentState(config=AgentConfig(node_id=ME, secrets=SECRETS, timing=TIMING), will_id="w-me")
        self.counter = 0

    def apply(self, event):
        self.state, effects = apply_agent_event(self.state, event)
        return effects

    def seal(self, sender, payload, *, at=NOW, will=False, secrets=SECRETS, topic_of=None):
        self.counter += 1
        topic = f"iplm/{secrets.mesh_id}/presence/{topic_of or sender}"
        return topic, seal_mesh_message(
            secrets, sender, topic, payload, now=at, counter=int(at * 1000) + self.counter, will=will
        )

    def hear(self, sender=B, payload=None, *, at=NOW, link=LINK, **seal_options):
        payload = (
            payload
            if payload is not None
            else {
                "node": sender,
                "state": "online",
                "will_id": "w1",
                "name": "iplm-b",
                "address": "10.0.0.2",
                "portal": 8080,
            }
        )
        topic, raw = self.seal(sender, payload, at=at, **seal_options)
        return self.apply(MessageArrived(link, topic, raw, at))

    def link_to(self, host="10.0.0.2", port=1883):
        effects = self.apply(PeerAdded(host, port))
        self.apply(LinkConnected(f"{host}:{port}", refused=False))
        return effects


def test_a_peers_presence_puts_it_online_and_tells_once():
    agent = Agent()
    assert agent.link_to() == [OpenLink(LINK, "10.0.0.2", 1883)]
    assert agent.hear() == [NotifyPeers()]
    entry = agent.state.table[B]
    assert entry.state == "online" and entry.presence.name == "iplm-b" and entry.via == LINK
    assert agent.state.links[LINK].node == B
    assert agent.hear(at=NOW + 3) == []  # the heartbeat: nothing new to tell
    assert agent.state.table[B].last_seen == NOW + 3


@pytest.mark.parametrize(
    "spoil, code",
    [
        (lambda topic, raw: (topic, raw.replace(b'"iplm-b"', b'"iplm-x"')), "bad_mac"),
        (lambda topic, raw: (topic.replace(B, C), raw), "topic_mismatch"),
    ],
)
def test_forged_or_moved_messages_are_dropped_counted_and_logged_once_per_link(spoil, code):
    agent = Agent()
    for attempt in range(2):
        topic, raw = spoil(*agent.seal(B, {"node": B, "name": "iplm-b"}))
        effects = agent.apply(MessageArrived(LINK, topic, raw, NOW))
        assert [type(e) for e in effects] == ([LogWarning] if attempt == 0 else [])
    assert agent.state.drops == {code: 2} and agent.state.table == {}


def test_a_member_may_only_speak_for_itself():
    agent = Agent()
    effects = agent.hear(B, {"node": B}, topic_of=C)
    assert agent.state.table == {} and agent.state.drops == {"wrong_sender": 1}
    assert isinstance(effects[0], LogWarning)
    agent2 = Agent()
    agent2.hear(B, {"node": C, "state": "online"})  # a sealed presence that names another unit
    assert agent2.state.table == {} and agent2.state.drops == {"malformed": 1}


def test_another_mesh_and_replays_are_dropped_replays_quietly():
    agent = Agent()
    agent.hear(secrets=OTHER)
    assert agent.state.drops == {"bad_mac": 1}
    topic, raw = agent.seal(B, {"node": B})
    agent.apply(MessageArrived(LINK, topic, raw, NOW))
    assert agent.apply(MessageArrived(LINK, topic, raw, NOW + 1)) == []  # a retained message seen again
    assert agent.state.drops == {"bad_mac": 1, "replay": 1}


def test_wills_count_only_for_the_connection_behind_the_latest_presence():
    agent = Agent()
    agent.hear(payload={"node": B, "state": "online", "will_id": "w2"})
    agent.hear(payload={"node": B, "state": "gone", "will_id": "w1"}, will=True, at=NOW + 1)
    assert agent.state.table[B].state == "online"
    assert agent.hear(payload={"node": B, "state": "gone", "will_id": "w2"}, will=True, at=NOW + 2) == [NotifyPeers()]
    assert (agent.state.table[B].state, agent.state.table[B].reason) == ("gone", "will")


def test_a_link_to_this_very_unit_is_closed_once_from_the_ticker():
    agent = Agent()
    agent.link_to("127.0.0.1", 1883)
    agent.hear(ME, {"node": ME}, link="127.0.0.1:1883")
    assert agent.state.links["127.0.0.1:1883"].phase == "self" and agent.state.table == {}
    assert CloseLink("127.0.0.1:1883") in agent.apply(AgentTicked(NOW, 10.0))
    assert CloseLink("127.0.0.1:1883") not in agent.apply(AgentTicked(NOW, 10.25))


def test_a_refusing_broker_is_retried_slowly_and_reported_once():
    agent = Agent()
    agent.apply(PeerAdded("10.0.0.9", 1883))
    first = agent.apply(LinkConnected("10.0.0.9:1883", refused=True, reason="Not authorized"))
    assert PaceReconnects("10.0.0.9:1883", slow=True) in first and isinstance(first[-1], LogWarning)
    again = agent.apply(LinkConnected("10.0.0.9:1883", refused=True, reason="Not authorized"))
    assert again == [PaceReconnects("10.0.0.9:1883", slow=True)]
    assert agent.apply(LinkConnected("10.0.0.9:1883", refused=False)) == [
        PaceReconnects("10.0.0.9:1883", slow=False),
        SubscribePresence("10.0.0.9:1883"),
        SubscribeWork("10.0.0.9:1883"),
    ]


def test_a_link_down_past_its_grace_takes_its_peers_and_only_once():
    agent = Agent()
    agent.link_to()
    agent.hear()
    agent.apply(LinkDropped(LINK, 100.0))
    assert agent.apply(AgentTicked(NOW + 0.5, 100.5)) == []
    assert agent.state.table[B].state == "online"
    assert agent.apply(AgentTicked(NOW + 1, 101.0)) == [NotifyPeers()]
    assert (agent.state.table[B].state, agent.state.table[B].reason) == ("gone", "link")
    assert agent.state.links[LINK].lost
    agent.apply(LinkConnected(LINK, refused=False))
    assert not agent.state.links[LINK].lost and agent.state.links[LINK].down_since is None


def test_silence_past_gone_after_is_gone():
    agent = Agent()
    agent.hear(at=NOW)
    assert agent.apply(AgentTicked(NOW + 10, 50.0)) == []
    assert agent.apply(AgentTicked(NOW + 10.5, 50.5)) == [NotifyPeers()]
    assert agent.state.table[B].reason == "silent"


def test_mdns_opens_a_link_follows_a_move_and_closes_on_goodbye_but_keeps_manual_links():
    agent = Agent()
    found = MdnsPeer(
        node_id=B, mesh_id=SECRETS.mesh_id, host="10.0.0.2", broker_port=1883, portal_port=8080, service_name="b"
    )
    assert agent.apply(MdnsFound(found, NOW)) == [OpenLink(LINK, "10.0.0.2", 1883)]
    assert agent.apply(MdnsFound(found, NOW)) == []
    agent.hear()
    moved = dataclasses.replace(found, host="10.0.0.7")
    effects = agent.apply(MdnsFound(moved, NOW + 1))
    assert effects[0] == CloseLink(LINK) and OpenLink("10.0.0.7:1883", "10.0.0.7", 1883) in effects
    assert agent.state.table[B].reason == "link" and LINK not in agent.state.links
    assert agent.apply(MdnsLost(moved, NOW + 2)) == [CloseLink("10.0.0.7:1883")]
    assert agent.apply(MdnsFound(dataclasses.replace(found, node_id=ME), NOW)) == []  # ourselves
    agent.apply(PeerAdded("10.0.0.3", 1883))
    agent.apply(MdnsFound(dataclasses.replace(found, node_id=C, host="10.0.0.3"), NOW + 3))
    assert agent.apply(MdnsLost(dataclasses.replace(found, node_id=C, host="10.0.0.3"), NOW + 4)) == []


def test_presence_on_connect_then_every_heartbeat_only_while_connected():
    agent = Agent()
    assert agent.apply(AgentTicked(NOW, 10.0)) == []  # not connected: nothing to publish to
    assert agent.apply(OwnConnected(refused=False, at=10.0)) == [
        SubscribeWork(OWN_LINK),
        PublishPresence("online", "w-me"),
    ]
    assert agent.apply(AgentTicked(NOW + 1, 11.0)) == []
    assert agent.apply(AgentTicked(NOW + 3, 13.0)) == [PublishPresence("online", "w-me")]
    refused = agent.apply(OwnConnected(refused=True, at=14.0, reason="Bad user name or password"))
    assert isinstance(refused[0], LogWarning)


def test_each_new_connection_gets_a_fresh_will():
    agent = Agent()
    agent.apply(OwnConnected(refused=False, at=10.0))
    assert agent.apply(OwnDropped("w-next")) == [ArmWill("w-next")]
    assert agent.state.will_id == "w-next" and not agent.state.own_connected
    assert agent.apply(AgentTicked(NOW + 5, 20.0)) == []


def test_stopping_says_goodbye_closes_links_and_then_does_nothing():
    agent = Agent()
    agent.link_to()
    effects = agent.apply(AgentStopping())
    assert effects == [PublishPresence("gone", "w-me"), CloseLink(LINK)]
    assert agent.apply(AgentStopping()) == []
    assert agent.apply(OwnDropped("w-x")) == [] and agent.state.will_id == "w-me"
    assert agent.apply(PeerAdded("10.0.0.5", 1883)) == []
    assert agent.apply(AgentTicked(NOW, 99.0)) == []


def test_ble_sightings_are_smoothed_into_proximity():
    agent = Agent()
    agent.apply(BleSighted(BleSighting(node_id=B, rssi=-60, ble_address="AA", seen_at=NOW), NOW))
    agent.apply(BleSighted(BleSighting(node_id=B, rssi=-50, ble_address="AA", seen_at=NOW + 1), NOW + 1))
    assert agent.state.proximity[B]["rssi"] == -57


def test_unknown_events_are_refused():
    with pytest.raises(TypeError):
        apply_agent_event(Agent().state, object())


def test_a_broker_speaks_only_for_the_unit_its_certificate_names():
    # Every member holds the mesh key and can seal in another's name; the broker's TLS identity cannot be forged.
    agent = Agent()
    agent.apply(PeerAdded("10.0.0.2", 1883))
    agent.apply(LinkConnected(LINK, refused=False, broker_node=B))
    effects = agent.hear(C, {"node": C, "state": "online", "will_id": "w1"})
    assert agent.state.table == {} and agent.state.drops == {"wrong_broker": 1}
    assert isinstance(effects[0], LogWarning) and "relayed" in effects[0].message
    assert agent.hear() == [NotifyPeers()] and B in agent.state.table  # the broker's own unit is heard


def test_a_broker_that_is_this_unit_is_known_at_connect_and_never_subscribed():
    agent = Agent()
    agent.apply(PeerAdded("10.0.0.9", 1883))
    assert agent.apply(LinkConnected("10.0.0.9:1883", refused=False, broker_node=ME)) == []
    assert agent.state.links["10.0.0.9:1883"].phase == "self"
    assert agent.apply(AgentTicked(NOW, 100.0)) == [CloseLink("10.0.0.9:1883")]


def test_a_flooding_link_is_cut_to_its_budget_and_the_others_are_not():
    agent = Agent()
    agent.link_to()
    agent.link_to("10.0.0.3")
    for _ in range(100):  # a broken or hostile member's broker, all in one instant
        agent.hear(at=NOW)
    burst = TIMING.message_burst
    assert agent.state.drops["rate_limited"] == 100 - burst
    assert set(agent.state.drops) == {"rate_limited"}  # nothing else was wrong with them
    # One warning for the flood, not one per message.
    assert sum(1 for link, code in agent.state.warned if code == "rate_limited") == 1
    # Another link's unit is heard at once; the flooding link gets its rate back with time.
    assert agent.hear(C, {"node": C, "state": "online", "will_id": "w1"}, link="10.0.0.3:1883") == [NotifyPeers()]
    dropped = agent.state.drops["rate_limited"]
    agent.hear(at=NOW + 1.0)
    assert agent.state.drops["rate_limited"] == dropped and agent.state.table[B].last_seen == NOW + 1.0


def test_a_peer_whose_clock_is_off_is_heard_and_its_offset_kept():
    agent = Agent()
    agent.link_to()
    # Its clock is 5 minutes ahead (an offline unit without NTP): a presence dated then arrives now.
    topic, raw = agent.seal(B, {"node": B, "state": "online", "will_id": "w1"}, at=NOW + 300)
    assert agent.apply(MessageArrived(LINK, topic, raw, NOW)) == [NotifyPeers()]
    assert agent.state.table[B].state == "online" and agent.state.clock_offsets[B] == 300_000
    # A will is sealed long before the broker sends it: its date says nothing about the clock.
    topic, raw = agent.seal(B, {"node": B, "state": "gone", "will_id": "w1"}, at=NOW - 3600, will=True)
    agent.apply(MessageArrived(LINK, topic, raw, NOW + 1))
    assert agent.state.clock_offsets[B] == 300_000


# --- work: jobs for this unit on its own broker, results of its jobs on the peer's ------------------------


def _work(agent, kind, sender=B, receiver=ME, payload=None, *, link, at=NOW, secrets=SECRETS, signer=None):
    agent.counter += 1
    topic = f"iplm/{secrets.mesh_id}/{kind}s/{sender}/{receiver}"
    raw = seal_mesh_message(
        secrets, signer or sender, topic, payload or {"type": "x"}, now=at, counter=int(at * 1000) + agent.counter
    )
    return agent.apply(MessageArrived(link, topic, raw, at))


def _connected_to_b(agent):
    agent.apply(PeerAdded("10.0.0.2", 1883))
    agent.apply(LinkConnected(LINK, refused=False, broker_node=B))


def test_a_job_on_the_own_broker_and_a_result_on_the_peers_are_delivered():
    agent = Agent()
    _connected_to_b(agent)
    assert _work(agent, "job", payload={"type": "chat", "job": "j1"}, link=OWN_LINK) == [
        DeliverWork("job", B, {"type": "chat", "job": "j1"})
    ]
    assert _work(agent, "result", payload={"type": "accepted", "job": "j1"}, link=LINK) == [
        DeliverWork("result", B, {"type": "accepted", "job": "j1"})
    ]
    # Presence goes on with its own counters: work messages in between do not make it look replayed.
    assert not [e for e in agent.hear(B, at=NOW - 1) if isinstance(e, LogWarning)]


def test_work_on_the_wrong_broker_for_someone_else_or_in_anothers_name_is_dropped():
    agent = Agent()
    _connected_to_b(agent)
    assert _work(agent, "job", link=LINK) == [
        LogWarning(f"dropped a mesh message from {LINK} (wrong_broker): a job arrived on {LINK}")
    ]
    assert _work(agent, "result", link=OWN_LINK)[0].message.endswith("a result arrived on own")
    # C's result, relayed by B's broker (C is a member and may write its own topics there): not B's to give.
    dropped = _work(agent, "result", sender=C, link=LINK)
    assert agent.state.drops["wrong_broker"] == 3 and not [e for e in dropped if isinstance(e, DeliverWork)]
    # Sealed by C on B's topic, or for another unit, or from another mesh: dropped.
    assert not [e for e in _work(agent, "job", signer=C, link=OWN_LINK) if isinstance(e, DeliverWork)]
    assert agent.state.drops["wrong_sender"] == 1
    assert _work(agent, "job", receiver=C, link=OWN_LINK) == [
        LogWarning(
            f"dropped a mesh message from own (topic_mismatch): unexpected topic iplm/{SECRETS.mesh_id}/jobs/{B}/{C}"
        )
    ]
    assert not [e for e in _work(agent, "job", secrets=OTHER, link=OWN_LINK) if isinstance(e, DeliverWork)]


def test_a_replayed_job_is_dropped_and_a_flood_is_cut_to_its_budget():
    agent = Agent()
    topic = f"iplm/{SECRETS.mesh_id}/jobs/{B}/{ME}"
    raw = seal_mesh_message(SECRETS, B, topic, {"type": "chat"}, now=NOW, counter=5)
    assert isinstance(agent.apply(MessageArrived(OWN_LINK, topic, raw, NOW))[0], DeliverWork)
    assert agent.apply(MessageArrived(OWN_LINK, topic, raw, NOW)) == []
    assert agent.state.drops["replay"] == 1
    delivered = sum(
        isinstance(effect, DeliverWork)
        for _ in range(TIMING.work_message_burst + 50)
        for effect in _work(agent, "job", link=OWN_LINK)
    )
    assert delivered == TIMING.work_message_burst - 2  # the message above and its replay took one each
    assert agent.state.drops["rate_limited"] == 150 - delivered
    # Another member's budget is its own.
    assert isinstance(_work(agent, "job", sender=C, link=OWN_LINK)[0], DeliverWork)
