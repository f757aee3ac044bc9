"""Create the 802.11s mesh point interface on the access point's radio."""

from __future__ import annotations

from pyroute2 import IW
from pyroute2.netlink.exceptions import NetlinkError

from appliance.network.network_errors import NetworkError

NL80211_IFTYPE_MESH_POINT = 7  # include/uapi/linux/nl80211.h, enum nl80211_iftype


def create_mesh_point(name: str, ap_index: int, *, open_iw=IW) -> None:
    """Add interface `name` of type mesh point on the radio (wiphy) of the AP interface `ap_index`.

    What `iw dev <ap> interface add <name> type mp` does. NetworkError "no_mesh_point" when the driver
    refuses (no such combination on this radio, or no radio at all).
    """
    try:
        iw = open_iw()  # fails too where the kernel has no nl80211 (no Wi-Fi at all)
    except NetlinkError as exc:
        raise NetworkError("no_mesh_point", f"no Wi-Fi radio to add mesh point {name} to: {exc}") from exc
    try:
        iw.add_interface(name, NL80211_IFTYPE_MESH_POINT, dev=ap_index)
    except NetlinkError as exc:
        raise NetworkError("no_mesh_point", f"the radio would not add mesh point {name}: {exc}") from exc
    finally:
        iw.close()
