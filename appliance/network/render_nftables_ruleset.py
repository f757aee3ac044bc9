"""Render the nftables ruleset of the access point: table inet iplm (and bridge iplm), replaced whole on every load."""

from __future__ import annotations

from appliance.mesh.broker.render_mosquitto_conf import MAX_CONNECTIONS
from appliance.network.network_types import NetworkPlan

_BROKER_PER_ADDRESS = 8

TABLE = "inet iplm"
BRIDGE_TABLE = "bridge iplm"  # OWE transition mode only: keeps the two BSS apart on their bridge


def _render_ports(ports: tuple[int, ...]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"


def _render_bridge_table(plan: NetworkPlan) -> str:
    if plan.owe_interface is None:
        return ""
    ports = f'{{ "{plan.ap_interface}", "{plan.owe_interface}" }}'
    return f"""
# Both BSS are ports of {plan.ap_bridge}. Nothing crosses from one port to another: a phone on the open BSS
# would otherwise reach the OWE phones and see their broadcasts. Frames to the unit itself are not forwarded.
table {BRIDGE_TABLE}
delete table {BRIDGE_TABLE}
table {BRIDGE_TABLE} {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname {ports} drop
  }}
}}
"""


def render_nftables_ruleset(plan: NetworkPlan) -> str:
    """An `nft -f` script that replaces table inet iplm (and nothing else) with the AP's rules.

    Every rule matches the phones' interface (the AP, or the bridge of both BSS in OWE transition mode), so
    the mesh link and other interfaces are untouched. In OWE transition mode it also replaces table bridge
    iplm, which stops forwarding between the two BSS.
    """
    ap = f'iifname "{plan.phone_interface}"'
    # Addresses that stay as they are: the AP subnet (the unit itself) and broadcast/multicast (DHCP, mDNS).
    local = f"{{ {plan.ap_subnet}, 224.0.0.0/4, 255.255.255.255 }}"
    blocked = _render_ports(plan.admin_ports)
    portal = plan.portal_port
    return f"""\
# Written by iplm (appliance.network.render_nftables_ruleset); changes here are overwritten.
# Declaring the table first lets "delete" succeed on the first load too; the file is one transaction, so
# the old rules are replaced atomically and no packet ever sees a half-loaded table.
table {TABLE}
delete table {TABLE}
table {TABLE} {{
  # The phone addresses holding portal connections, each with its count. An element per address of the
  # AP subnet fits, so the set never fills (a full set would let new addresses past the limit).
  set phone_connections {{
    type ipv4_addr
    size {plan.ap_subnet.num_addresses}
    flags dynamic
  }}

  # The addresses holding connections to the mesh broker, each with its count.
  set broker_connections {{
    type ipv4_addr
    size 65535
    flags dynamic
  }}

  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    # HTTP to any address reaches the portal: that is what makes phones show the sign-in sheet.
    {ap} tcp dport 80 redirect to :{portal}
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
    # Phones reach the portal over IPv4 from an address of the AP subnet (DHCP and DNS give nothing else);
    # anything else (IPv6, where a phone has any number of addresses; a made-up source) ends at the reset below.
    # One phone address holds at most {plan.phone_connection_limit} portal connections (port 80 arrives here
    # redirected): more are reset at once, so one phone cannot take the server's connection slots from the others.
    {ap} ip saddr {plan.ap_subnet} tcp dport {portal} ct state new \\
      add @phone_connections {{ ip saddr ct count over {plan.phone_connection_limit} }} reject with tcp reset
    {ap} ip saddr {plan.ap_subnet} tcp dport {portal} accept
    # HTTPS is refused with a TCP reset at once: the portal has no certificate any phone would accept.
    {ap} tcp dport 443 reject with tcp reset
    # The broker and admin-only services are invisible to phones.
    {ap} meta l4proto {{ tcp, udp }} th dport {blocked} drop
    {ap} meta l4proto tcp reject with tcp reset
    {ap} reject
    # The mesh broker (phones never get here): mosquitto's own max_connections miscounts (a failed TLS
    # handshake lowers its count, eclipse-mosquitto#1460), so the firewall bounds it: {_BROKER_PER_ADDRESS} connections
    # per address (a unit holds one, and one more while it reconnects), {MAX_CONNECTIONS} in all; loopback is the
    # unit's own agent.
    iifname != "lo" tcp dport {plan.broker_port} ct state new \\
      add @broker_connections {{ ip saddr ct count over {_BROKER_PER_ADDRESS} }} reject with tcp reset
    iifname != "lo" tcp dport {plan.broker_port} ct state new ct count over {MAX_CONNECTIONS} reject with tcp reset
  }}

  chain forward {{
    type filter hook forward priority filter; policy accept;
    # No path beyond the unit: phones reach nothing but the unit, and nothing reaches the phones.
    {ap} drop
    oifname "{plan.phone_interface}" drop
  }}
}}
{_render_bridge_table(plan)}"""
