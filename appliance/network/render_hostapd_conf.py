"""Render hostapd.conf for the unit's access point."""

from __future__ import annotations

from appliance.network.network_types import NetworkPlan


def render_hostapd_conf(plan: NetworkPlan) -> str:
    """The text of hostapd.conf: SSID iplm-XXXX on 2.4 GHz, WPA2-PSK when the plan has a passphrase, else open.

    The passphrase is in the text: write it readable by root only.
    """
    lines = [
        "# Written by iplm (appliance.network.render_hostapd_conf); changes here are overwritten.",
        f"interface={plan.ap_interface}",
        "driver=nl80211",
        f"ssid={plan.ssid}",
        # 802.11d announces the country, so phones apply the same channel and power limits.
        f"country_code={plan.country}",
        "ieee80211d=1",
        "hw_mode=g",
        f"channel={plan.channel}",
        # WMM is required for 802.11n rates; every radio on the supported boards does 802.11n.
        "wmm_enabled=1",
        "ieee80211n=1",
        "auth_algs=1",
        "ignore_broadcast_ssid=0",
        # Phones cannot reach each other, only the unit: nobody on the Wi-Fi learns who else is there.
        "ap_isolate=1",
    ]
    if plan.passphrase is None:
        lines.append("wpa=0")
    else:
        lines += ["wpa=2", f"wpa_passphrase={plan.passphrase}", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP"]
    return "\n".join(lines) + "\n"
