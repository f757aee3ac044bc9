"""Browse the mesh link for other units of our mesh (mDNS/DNS-SD `_iplm._tcp`)."""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Callable

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

from appliance.mesh.agent.mesh_agent_types import MDNS_SERVICE_TYPE, MdnsPeer

_log = logging.getLogger("iplm.mesh.mdns")
_NODE_ID = re.compile(r"[0-9a-f]{16}")
_RESOLVE_TIMEOUT_MS = 1500


def _read_port(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and 1 <= int(text) <= 65535 else None


def _read_peer(info, name: str, mesh_id: str) -> MdnsPeer | None:
    txt = {
        key.decode("utf-8", "replace"): (value or b"").decode("utf-8", "replace")
        for key, value in (info.properties or {}).items()
    }
    broker = _read_port(txt.get("broker"))
    if txt.get("mesh") != mesh_id or not _NODE_ID.fullmatch(txt.get("node", "")) or broker is None:
        return None  # another mesh (or not an iplm unit at all): not ours to connect to
    # IPv4 first: on a unit's Wi-Fi mesh link a v6 link-local address would need its scope id.
    addresses = sorted(info.parsed_addresses(IPVersion.All), key=lambda a: ipaddress.ip_address(a).version)
    if not addresses:
        return None
    return MdnsPeer(
        node_id=txt["node"],
        mesh_id=mesh_id,
        host=addresses[0],
        broker_port=broker,
        portal_port=_read_port(txt.get("portal")) or 0,
        service_name=name,
    )


def browse_mdns(
    zeroconf: Zeroconf, *, mesh_id: str, on_add: Callable[[MdnsPeer], None], on_remove: Callable[[MdnsPeer], None]
) -> Callable[[], None]:
    """Call on_add for each unit of mesh `mesh_id` found (or changed), on_remove when one says goodbye.

    Services of other meshes are ignored. Returns stop(). Callbacks run in the browser's thread.
    """
    known: dict[str, MdnsPeer] = {}
    lock = threading.Lock()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            with lock:
                peer = known.pop(name, None)
            if peer is not None:
                on_remove(peer)
            return
        # Blocking here is allowed: ServiceBrowser runs its handlers in its own thread. An announcement
        # carries SRV, TXT and A together, so this is usually answered from the cache at once.
        info = zeroconf.get_service_info(service_type, name, timeout=_RESOLVE_TIMEOUT_MS)
        peer = _read_peer(info, name, mesh_id) if info is not None else None
        if peer is None:
            return
        with lock:
            unchanged = known.get(name) == peer
            known[name] = peer
        if not unchanged:
            on_add(peer)

    browser = ServiceBrowser(zeroconf, MDNS_SERVICE_TYPE, handlers=[on_change])

    def stop() -> None:
        browser.cancel()

    return stop
