"""Render dnsmasq.conf: DHCP and DNS for the access point's phones, with every name answered by the unit."""

from __future__ import annotations

from pathlib import Path

from appliance.network.network_types import DEFAULT_LEASE_FILE, NCSI_ADDRESS, NCSI_NAME, NetworkPlan


def _render_lease_time(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else str(seconds)


def _check_path(path: str) -> str:
    # A newline would inject config lines; dnsmasq splits values at commas and drops trailing spaces.
    if not path.startswith("/") or any(ch in path for ch in "\r\n\0,") or path != path.strip():
        raise ValueError(f"lease file {path!r} must be an absolute path without commas or line breaks")
    return path


def render_dnsmasq_conf(plan: NetworkPlan, *, lease_file: Path | str = DEFAULT_LEASE_FILE) -> str:
    """The text of dnsmasq.conf for the AP: the unit as router and DNS, option 114, every name -> the unit."""
    start, end = plan.dhcp_range
    unit = plan.unit_address
    lines = [
        "# Written by iplm (appliance.network.render_dnsmasq_conf); changes here are overwritten.",
        # The phones' interface: in OWE transition mode the bridge of both BSS, so one pool serves both.
        f"interface={plan.phone_interface}",
        # Never on loopback: the unit's own lookups must not all resolve to itself.
        "except-interface=lo",
        # bind-dynamic, not bind-interfaces: dnsmasq may start before the AP has its address.
        "bind-dynamic",
        # Offline: no upstream servers, no /etc/resolv.conf, no /etc/hosts (the unit's names stay private).
        "no-resolv",
        "no-poll",
        "no-hosts",
        f"address=/{NCSI_NAME}/{NCSI_ADDRESS}",
        f"address=/#/{unit}",
        f"dhcp-range={start},{end},{plan.ap_subnet.netmask},{_render_lease_time(plan.lease_seconds)}",
        f"dhcp-option=3,{unit}",
        f"dhcp-option=6,{unit}",
        # RFC 8910: the captive-portal API URI (RFC 8908), so phones ask instead of probing.
        f'dhcp-option=114,"{plan.captive_api_url}"',
        # The only DHCP server on this link: answer phones that ask for an address from before a reboot.
        "dhcp-authoritative",
        # No ping before an offer: it holds every new phone's offer for 3 s; phones probe the offered
        # address themselves (ARP) and decline one that is taken.
        "no-ping",
        # The lease file holds the current leases only; no DHCP log lines, so no record of phones' MACs.
        f"dhcp-leasefile={_check_path(str(lease_file))}",
        "quiet-dhcp",
        "log-facility=-",
    ]
    return "\n".join(lines) + "\n"
