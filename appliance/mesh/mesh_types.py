"""Data shapes of the mesh: the mesh key, the secrets derived from it, the message envelope, a broker.

Counters (replay protection). Each sender stamps every message with a counter that only grows:
`advance_mesh_counter(last, now=...)` = max(milliseconds since the epoch, last + 1). The caller
persists the last counter it used, so a restart with a clock that went backwards still counts up.

Receivers keep a replay state {sender id: last accepted counter} and accept only a greater counter.
A retained message re-delivered on reconnect or re-subscribe carries a counter already accepted:
`open_mesh_message` raises MeshMessageError with code "replay", which the receiver ignores quietly
(it is what it already knows, not news and not an attack worth logging loudly).

Last wills. A will is sealed when the client connects and published by the broker much later, so it is
always old and its counter is below the sender's later messages. It is sealed with will=True, and a
will is checked for its MAC and topic only, not for its counter.

Clocks. No receiver compares `sent_at` with its own clock (offline units' clocks drift): the agent keeps
each sender's clock offset as its presence shows it, and peer HTTP requests are dated against that.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MESH_KEY_PREFIX = "iplm1-"
MESH_KEY_BYTES = 32
MESH_KEY_CHECKSUM_BYTES = 4

ENVELOPE_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class MeshKey:
    """The mesh's one secret (32 random bytes). Its text form is what people type or scan."""

    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class MeshSecrets:
    """What a unit derives from the mesh key. Only `mesh_id` may be shown or sent in clear."""

    mesh_id: str  # 16 hex digits; names the mesh's topics (iplm/<mesh_id>/...)
    message_key: bytes = field(repr=False)  # HMAC-SHA256 key of every mesh message


@dataclass(frozen=True)
class MeshMessage:
    """The envelope on the wire (JSON object with exactly these keys).

    `sent_at` is milliseconds since the epoch; `mac` is hex HMAC-SHA256 over the canonical encoding of
    (version, mesh_id, topic, sender, counter, sent_at, will, payload).
    """

    version: int
    sender: str
    counter: int
    sent_at: int
    topic: str
    will: bool
    payload: dict
    mac: str


@dataclass(frozen=True)
class Broker:
    """A mosquitto process started by start_broker (development and tests; systemd on the image).

    wait_ready(timeout) raises BrokerError (with the broker's stderr) unless it listens in time;
    restart() stops and starts it again with the same config and waits until ready; reload() sends
    SIGHUP (mosquitto rereads the password file); stop() is idempotent.
    """

    conf_path: Path
    address: str  # the first listener's address and port: where readiness is probed
    port: int
    process: Callable[[], subprocess.Popen]  # the current process (restart replaces it)
    wait_ready: Callable[[float], None]
    restart: Callable[[], None]
    reload: Callable[[], None]
    stop: Callable[[], None]
    stderr_tail: Callable[[], str]  # the broker's last stderr lines, for error messages


@dataclass(frozen=True)
class ReplayMemory:
    """Signatures of peer requests already answered (start_replay_memory): remember(sig) is False for a repeat."""

    remember: Callable[[str], bool]
