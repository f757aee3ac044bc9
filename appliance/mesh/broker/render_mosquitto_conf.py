"""Render the unit's mosquitto.conf (mosquitto 2.0): mutual TLS with the mesh's CA, an ACL, limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from appliance.mesh.identity.identity_types import CA_FILE, CERTIFICATE_FILE, KEY_FILE

_WILDCARDS = {"0.0.0.0", "::", ""}
# MQTT v5 clients are told to ping at least this often; a silent peer's will fires after 1.5x.
_MAX_KEEPALIVE_S = 60
# The largest mesh message is 256 KiB; 1 MiB leaves room for MQTT framing and never lets one client
# make the broker buffer a huge packet.
_MAX_PACKET_BYTES = 1024 * 1024
# Per listener. A mesh is tens of units, each holding one connection to every other broker; the rest of
# the slots are headroom for reconnects racing their old connection's timeout.
MAX_CONNECTIONS = 64
# Per client: QoS 1 messages in flight, and what the broker holds for a client that reads slowly
# (presence every 3 s: a reader this far behind is gone anyway). Bounds the broker's memory per peer.
_MAX_INFLIGHT = 20
_MAX_QUEUED = 100
_MAX_QUEUED_BYTES = 4 * 1024 * 1024


def _check_line_value(name: str, value: str) -> str:
    # A newline in a value would inject config lines.
    if not value or any(ch in value for ch in "\r\n\0") or value != value.strip():
        raise ValueError(f"{name} {value!r} cannot go in mosquitto.conf")
    return value


def _render_listener(address: str, port: int, allow_wildcard: bool, tls_dir: str) -> list[str]:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"listener port {port!r} is not 1-65535")
    if address in _WILDCARDS and not allow_wildcard:
        raise ValueError(
            "a listener on every address would let phones on the access point reach the "
            "broker; pass allow_wildcard=True to mean it"
        )
    if address == "":
        line = f"listener {port}"
    else:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"listener address {address!r} is not an IP address") from None
        line = f"listener {port} {address}"
    # TLS settings belong to each listener, even with per_listener_settings false.
    return [
        line,
        f"max_connections {MAX_CONNECTIONS}",
        f"cafile {tls_dir}/{CA_FILE}",
        f"certfile {tls_dir}/{CERTIFICATE_FILE}",
        f"keyfile {tls_dir}/{KEY_FILE}",
        "tls_version tlsv1.2",
        # Only a unit of this mesh gets past the handshake: its certificate is signed by the mesh's CA
        # (derived from the mesh key), and its CN, the node id, is its MQTT username for the ACL.
        "require_certificate true",
        "use_identity_as_username true",
    ]


def render_mosquitto_conf(
    *,
    listeners: list[tuple[str, int]],
    tls_dir: Path | str,
    acl_file: Path | str,
    log_path: Path | str | None = None,
    user: str | None = None,
    allow_wildcard: bool = False,
) -> str:
    """The text of mosquitto.conf: exactly `listeners` [(address, port)], each taking only clients with a
    certificate of this mesh (the unit's CA, certificate and key in `tls_dir`: ensure_unit_identity), what they
    may publish and read in `acl_file` (render_mosquitto_acl), and bounded connections, packets and queues.

    `user`: the account mosquitto runs as. Started as root, mosquitto 2.0 switches to "mosquitto" right
    after reading this file, and that account must then read the ACL file; in development pass the current
    user. Raises ValueError for a listener on every address (unless allow_wildcard) or a value that does not
    fit on one config line.
    """
    if not listeners:
        raise ValueError("at least one listener: without any, mosquitto listens on localhost:1883")
    tls = _check_line_value("tls_dir", str(tls_dir).rstrip("/") or "/")
    lines = [
        "# Written by iplm (appliance.mesh.broker.render_mosquitto_conf); changes here are overwritten.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {_check_line_value('acl_file', str(acl_file))}",
        "allow_zero_length_clientid false",
        # Memory only: the broker's state is retained presence, which every unit publishes again on
        # connecting. Persisted presence would bring back "online" units whose wills died with the
        # old broker, and would wear the board's SD card.
        "persistence false",
        f"max_keepalive {_MAX_KEEPALIVE_S}",
        f"max_packet_size {_MAX_PACKET_BYTES}",
        f"max_inflight_messages {_MAX_INFLIGHT}",
        f"max_queued_messages {_MAX_QUEUED}",
        f"max_queued_bytes {_MAX_QUEUED_BYTES}",
        "set_tcp_nodelay true",
    ]
    if user is not None:
        lines.append(f"user {_check_line_value('user', user)}")
    if log_path is None:
        lines.append("log_dest stderr")
    else:
        lines.append(f"log_dest file {_check_line_value('log_path', str(log_path))}")
    lines += [
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
    ]
    for address, port in listeners:
        lines += _render_listener(address, port, allow_wildcard, tls)
    return "\n".join(lines) + "\n"
