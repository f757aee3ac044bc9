"""`iplm mesh add HOST[:PORT]`: a peer to connect to where mDNS does not reach (another subnet, a VPN)."""

from __future__ import annotations

import sys

from appliance.cli.open_unit_store import open_unit_store
from appliance.mesh.agent.mesh_agent_types import MANUAL_PEERS_SETTING
from appliance.mesh.discovery.format_peer_address import format_peer_address
from appliance.mesh.discovery.parse_peer_address import parse_peer_address
from appliance.store.read_setting import read_setting
from appliance.store.write_setting import write_setting


def run_mesh_add(args) -> int:
    """Add the peer to the manual peers setting; a running agent picks it up within a few seconds."""
    try:
        host, port = parse_peer_address(args.host)
    except ValueError as exc:
        print(f"iplm: {exc}", file=sys.stderr)
        return 2
    open_unit_store(args.data_dir)
    peers = list(read_setting(MANUAL_PEERS_SETTING, []) or [])
    address = format_peer_address(host, port)
    if address not in peers:
        write_setting(MANUAL_PEERS_SETTING, peers + [address])
    print(f"manual mesh peer {address} added")
    return 0
