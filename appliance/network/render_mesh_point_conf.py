"""wpa_supplicant's config for the unit's 802.11s mesh point (the Wi-Fi mesh link under batman-adv)."""

from __future__ import annotations

from appliance.network.network_types import BEACON_INTERVAL_TU, NetworkPlan

_CHANNEL_MHZ = {channel: 2407 + 5 * channel for channel in range(1, 14)}


def render_mesh_point_conf(plan: NetworkPlan, *, mesh_id: str, sae_password: str) -> str:
    """An open-ended `mode=5` (mesh) network with SAE, on the access point's channel (one radio does both).

    Every unit of a mesh renders the same network: its mesh SSID names the mesh (public mesh_id), the SAE
    password comes from the mesh key (derive_mesh_link_password).
    """
    if plan.mesh_mode != "batman":
        raise ValueError("a mesh point exists only where the radio runs an access point and a mesh point together")
    if not (len(sae_password) >= 8 and sae_password.isascii() and sae_password.isprintable()):
        raise ValueError("the SAE password must be at least 8 printable ASCII characters")
    lines = [
        "# Written by `iplm network apply`; wpa_supplicant -i <mesh point> -c <this file> joins the mesh.",
        "ctrl_interface=/run/wpa_supplicant",
        "update_config=0",
        f"country={plan.country}",
        "user_mpm=1",  # wpa_supplicant, not the kernel, runs peering: required for SAE
        "network={",
        f'    ssid="iplm-mesh-{mesh_id}"',
        "    mode=5",  # mesh point
        f"    frequency={_CHANNEL_MHZ[plan.channel]}",
        f"    beacon_int={BEACON_INTERVAL_TU}",  # the access point's: one radio beacons for both
        "    disable_ht40=1",  # the access point is HT20 on this channel: the shared radio stays there
        "    key_mgmt=SAE",
        "    ieee80211w=2",  # SAE mesh needs management frame protection
        f'    sae_password="{sae_password}"',
        "    mesh_fwding=0",  # batman-adv routes (layer 2 over the mesh), not 802.11s' own HWMP forwarding
        "}",
    ]
    return "\n".join(lines) + "\n"
