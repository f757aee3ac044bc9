"""The rendered hostapd, dnsmasq and nftables configs: the lines that make the captive portal work."""

from __future__ import annotations

import pytest

from appliance.network.plan_network import plan_network
from appliance.network.render_dnsmasq_conf import render_dnsmasq_conf
from appliance.network.render_hostapd_conf import render_hostapd_conf
from appliance.network.render_network_files import render_network_files
from appliance.network.render_nftables_ruleset import render_nftables_ruleset

NODE = "0123456789abcdef"
OPEN = plan_network(NODE)  # no passphrase: Enhanced Open (OWE only, the radio's abilities unknown)
TRANSITION = plan_network(NODE, radio_supports_second_ap=True, ap_mac="00:11:22:33:44:55")
WPA = plan_network(NODE, passphrase="correct horse battery", country="de", channel=11)


def _parse_settings(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def _parse_bss(text: str) -> list[dict[str, str]]:
    """hostapd.conf's sections: the radio with its first BSS, then one per `bss=` line."""
    sections: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        if key == "bss":
            sections.append({})
        assert key not in sections[-1], f"{key} twice in one section"
        sections[-1][key] = value
    return sections


def _list_lines(text: str) -> list[str]:
    # nft continues a rule on the next line after a backslash.
    text = text.replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _check_common_bss(bss: dict[str, str]) -> None:
    assert bss["ap_isolate"] == "1", "phones must not see each other"
    assert bss["wmm_enabled"] == "1" and bss["auth_algs"] == "1"


def test_hostapd_enhanced_open_without_a_passphrase():
    (bss,) = _parse_bss(render_hostapd_conf(OPEN))
    assert bss["interface"] == "wlan0" and bss["driver"] == "nl80211"
    assert bss["ssid"] == "iplm-cdef" and bss["hw_mode"] == "g" and bss["channel"] == "6"
    assert bss["country_code"] == "US" and bss["ieee80211d"] == "1"
    _check_common_bss(bss)
    # Encrypted per phone, management frames protected; never an open network on a one-AP radio.
    assert bss["wpa"] == "2" and bss["wpa_key_mgmt"] == "OWE" and bss["rsn_pairwise"] == "CCMP"
    assert bss["ieee80211w"] == "2" and bss["ignore_broadcast_ssid"] == "0"
    assert "wpa_passphrase" not in bss and "bridge" not in bss and "owe_transition_ifname" not in bss


def test_hostapd_owe_transition_mode_pairs_an_open_and_a_hidden_owe_bss():
    open_bss, owe_bss = _parse_bss(render_hostapd_conf(TRANSITION))
    assert open_bss["interface"] == "wlan0" and owe_bss["bss"] == "wlan0-owe"
    for bss in (open_bss, owe_bss):
        _check_common_bss(bss)
        assert bss["bridge"] == "br-ap", "both BSS in the bridge that holds the unit's address"
    # The open BSS, visible, points to the OWE BSS; phones without OWE use it.
    assert open_bss["ssid"] == "iplm-cdef" and open_bss["ignore_broadcast_ssid"] == "0"
    assert open_bss["wpa"] == "0" and open_bss["owe_transition_ifname"] == "wlan0-owe"
    # The OWE BSS, hidden, points back; PMF required.
    assert owe_bss["ssid"] == "iplm-cdef-owe" and owe_bss["ignore_broadcast_ssid"] == "1"
    assert owe_bss["wpa"] == "2" and owe_bss["wpa_key_mgmt"] == "OWE" and owe_bss["rsn_pairwise"] == "CCMP"
    assert owe_bss["ieee80211w"] == "2" and owe_bss["owe_transition_ifname"] == "wlan0"
    assert "wpa_passphrase" not in owe_bss
    # An address of its own: hostapd's derived one fails on a radio whose address ends in an odd bit.
    assert owe_bss["bssid"] == "02:11:22:33:44:55" and "bssid" not in open_bss
    assert "bssid=" not in render_hostapd_conf(plan_network(NODE, radio_supports_second_ap=True))


def test_hostapd_wpa3_sae_with_wpa2_transition_with_a_passphrase():
    (bss,) = _parse_bss(render_hostapd_conf(WPA))
    assert bss["wpa"] == "2" and bss["wpa_passphrase"] == "correct horse battery"
    assert bss["wpa_key_mgmt"] == "WPA-PSK SAE" and bss["rsn_pairwise"] == "CCMP"
    # PMF optional for WPA2 phones, required of SAE phones; H2E offered; anti-clogging on.
    assert bss["ieee80211w"] == "1" and bss["sae_require_mfp"] == "1"
    assert bss["sae_pwe"] == "2" and bss["sae_groups"] == "19" and bss["anti_clogging_threshold"] == "5"
    assert bss["country_code"] == "DE" and bss["channel"] == "11"
    _check_common_bss(bss)


def test_a_passphrase_wins_over_owe_transition():
    plan = plan_network(NODE, passphrase="correct horse battery", radio_supports_second_ap=True)
    assert plan.wifi_mode == "sae-transition" and plan.owe_interface is None
    assert len(_parse_bss(render_hostapd_conf(plan))) == 1


def test_dnsmasq_answers_every_name_with_the_unit_and_hands_out_the_captive_api():
    text = render_dnsmasq_conf(OPEN, lease_file="/run/iplm/dnsmasq.leases")
    lines = _list_lines(text)
    assert "interface=wlan0" in lines and "except-interface=lo" in lines
    assert "dhcp-range=198.18.0.10,198.18.0.250,255.255.255.0,12h" in lines
    assert "dhcp-option=3,198.18.0.1" in lines and "dhcp-option=6,198.18.0.1" in lines
    assert 'dhcp-option=114,"http://198.18.0.1/captive-portal/api"' in lines
    assert "address=/#/198.18.0.1" in lines
    assert "address=/dns.msftncsi.com/131.107.255.255" in lines
    assert {"no-resolv", "no-hosts", "dhcp-authoritative", "quiet-dhcp", "no-ping"} <= set(lines)
    assert "dhcp-leasefile=/run/iplm/dnsmasq.leases" in lines
    assert not any(line.startswith(("server=", "log-queries", "log-dhcp")) for line in lines)


def test_dnsmasq_lease_time_and_a_bad_lease_file():
    text = render_dnsmasq_conf(plan_network(NODE, lease_seconds=600), lease_file="/tmp/l")
    assert "dhcp-range=198.18.0.10,198.18.0.250,255.255.255.0,600" in _list_lines(text)
    for bad in ("relative/leases", "/tmp/a\nserver=8.8.8.8", "/tmp/a,b"):
        with pytest.raises(ValueError, match="lease file"):
            render_dnsmasq_conf(OPEN, lease_file=bad)


def test_nftables_replaces_only_its_own_table():
    text = render_nftables_ruleset(OPEN)
    lines = _list_lines(text)
    assert lines[:3] == ["table inet iplm", "delete table inet iplm", "table inet iplm {"]
    assert "flush ruleset" not in text
    assert [line for line in lines if "table" in line] == lines[:3], "no other table is named"


PORTAL_CAP = (
    'iifname "wlan0" ip saddr 198.18.0.0/24 tcp dport 8080 ct state new '
    "add @phone_connections { ip saddr ct count over 16 } reject with tcp reset"
)
PORTAL = 'iifname "wlan0" ip saddr 198.18.0.0/24 tcp dport 8080 accept'


def test_nftables_redirects_http_and_refuses_https_with_a_reset():
    lines = _list_lines(render_nftables_ruleset(OPEN))
    assert 'iifname "wlan0" tcp dport 80 redirect to :8080' in lines
    assert 'iifname "wlan0" tcp dport 443 reject with tcp reset' in lines
    assert 'iifname "wlan0" meta l4proto { tcp, udp } th dport { 22, 1883, 8883 } drop' in lines
    assert 'iifname "wlan0" udp dport 67 accept' in lines
    assert PORTAL in lines
    assert 'iifname "wlan0" drop' in lines and 'oifname "wlan0" drop' in lines
    # The order is the policy: allowed services, then HTTPS reset, then admin ports, then everything else.
    order = [
        lines.index(rule)
        for rule in (
            PORTAL_CAP,
            PORTAL,
            'iifname "wlan0" tcp dport 443 reject with tcp reset',
            'iifname "wlan0" meta l4proto { tcp, udp } th dport { 22, 1883, 8883 } drop',
            'iifname "wlan0" meta l4proto tcp reject with tcp reset',
            'iifname "wlan0" reject',
        )
    ]
    assert order == sorted(order)


BROKER_RULES = [
    'iifname != "lo" tcp dport 1883 ct state new add @broker_connections { ip saddr ct count over 8 } '
    "reject with tcp reset",
    'iifname != "lo" tcp dport 1883 ct state new ct count over 64 reject with tcp reset',
]


def test_nftables_rules_all_match_the_ap_so_the_mesh_link_is_untouched():
    # ... but for the broker's connection caps: a bound on connections, for every interface but loopback.
    plan = plan_network(NODE, mesh_interface="eth0", ap_interface="wlan1")
    rules = _list_rules(render_nftables_ruleset(plan))
    ap_rules = [rule for rule in rules if rule not in BROKER_RULES]
    assert len(ap_rules) == len(rules) - 2
    assert ap_rules and all(rule.startswith(('iifname "wlan1" ', 'oifname "wlan1" ')) for rule in ap_rules)
    assert "eth0" not in render_nftables_ruleset(plan)


def _list_rules(text: str) -> list[str]:
    lines = _list_lines(text)
    declarations = ("table", "delete", "chain", "type", "}", "set", "size", "flags")
    return [line for line in lines if not line.startswith(declarations)]


def test_nftables_caps_each_phones_portal_connections_in_a_set_that_cannot_fill():
    plan = plan_network(NODE, ap_subnet="10.99.0.0/20", phone_connection_limit=9)
    lines = _list_lines(render_nftables_ruleset(plan))
    set_start = lines.index("set phone_connections {")
    assert lines[set_start + 1 : set_start + 4] == ["type ipv4_addr", "size 4096", "flags dynamic"]
    assert (
        'iifname "wlan0" ip saddr 10.99.0.0/20 tcp dport 8080 ct state new '
        "add @phone_connections { ip saddr ct count over 9 } reject with tcp reset"
    ) in lines


def test_nftables_in_owe_transition_mode_guards_the_bridge_of_both_bss():
    text = render_nftables_ruleset(TRANSITION)
    lines = _list_lines(text)
    inet = _list_rules(text[: text.index("table bridge iplm")])
    inet = [rule for rule in inet if rule not in BROKER_RULES]
    assert inet and all(rule.startswith(('iifname "br-ap" ', 'oifname "br-ap" ')) for rule in inet)
    bridge = lines[lines.index("table bridge iplm") :]
    assert bridge[:3] == ["table bridge iplm", "delete table bridge iplm", "table bridge iplm {"]
    assert 'iifname { "wlan0", "wlan0-owe" } drop' in bridge, "nothing crosses from one BSS to the other"
    assert "table bridge iplm" not in render_nftables_ruleset(OPEN)


def test_dnsmasq_serves_the_bridge_in_owe_transition_mode():
    lines = _list_lines(render_dnsmasq_conf(TRANSITION, lease_file="/run/iplm/dnsmasq.leases"))
    assert "interface=br-ap" in lines and "interface=wlan0" not in lines


def test_mosquitto_listens_on_localhost_and_the_mesh_address_only():
    plan = plan_network(NODE, mesh_interface="eth0", mesh_address="10.213.0.11/24")
    text = render_network_files(plan, config_dir="/etc/iplm")["mosquitto"]
    assert [line for line in text.splitlines() if line.startswith("listener")] == [
        "listener 1883 127.0.0.1",
        "listener 1883 10.213.0.11",
    ]
    assert "acl_file /etc/iplm/mosquitto.acl" in text and "user mosquitto" in text
    assert "certfile /var/lib/iplm/mesh/tls/unit.crt" in text and "require_certificate true" in text
    assert "198.18.0.1" not in text
