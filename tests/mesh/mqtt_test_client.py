"""A paho-mqtt 2.x client for tests: connects, records CONNACKs and messages, resubscribes on reconnect."""

from __future__ import annotations

import queue
import ssl
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class MqttProbe:
    client: mqtt.Client
    connacks: queue.Queue = field(default_factory=queue.Queue)  # ReasonCode per CONNACK
    messages: queue.Queue = field(default_factory=queue.Queue)  # paho MQTTMessage
    subacks: queue.Queue = field(default_factory=queue.Queue)  # reason code lists
    topics: list = field(default_factory=list)

    def wait_connack(self, timeout: float = 5.0):
        return self.connacks.get(timeout=timeout)

    def wait_message(self, timeout: float = 5.0):
        return self.messages.get(timeout=timeout)

    def wait_suback(self, timeout: float = 5.0):
        return self.subacks.get(timeout=timeout)

    def subscribe(self, topic: str) -> None:
        """Subscribe now (waiting for the SUBACK) and again after every reconnect."""
        self.topics.append(topic)
        self.client.subscribe(topic, qos=1)
        assert not any(code.is_failure for code in self.wait_suback())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_test_client(
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    host: str = "127.0.0.1",
    protocol=mqtt.MQTTv5,
    will: tuple | None = None,
    identity=None,
    ca_path=None,
) -> MqttProbe:
    """Connect (network loop in a thread); the CONNACK lands in `.connacks`, even a refusal.

    identity: a UnitIdentity to connect with over TLS, as units do (ca_path: another CA to trust instead of
    the identity's own; with ca_path alone, TLS without a client certificate). A failed TLS handshake
    raises ssl.SSLError or OSError from here."""
    # allow_zero_length_clientid is false: a client without an id is refused before its password is read.
    client_id = client_id if client_id is not None else f"probe-{uuid.uuid4().hex[:12]}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    holder = MqttProbe(client=client)
    if username is not None:
        client.username_pw_set(username, password)
    if will is not None:
        client.will_set(*will)
    if identity is not None or ca_path is not None:
        context = ssl.create_default_context(cafile=str(ca_path or identity.ca_path))
        context.check_hostname = False  # units are known by their certificate's CN, not a host name
        if identity is not None:
            context.load_cert_chain(str(identity.certificate_path), str(identity.key_path))
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]  # paho takes float s

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        holder.connacks.put(reason_code)
        if not reason_code.is_failure:
            for topic in holder.topics:  # clean session: subscriptions die with the connection
                client.subscribe(topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda _client, _userdata, _mid, codes, _properties: holder.subacks.put(codes)
    client.on_message = lambda _client, _userdata, message: holder.messages.put(message)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return holder
