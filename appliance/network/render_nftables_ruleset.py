"""Render the nftables ruleset of the access point: table inet iplm, replaced whole on every load."""

from __future__ import annotations

from appliance.network.network_types import NetworkPlan

TABLE = "inet iplm"


def _render_ports(ports: tuple[int, ...]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"


def render_nftables_ruleset(plan: NetworkPlan) -> str:
    """An `nft -f` script that replaces table inet iplm (and nothing else) with the AP's rules.

    Every rule matches the AP interface, so the mesh link and other interfaces are untouched.
    """
    ap = f'iifname "{plan.ap_interface}"'
    # Addresses that stay as they are: the AP subnet (the unit itself) and broadcast/multicast (DHCP, mDNS).
    local = f"{{ {plan.ap_subnet}, 224.0.0.0/4, 255.255.255.255 }}"
    blocked = _render_ports(plan.admin_ports)
    return f"""\
# Written by iplm (appliance.network.render_nftables_ruleset); changes here are overwritten.
# Declaring the table first lets "delete" succeed on the first load too; the file is one transaction, so
# the old rules are replaced atomically and no packet ever sees a half-loaded table.
table {TABLE}
delete table {TABLE}
table {TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    # HTTP to any address reaches the portal: that is what makes phones show the sign-in sheet.
    {ap} tcp dport 80 redirect to :{plan.portal_port}
    # DNS to any server (hard-coded resolvers) is answered by the unit's dnsmasq.
    {ap} meta l4proto {{ tcp, udp }} th dport 53 redirect to :53
    # Anything else to an address beyond the unit lands on the unit, where input refuses it at once,
    # so that apps fail fast instead of waiting for a timeout; nothing is ever forwarded.
    {ap} ip daddr != {local} meta l4proto {{ tcp, udp }} redirect
  }}

  chain input {{
    type filter hook input priority filter; policy accept;
    {ap} ct state established,related accept
    {ap} ct state invalid drop
    {ap} udp dport 67 accept
    {ap} meta l4proto {{ tcp, udp }} th dport 53 accept
    {ap} tcp dport {plan.portal_port} accept
    # HTTPS is refused with a TCP reset at once: the portal has no certificate any phone would accept.
    {ap} tcp dport 443 reject with tcp reset
    # The broker and admin-only services are invisible to phones.
    {ap} meta l4proto {{ tcp, udp }} th dport {blocked} drop
    {ap} meta l4proto tcp reject with tcp reset
    {ap} reject
  }}

  chain forward {{
    type filter hook forward priority filter; policy accept;
    # No path beyond the unit: phones reach nothing but the unit, and nothing reaches the phones.
    {ap} drop
    oifname "{plan.ap_interface}" drop
  }}
}}
"""
