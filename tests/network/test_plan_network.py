"""plan_network: defaults, the mesh choice and input validation."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from appliance.network.plan_network import plan_network

NODE = "0123456789abcdef"


def test_defaults_give_the_ap_subnet_ssid_and_dhcp_the_product_chose():
    plan = plan_network(NODE)
    assert plan.ap_interface == "wlan0" and plan.ssid == "iplm-cdef"
    # RFC 2544 benchmarking range: not private (Android probes), not CGNAT (the phone's mobile data).
    assert plan.ap_subnet == IPv4Network("198.18.0.0/24") and plan.unit_address == IPv4Address("198.18.0.1")
    assert plan.dhcp_range == (IPv4Address("198.18.0.10"), IPv4Address("198.18.0.250"))
    assert plan.lease_seconds == 12 * 3600
    assert plan.passphrase is None and plan.country == "US" and plan.channel == 6
    assert plan.portal_port == 8080 and plan.broker_port == 1883
    assert plan.captive_api_url == "http://198.18.0.1/captive-portal/api"
    assert 1883 in plan.admin_ports and 22 in plan.admin_ports
    assert plan.mesh_mode is None and plan.mesh_address is None and plan.mesh_ports == ()
    assert plan.broker_listeners == (("127.0.0.1", 1883),)
    # No passphrase and a radio not known to run two access points: Enhanced Open only, never open.
    assert plan.wifi_mode == "owe" and plan.owe_interface is None and plan.owe_ssid is None
    assert plan.phone_interface == "wlan0" and plan.phone_connection_limit == 16


def test_owe_transition_when_the_radio_runs_a_second_access_point():
    plan = plan_network(NODE, radio_supports_second_ap=True)
    assert plan.wifi_mode == "owe-transition" and plan.owe_interface == "wlan0-owe"
    assert plan.owe_ssid == "iplm-cdef-owe" and plan.ssid == "iplm-cdef"
    assert plan.ap_bridge == "br-ap" and plan.phone_interface == "br-ap"
    # The derived name fits IFNAMSIZ however long the AP's name is.
    long = plan_network(NODE, radio_supports_second_ap=True, ap_interface="wlx00c0ca123456")
    assert long.owe_interface == "wlx00c0ca12-owe" and len(long.owe_interface) == 15
    named = plan_network(NODE, radio_supports_second_ap=True, owe_interface="owe0", ap_bridge="phones0")
    assert (named.owe_interface, named.phone_interface) == ("owe0", "phones0")


@pytest.mark.parametrize(
    "radio, owe_bssid",
    [
        ("00:11:22:33:44:55", "02:11:22:33:44:55"),  # a vendor's address: its locally administered twin
        ("00:11:22:33:44:54", "02:11:22:33:44:54"),
        ("02:11:22:33:44:55", "06:11:22:33:44:55"),  # already locally administered: another bit flips
        ("A4:11:22:33:44:55", "a6:11:22:33:44:55"),
    ],
)
def test_the_owe_bss_gets_an_address_of_its_own_from_the_radios(radio, owe_bssid):
    plan = plan_network(NODE, radio_supports_second_ap=True, ap_mac=radio)
    assert plan.owe_bssid == owe_bssid and plan.owe_bssid != radio.lower()
    assert int(plan.owe_bssid[:2], 16) & 0x01 == 0, "never a group address"
    assert plan_network(NODE, ap_mac=radio).owe_bssid is None, "one BSS: the radio's own address"


def test_a_passphrase_means_wpa3_sae_with_wpa2_on_one_bss():
    for second_ap in (False, True):
        plan = plan_network(NODE, passphrase="correct horse", radio_supports_second_ap=second_ap)
        assert plan.wifi_mode == "sae-transition" and plan.owe_interface is None
        assert plan.phone_interface == "wlan0"


def test_the_passphrase_stays_out_of_the_plans_repr():
    assert "correct horse" not in repr(plan_network(NODE, passphrase="correct horse"))


def test_a_small_subnet_keeps_every_address_but_the_units_for_phones():
    plan = plan_network(NODE, ap_subnet="10.99.0.16/28", country="de", channel=13)
    assert plan.unit_address == IPv4Address("10.99.0.17")
    assert plan.dhcp_range == (IPv4Address("10.99.0.18"), IPv4Address("10.99.0.30"))
    assert plan.country == "DE" and plan.channel == 13
    assert plan.captive_api_url == "http://10.99.0.17/captive-portal/api"


def test_ethernet_mesh_when_the_radio_cannot_do_ap_and_mesh_point_together():
    plan = plan_network(NODE, mesh_interface="eth0")
    assert (plan.mesh_mode, plan.mesh_interface, plan.mesh_ports) == ("ethernet", "eth0", ())
    # Link-local, derived from the node id: the same on every start, different between units.
    assert plan.mesh_address.network == IPv4Network("169.254.0.0/16")
    assert plan.mesh_address == plan_network(NODE, mesh_interface="eth1").mesh_address
    assert plan.mesh_address != plan_network("fedcba9876543210", mesh_interface="eth0").mesh_address
    assert 1 <= plan.mesh_address.ip.packed[2] <= 254, "RFC 3927 keeps 169.254.0.x and .255.x reserved"
    assert plan.broker_listeners == (("127.0.0.1", 1883), (str(plan.mesh_address.ip), 1883))


def test_batman_over_802_11s_when_the_radio_can():
    plan = plan_network(NODE, radio_supports_ap_and_mesh=True)
    assert (plan.mesh_mode, plan.mesh_interface, plan.mesh_ports) == ("batman", "bat0", ("mesh0",))
    both = plan_network(NODE, radio_supports_ap_and_mesh=True, mesh_interface="eth0", mesh_address="10.213.0.11/24")
    assert both.mesh_ports == ("mesh0", "eth0") and both.mesh_address == IPv4Interface("10.213.0.11/24")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"passphrase": "short"}, "8-63"),
        ({"passphrase": "x" * 64}, "8-63"),
        ({"passphrase": "caf\u00e9 au lait"}, "printable ASCII"),
        ({"passphrase": "line\nbreak!"}, "printable ASCII"),
        ({"passphrase": " leading space"}, "space"),
        ({"country": "USA"}, "two-letter"),
        ({"country": "1A"}, "two-letter"),
        ({"channel": 14}, "1-13"),
        ({"channel": 0}, "1-13"),
        ({"channel": 12}, "not allowed in US"),
        ({"channel": True}, "1-13"),
        ({"ap_subnet": "198.18.0.0/29"}, "/16 to /28"),
        ({"ap_subnet": "10.0.0.0/8"}, "/16 to /28"),
        ({"ap_subnet": "198.18.0.1/24"}, "not an IPv4 network"),
        ({"ap_subnet": "fd00::/64"}, "not an IPv4 network"),
        ({"ap_subnet": "169.254.1.0/24"}, "link-local"),
        ({"ap_subnet": "127.0.0.0/24"}, "loopback"),
        ({"ap_interface": "wlan0-with-a-long-name"}, "interface name"),
        ({"ap_interface": "wlan 0"}, "interface name"),
        ({"ap_interface": "wl/an0"}, "interface name"),
        ({"ap_interface": ""}, "interface name"),
        ({"mesh_interface": "wlan0"}, "must differ"),
        ({"mesh_interface": "eth0", "mesh_address": "10.213.0.11"}, "prefix length"),
        ({"mesh_interface": "eth0", "mesh_address": "198.18.0.77/24"}, "overlaps"),
        ({"mesh_interface": "eth0", "mesh_address": "10.213.0.0/24"}, "network or broadcast"),
        ({"mesh_address": "10.213.0.11/24"}, "needs a mesh link"),
        ({"portal_port": 53}, "portal port 53 is DNS or DHCP"),
        ({"admin_ports": (53,)}, "must stay open"),
        ({"admin_ports": (8080,)}, "must stay open"),
        ({"broker_port": 70000}, "1-65535"),
        ({"lease_seconds": 60}, "at least 120"),
        ({"radio_supports_second_ap": True, "owe_interface": "wlan0"}, "must differ"),
        ({"radio_supports_second_ap": True, "owe_interface": "owe interface"}, "interface name"),
        ({"radio_supports_second_ap": True, "ap_bridge": "wlan0-owe"}, "must differ"),
        ({"ap_bridge": "wlan0"}, "must differ"),
        ({"mesh_interface": "br-ap"}, "must differ"),
        ({"radio_supports_second_ap": True, "ap_mac": "01:11:22:33:44:55"}, "unicast MAC"),
        ({"radio_supports_second_ap": True, "ap_mac": "00:00:00:00:00:00"}, "unicast MAC"),
        ({"radio_supports_second_ap": True, "ap_mac": "00:11:22:33:44"}, "unicast MAC"),
        ({"radio_supports_second_ap": True, "ap_mac": "00:11:22:33:44:55\nbssid=x"}, "unicast MAC"),
        ({"phone_connection_limit": 0}, "1-256"),
        ({"phone_connection_limit": True}, "1-256"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_network(NODE, **kwargs)


@pytest.mark.parametrize("node_id", ["", "abc", "0123456789ABCDEF", "0x12345678", "g123"])
def test_the_node_id_must_be_what_load_node_id_writes(node_id):
    with pytest.raises(ValueError, match="node id"):
        plan_network(node_id)
