"""The rendered hostapd, dnsmasq and nftables configs: the lines that make the captive portal work."""

from __future__ import annotations

import pytest

from appliance.network.plan_network import plan_network
from appliance.network.render_dnsmasq_conf import render_dnsmasq_conf
from appliance.network.render_hostapd_conf import render_hostapd_conf
from appliance.network.render_network_files import render_network_files
from appliance.network.render_nftables_ruleset import render_nftables_ruleset

NODE = "0123456789abcdef"
OPEN = plan_network(NODE)
WPA = plan_network(NODE, passphrase="correct horse battery", country="de", channel=11)


def _parse_settings(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def _list_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_hostapd_open_network():
    settings = _parse_settings(render_hostapd_conf(OPEN))
    assert settings["interface"] == "wlan0" and settings["driver"] == "nl80211"
    assert settings["ssid"] == "iplm-cdef" and settings["hw_mode"] == "g" and settings["channel"] == "6"
    assert settings["country_code"] == "US" and settings["ieee80211d"] == "1"
    assert settings["ap_isolate"] == "1", "phones must not see each other"
    assert settings["wpa"] == "0" and "wpa_passphrase" not in settings


def test_hostapd_wpa2_with_a_passphrase():
    settings = _parse_settings(render_hostapd_conf(WPA))
    assert settings["wpa"] == "2" and settings["wpa_passphrase"] == "correct horse battery"
    assert settings["wpa_key_mgmt"] == "WPA-PSK" and settings["rsn_pairwise"] == "CCMP"
    assert settings["country_code"] == "DE" and settings["channel"] == "11"


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


def test_nftables_redirects_http_and_refuses_https_with_a_reset():
    lines = _list_lines(render_nftables_ruleset(OPEN))
    assert 'iifname "wlan0" tcp dport 80 redirect to :8080' in lines
    assert 'iifname "wlan0" tcp dport 443 reject with tcp reset' in lines
    assert 'iifname "wlan0" meta l4proto { tcp, udp } th dport { 22, 1883, 8883 } drop' in lines
    assert 'iifname "wlan0" udp dport 67 accept' in lines
    assert 'iifname "wlan0" tcp dport 8080 accept' in lines
    assert 'iifname "wlan0" drop' in lines and 'oifname "wlan0" drop' in lines
    # The order is the policy: allowed services, then HTTPS reset, then admin ports, then everything else.
    order = [
        lines.index(rule)
        for rule in (
            'iifname "wlan0" tcp dport 8080 accept',
            'iifname "wlan0" tcp dport 443 reject with tcp reset',
            'iifname "wlan0" meta l4proto { tcp, udp } th dport { 22, 1883, 8883 } drop',
            'iifname "wlan0" meta l4proto tcp reject with tcp reset',
            'iifname "wlan0" reject',
        )
    ]
    assert order == sorted(order)


def test_nftables_rules_all_match_the_ap_so_the_mesh_link_is_untouched():
    plan = plan_network(NODE, mesh_interface="eth0", ap_interface="wlan1")
    rules = [
        line
        for line in _list_lines(render_nftables_ruleset(plan))
        if not line.startswith(("table", "delete", "chain", "type", "}"))
    ]
    assert rules and all(rule.startswith(('iifname "wlan1" ', 'oifname "wlan1" ')) for rule in rules)
    assert "eth0" not in render_nftables_ruleset(plan)


def test_mosquitto_listens_on_localhost_and_the_mesh_address_only():
    plan = plan_network(NODE, mesh_interface="eth0", mesh_address="10.213.0.11/24")
    text = render_network_files(plan, config_dir="/etc/iplm")["mosquitto"]
    assert [line for line in text.splitlines() if line.startswith("listener")] == [
        "listener 1883 127.0.0.1",
        "listener 1883 10.213.0.11",
    ]
    assert "password_file /etc/iplm/mosquitto.passwd" in text and "user mosquitto" in text
    assert "198.18.0.1" not in text
