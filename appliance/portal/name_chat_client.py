"""Who a chat is from, for limits and fair queueing: the device's address, not anything it sends."""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address


def name_chat_client(remote_addr: str | None) -> str:
    """The device as "ip:<address>"; "unknown" when the server saw no address.

    A cookie is the phone's to choose (a fresh one per request costs nothing); its address is the unit's
    DHCP lease. A device that takes several addresses (IPv6 lets a host pick many) gets a share per
    address, but all of them together still meet the unit's queue limit. Kept in memory only, never stored.
    """
    try:
        address = ip_address((remote_addr or "").split("%")[0])
    except ValueError:
        return "unknown"
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return f"ip:{address.ipv4_mapped}"  # a dual-stack socket's view of an IPv4 device
    return f"ip:{address}"
