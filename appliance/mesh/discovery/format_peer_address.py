"""Write a broker address the way parse_peer_address reads it (and the way links are keyed)."""

from __future__ import annotations


def format_peer_address(host: str, port: int) -> str:
    """ "host:port", or "[v6]:port" for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
