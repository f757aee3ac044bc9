"""Render the unit's mosquitto.conf (mosquitto 2.0)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

_WILDCARDS = {"0.0.0.0", "::", ""}
# MQTT v5 clients are told to ping at least this often; a silent peer's will fires after 1.5x.
_MAX_KEEPALIVE_S = 60
# The largest mesh message is 256 KiB; 1 MiB leaves room for MQTT framing and never lets one client
# make the broker buffer a huge packet.
_MAX_PACKET_BYTES = 1024 * 1024


def _check_line_value(name: str, value: str) -> str:
    # A newline in a value would inject config lines.
    if not value or any(ch in value for ch in "\r\n\0") or value != value.strip():
        raise ValueError(f"{name} {value!r} cannot go in mosquitto.conf")
    return value


def _render_listener(address: str, port: int, allow_wildcard: bool) -> str:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"listener port {port!r} is not 1-65535")
    if address in _WILDCARDS and not allow_wildcard:
        raise ValueError(
            "a listener on every address would let phones on the access point reach the "
            "broker; pass allow_wildcard=True to mean it"
        )
    if address == "":
        return f"listener {port}"
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"listener address {address!r} is not an IP address") from None
    return f"listener {port} {address}"


def render_mosquitto_conf(
    *,
    listeners: list[tuple[str, int]],
    password_file: Path | str,
    log_path: Path | str | None = None,
    user: str | None = None,
    allow_wildcard: bool = False,
) -> str:
    """The text of mosquitto.conf: password-only access on exactly `listeners` [(address, port)].

    `user`: the account mosquitto runs as. Started as root, mosquitto 2.0 switches to "mosquitto" right
    after reading this file, and that account must then read the password file; in development pass
    the current user. Raises ValueError for a listener on every address (unless allow_wildcard) or a
    value that does not fit on one config line.
    """
    if not listeners:
        raise ValueError("at least one listener: without any, mosquitto listens on localhost:1883")
    lines = [
        "# Written by iplm (appliance.mesh.broker.render_mosquitto_conf); changes here are overwritten.",
        # One set of security settings for every listener: the same mesh credentials everywhere.
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {_check_line_value('password_file', str(password_file))}",
        "allow_zero_length_clientid false",
        # Memory only: the broker's state is retained presence, which every unit publishes again on
        # connecting. Persisted presence would bring back "online" units whose wills died with the
        # old broker, and would wear the board's SD card.
        "persistence false",
        f"max_keepalive {_MAX_KEEPALIVE_S}",
        f"max_packet_size {_MAX_PACKET_BYTES}",
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
    lines += [_render_listener(address, port, allow_wildcard) for address, port in listeners]
    return "\n".join(lines) + "\n"
