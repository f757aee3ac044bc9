"""Render hostapd.conf for the unit's access point."""

from __future__ import annotations

from appliance.network.network_types import BEACON_INTERVAL_TU, NetworkPlan


def _render_radio(plan: NetworkPlan) -> list[str]:
    return [
        "driver=nl80211",
        # 802.11d announces the country, so phones apply the same channel and power limits.
        f"country_code={plan.country}",
        "ieee80211d=1",
        "hw_mode=g",
        f"channel={plan.channel}",
        # Every radio on the supported boards does 802.11n (each BSS turns on WMM, which its rates need).
        "ieee80211n=1",
        f"beacon_int={BEACON_INTERVAL_TU}",  # the mesh point's too (network_types)
    ]


def _render_bss(plan: NetworkPlan, ssid: str, *, hidden: bool) -> list[str]:
    # hostapd starts each BSS from its own defaults, so every BSS repeats these.
    lines = [
        f"ssid={ssid}",
        "wmm_enabled=1",
        "auth_algs=1",
        f"ignore_broadcast_ssid={1 if hidden else 0}",
        # Phones cannot reach each other, only the unit: nobody on the Wi-Fi learns who else is there.
        "ap_isolate=1",
    ]
    if plan.owe_interface is not None:
        # hostapd puts the BSS in the bridge each time it (re)creates its interface; the bridge keeps the
        # unit's address, so phones on either BSS share one subnet, one DHCP pool and one set of rules.
        lines.append(f"bridge={plan.ap_bridge}")
    return lines


def _render_owe() -> list[str]:
    return [
        "wpa=2",
        # Each phone agrees its own key with the unit (Diffie-Hellman): nobody in range reads its traffic,
        # and a phone on the same network cannot decrypt another's.
        "wpa_key_mgmt=OWE",
        "rsn_pairwise=CCMP",
        # OWE requires protected management frames: no forged deauthentication to push a phone off.
        "ieee80211w=2",
    ]


def _render_sae(passphrase: str) -> list[str]:
    return [
        "wpa=2",
        f"wpa_passphrase={passphrase}",
        # WPA3-Personal for phones that have it, WPA2 for those that do not, on one BSS.
        "wpa_key_mgmt=WPA-PSK SAE",
        "rsn_pairwise=CCMP",
        # PMF is optional for WPA2 phones and required of every SAE phone.
        "ieee80211w=1",
        "sae_require_mfp=1",
        # Hash-to-element where the phone has it (no password-dependent timing, the Dragonblood attacks),
        # hunting-and-pecking for phones that do not.
        "sae_pwe=2",
        # The group every SAE phone must support; the others add nothing a phone would use.
        "sae_groups=19",
        # After 5 SAE exchanges in progress, new ones must echo a cookie: a flood of forged commits from
        # made-up addresses costs the unit no elliptic-curve work.
        "anti_clogging_threshold=5",
    ]


def render_hostapd_conf(plan: NetworkPlan) -> str:
    """The text of hostapd.conf: SSID iplm-XXXX on 2.4 GHz, secured as plan.wifi_mode says.

    "owe-transition": the open BSS on the AP interface, with a pointer to the hidden OWE BSS on
    plan.owe_interface (and back); phones with OWE join the OWE BSS, others the open one. "owe": one OWE
    BSS. "sae-transition": one WPA3-SAE + WPA2-PSK BSS. The passphrase is in the text: write it readable
    by root only.
    """
    lines = [
        "# Written by iplm (appliance.network.render_hostapd_conf); changes here are overwritten.",
        f"interface={plan.ap_interface}",
        *_render_radio(plan),
        *_render_bss(plan, plan.ssid, hidden=False),
    ]
    if plan.wifi_mode == "sae-transition" and plan.passphrase is not None:
        return "\n".join([*lines, *_render_sae(plan.passphrase)]) + "\n"
    if plan.wifi_mode != "owe-transition" or plan.owe_interface is None or plan.owe_ssid is None:
        return "\n".join([*lines, *_render_owe()]) + "\n"
    lines += [
        # The open BSS, for phones without OWE; it advertises the OWE BSS, which OWE phones join instead.
        "wpa=0",
        f"owe_transition_ifname={plan.owe_interface}",
        "",
        # The OWE BSS: hidden, found by OWE phones through the open BSS's transition element.
        f"bss={plan.owe_interface}",
        *([f"bssid={plan.owe_bssid}"] if plan.owe_bssid else []),
        *_render_bss(plan, plan.owe_ssid, hidden=True),
        *_render_owe(),
        f"owe_transition_ifname={plan.ap_interface}",
    ]
    return "\n".join(lines) + "\n"
