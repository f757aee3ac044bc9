"""Advertise this unit on the mesh link with mDNS/DNS-SD (`_iplm._tcp`)."""

from __future__ import annotations

from collections.abc import Callable

from zeroconf import ServiceInfo, Zeroconf

from appliance.mesh.agent.mesh_agent_types import MDNS_SERVICE_TYPE


def advertise_mdns(
    zeroconf: Zeroconf, *, node_id: str, mesh_id: str, address: str, broker_port: int, portal_port: int
) -> Callable[[], None]:
    """Register the unit's service (TXT: node, mesh, broker, portal); returns unregister()."""
    # The instance name is the random node id: unique by construction, so the three conflict probes of
    # RFC 6762 (about 1.2 s) are skipped (cooperating_responders) and peers see the unit at once.
    info = ServiceInfo(
        MDNS_SERVICE_TYPE,
        f"iplm-{node_id}.{MDNS_SERVICE_TYPE}",
        port=broker_port,
        properties={"node": node_id, "mesh": mesh_id, "broker": str(broker_port), "portal": str(portal_port)},
        server=f"iplm-{node_id}.local.",
        parsed_addresses=[address],
    )
    zeroconf.register_service(info, cooperating_responders=True)

    def unregister() -> None:
        # A goodbye packet: peers drop the unit at once instead of waiting for the records' TTL.
        try:
            zeroconf.unregister_service(info)
        except Exception:  # already closed: nothing left to say goodbye with
            pass

    return unregister
