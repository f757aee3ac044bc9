"""The portal HTTP server's own limits (create_portal_server): every phone on the Wi-Fi may be hostile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortalServerLimits:
    """What one connection may cost the server, and how many there may be."""

    # The server's body limit is the app's own (MAX_CONTENT_LENGTH, 1 MiB) plus this: a body just over the
    # app's limit still gets the app's JSON error; a larger one is refused by the server from its
    # Content-Length, before a byte of it is read.
    body_slack_bytes: int = 64 * 1024
    # Request line and headers together: a phone sends under 2 KiB (the portal's cookies are short), so 16 KiB
    # leaves room for long user agents while a phone holds at most that much of the server's memory per request.
    max_header_bytes: int = 16 * 1024
    # From a request's first byte to its last: headers come in one packet, and the largest body (1 MiB) takes
    # under 9 s at 1 Mbit/s, the edge of 2.4 GHz range. A phone that trickles bytes (slow loris) is cut off here.
    request_deadline_s: int = 15
    # A connection with no request in progress and no byte in or out for this long is closed: browsers reuse
    # idle keep-alive connections within seconds or reconnect, and a silent one only holds a slot.
    idle_timeout_s: int = 15
    # How often both are checked: a connection is cut off at most this (plus waitress's 1 s loop) late.
    check_every_s: int = 2
    # Open connections in all. 256 is 16 phones at the firewall's per-phone cap (16, plan_network); each costs a
    # descriptor and at most one body in memory (1.1 MiB), so about 280 MiB at the very worst.
    connection_limit: int = 256
    # Connections the kernel holds for the server while all slots are taken: a burst of phones joining waits
    # instead of being refused.
    backlog: int = 256
