"""Read a peer's broker address as a person types it: HOST, HOST:PORT, [IPv6] or [IPv6]:PORT."""

from __future__ import annotations

import ipaddress
import re

from appliance.mesh.agent.mesh_agent_types import DEFAULT_BROKER_PORT

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def _check_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is neither an IP address nor a host name")
    return host


def parse_peer_address(text: str) -> tuple[str, int]:
    """(host, port); the port defaults to the mesh broker's (1883). ValueError when it is not an address."""
    text = text.strip()
    port = str(DEFAULT_BROKER_PORT)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: an unclosed bracket")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: want [IPv6]:PORT")
            port = rest[1:]
        if ipaddress.ip_address(host).version != 6:  # ValueError for a non-address too
            raise ValueError(f"{text!r}: brackets hold an IPv6 address")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # a bare IPv6 address has several colons and no port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{port!r} is not a TCP port (1-65535)")
    return _check_host(host), int(port)
