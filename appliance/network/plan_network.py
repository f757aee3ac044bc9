"""Plan the unit's network from a few choices: the AP, its subnet and Wi-Fi settings, the mesh link."""

from __future__ import annotations

import hashlib
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from appliance.network.network_types import DEFAULT_AP_SUBNET, NetworkPlan

_NODE_ID = re.compile(r"[0-9a-f]{4,64}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_LOCALLY_ADMINISTERED, _GROUP = 0x02, 0x01
_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_IFNAME = 15  # IFNAMSIZ - 1
_SMALLEST_PREFIX, _LARGEST_PREFIX = 28, 16
# 2.4 GHz, hw_mode g: 1-13 (14 is 802.11b-only, Japan). 12 and 13 are not for FCC/ISED countries.
_CHANNELS = range(1, 14)
_NO_CHANNELS_12_13 = {"US", "CA"}
_MIN_LEASE_S = 120  # dnsmasq's own minimum
# Ports the AP must keep working: DNS, DHCP, HTTP (redirected to the portal).
_AP_SERVICE_PORTS = {53, 67, 80}
_LINK_LOCAL = IPv4Network("169.254.0.0/16")
_OWE_SUFFIX = "-owe"
# A browser opens up to 6 connections to one host, the captive sheet is a second browser with its own 6,
# and the OS probes on top: 16 leaves an honest phone room, while one phone cannot take the portal's
# connection slots (256, appliance/cli/portal_server_types.py) from the others.
_PHONE_CONNECTIONS = 16
_MAX_PHONE_CONNECTIONS = 256


def _check_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise ValueError(f"node id {node_id!r} is not 4-64 lower-case hex digits (see load_node_id)")
    return node_id


def _check_interface(role: str, name: str) -> str:
    # The kernel's dev_valid_name, plus printable ASCII so that a name can go on a config line.
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= _MAX_IFNAME
        or name in (".", "..")
        or any(ch in "/:" or not "!" <= ch <= "~" for ch in name)
    ):
        raise ValueError(
            f"{role} {name!r} is not an interface name (1-{_MAX_IFNAME} characters, printable, no spaces, '/' or ':')"
        )
    return name


def _check_subnet(text) -> IPv4Network:
    try:
        subnet = IPv4Network(text)
    except ValueError as exc:
        raise ValueError(f"access point subnet {text!r} is not an IPv4 network such as 198.18.0.0/24 ({exc})") from None
    if not _LARGEST_PREFIX <= subnet.prefixlen <= _SMALLEST_PREFIX:
        raise ValueError(
            f"access point subnet {subnet} must be from /{_LARGEST_PREFIX} to "
            f"/{_SMALLEST_PREFIX} (at least 16 addresses)"
        )
    if (
        subnet.is_loopback
        or subnet.is_link_local
        or subnet.is_multicast
        or subnet.is_reserved
        or subnet.overlaps(IPv4Network("0.0.0.0/8"))
    ):
        # Link-local is the mesh's default range; the others cannot be routed to a phone.
        raise ValueError(f"access point subnet {subnet} is loopback, link-local, multicast or reserved")
    return subnet


def _check_passphrase(passphrase: str | None) -> str | None:
    if passphrase is None:
        return None
    if not isinstance(passphrase, str) or not 8 <= len(passphrase) <= 63:
        # SAE takes any length, but the same passphrase serves WPA2 phones, whose limit this is.
        raise ValueError("the Wi-Fi passphrase must be 8-63 characters (WPA2)")
    if any(not " " <= ch <= "~" for ch in passphrase):
        raise ValueError("the Wi-Fi passphrase must be printable ASCII (WPA2 passphrases are)")
    if passphrase != passphrase.strip():
        # Invisible when typed on a phone, and hostapd keeps them: nobody could join.
        raise ValueError("the Wi-Fi passphrase must not begin or end with a space")
    return passphrase


def _check_country(country: str) -> str:
    code = country.upper() if isinstance(country, str) else ""
    if not _COUNTRY.fullmatch(code):
        raise ValueError(f"country {country!r} is not a two-letter ISO 3166-1 code such as US or DE")
    return code


def _check_channel(channel: int, country: str) -> int:
    if isinstance(channel, bool) or not isinstance(channel, int) or channel not in _CHANNELS:
        raise ValueError(f"channel {channel!r} is not a 2.4 GHz channel for 802.11g (1-13)")
    if channel > 11 and country in _NO_CHANNELS_12_13:
        raise ValueError(f"channel {channel} is not allowed in {country} (1-11)")
    return channel


def _check_port(role: str, port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{role} {port!r} is not a port (1-65535)")
    return port


def _choose_wifi_mode(passphrase: str | None, radio_supports_second_ap: bool) -> str:
    if passphrase is not None:
        return "sae-transition"  # one BSS: WPA3 and WPA2 phones both join it with the passphrase
    # Without a second AP there is no open BSS for phones without OWE: they stay out rather than every
    # phone's chats and cookies going over the air in clear (see WIFI_MODES).
    return "owe-transition" if radio_supports_second_ap else "owe"


def _derive_owe_bssid(ap_mac: str | None) -> str | None:
    # Without an address for each BSS, hostapd derives the second one by masking the radio's and refuses to
    # start when the radio's ends in an odd bit. A locally administered twin of the radio's address never
    # collides with a vendor's, and keeps the radio's own bits otherwise (as OpenWrt does it).
    if ap_mac is None:
        return None
    mac = ap_mac.lower() if isinstance(ap_mac, str) else ""
    if not _MAC.fullmatch(mac) or int(mac[:2], 16) & _GROUP or mac == "00:00:00:00:00:00":
        raise ValueError(f"access point address {ap_mac!r} is not a unicast MAC address such as 02:11:22:33:44:55")
    first = int(mac[:2], 16)
    first = first ^ 0x04 if first & _LOCALLY_ADMINISTERED else first | _LOCALLY_ADMINISTERED
    return f"{first:02x}{mac[2:]}"


def _check_connection_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_PHONE_CONNECTIONS:
        raise ValueError(f"connections per phone {limit!r} must be 1-{_MAX_PHONE_CONNECTIONS}")
    return limit


def _choose_dhcp_range(subnet: IPv4Network) -> tuple[IPv4Address, IPv4Address]:
    # A /24 gives .10-.250: a few addresses at each end stay free for fixed use.
    if subnet.num_addresses >= 64:
        return subnet.network_address + 10, subnet.broadcast_address - 5
    return subnet.network_address + 2, subnet.broadcast_address - 1


def _derive_mesh_address(node_id: str) -> IPv4Interface:
    # IPv4 link-local (RFC 3927): needs no DHCP on the mesh and is never routed; 169.254.1.0-169.254.254.255.
    digest = hashlib.sha256(f"iplm mesh address {node_id}".encode("ascii")).digest()
    return IPv4Interface(f"169.254.{1 + digest[0] % 254}.{digest[1]}/16")


def _check_mesh_address(text, subnet: IPv4Network) -> IPv4Interface:
    try:
        if "/" not in str(text):
            raise ValueError("no prefix length")
        address = IPv4Interface(text)
    except ValueError:
        raise ValueError(
            f"mesh address {text!r} is not an IPv4 address with a prefix length, such as 169.254.7.9/16"
        ) from None
    if address.is_loopback or address.is_multicast or address.is_reserved or address.is_unspecified:
        raise ValueError(f"mesh address {address} is loopback, multicast or reserved")
    if address.network.prefixlen < 31 and address.ip in (
        address.network.network_address,
        address.network.broadcast_address,
    ):
        raise ValueError(f"mesh address {address} is its network's network or broadcast address")
    if address.network.overlaps(subnet):
        raise ValueError(f"mesh address {address} overlaps the access point subnet {subnet}")
    return address


def _plan_mesh(
    node_id, subnet, mesh_interface, radio_supports_ap_and_mesh, mesh_point_interface, batman_interface, mesh_address
):
    if radio_supports_ap_and_mesh:
        ports: tuple[str, ...] = (_check_interface("mesh point interface", mesh_point_interface),)
        if mesh_interface is not None:
            # A cable too: batman-adv joins both into one mesh.
            ports += (_check_interface("mesh interface", mesh_interface),)
        mode, interface = "batman", _check_interface("batman interface", batman_interface)
    elif mesh_interface is not None:
        mode, interface, ports = "ethernet", _check_interface("mesh interface", mesh_interface), ()
    else:
        if mesh_address is not None:
            raise ValueError(
                "a mesh address needs a mesh link: a mesh interface, or a radio that does "
                "access point and mesh point together"
            )
        return None, None, (), None
    # The derived address is link-local, which an AP subnet never is (_check_subnet).
    address = _derive_mesh_address(node_id) if mesh_address is None else _check_mesh_address(mesh_address, subnet)
    return mode, interface, ports, address


def plan_network(
    node_id: str,
    *,
    ap_interface: str = "wlan0",
    ap_subnet: str | IPv4Network = DEFAULT_AP_SUBNET,
    passphrase: str | None = None,
    country: str = "US",
    channel: int = 6,
    lease_seconds: int = 12 * 3600,
    mesh_interface: str | None = None,
    radio_supports_ap_and_mesh: bool = False,
    radio_supports_second_ap: bool = False,
    owe_interface: str | None = None,
    ap_mac: str | None = None,
    ap_bridge: str = "br-ap",
    phone_connection_limit: int = _PHONE_CONNECTIONS,
    mesh_point_interface: str = "mesh0",
    batman_interface: str = "bat0",
    mesh_address: str | None = None,
    portal_port: int = 8080,
    broker_port: int = 1883,
    admin_ports: tuple[int, ...] = (22, 8883),
) -> NetworkPlan:
    """The validated network plan of unit `node_id`; raises ValueError naming the first bad input.

    Mesh: batman-adv over an 802.11s interface on the AP's radio when `radio_supports_ap_and_mesh` (learn it
    with detect_ap_and_mesh_support on `iw list`), else plain Ethernet on `mesh_interface`, else no mesh.
    The mesh address defaults to an IPv4 link-local address derived from the node id.

    Wi-Fi (wifi_mode, see WIFI_MODES): a passphrase gives WPA3-SAE with WPA2 transition; without one,
    Enhanced Open (OWE), in transition mode (an open BSS beside a hidden OWE BSS `owe_interface`, default
    `<ap_interface>-owe`, both bridged into `ap_bridge`) when `radio_supports_second_ap`: learn it with
    detect_interface_combination on `iw list`, counting the mesh point when the mesh uses this radio.
    `ap_mac`, the AP interface's MAC address, gives the OWE BSS an address of its own (owe_bssid).
    """
    node_id = _check_node_id(node_id)
    ap_interface = _check_interface("access point interface", ap_interface)
    subnet = _check_subnet(ap_subnet)
    country = _check_country(country)
    channel = _check_channel(channel, country)
    passphrase = _check_passphrase(passphrase)
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int) or lease_seconds < _MIN_LEASE_S:
        raise ValueError(f"lease {lease_seconds!r} must be at least {_MIN_LEASE_S} seconds")
    portal_port = _check_port("portal port", portal_port)
    broker_port = _check_port("broker port", broker_port)
    # 80 itself is fine (the image serves there; the redirect then keeps the port), DNS and DHCP are not.
    if portal_port in _AP_SERVICE_PORTS - {80}:
        raise ValueError(f"portal port {portal_port} is DNS or DHCP")
    blocked = tuple(sorted({broker_port, *(_check_port("admin port", port) for port in admin_ports)}))
    clash = set(blocked) & (_AP_SERVICE_PORTS | {portal_port})
    if clash:
        raise ValueError(
            f"port(s) {sorted(clash)} must stay open to phones (DNS 53, DHCP 67, HTTP 80, the "
            f"portal {portal_port}): they cannot be the broker's or admin ports"
        )
    mesh_mode, mesh_link, mesh_ports, address = _plan_mesh(
        node_id,
        subnet,
        mesh_interface,
        radio_supports_ap_and_mesh,
        mesh_point_interface,
        batman_interface,
        mesh_address,
    )
    wifi_mode = _choose_wifi_mode(passphrase, radio_supports_second_ap)
    ap_bridge = _check_interface("access point bridge", ap_bridge)
    owe_link: str | None = None
    if wifi_mode == "owe-transition":
        default_owe = ap_interface[: _MAX_IFNAME - len(_OWE_SUFFIX)] + _OWE_SUFFIX
        owe_link = _check_interface("OWE interface", default_owe if owe_interface is None else owe_interface)
    # The bridge's name counts in every mode: an apply without OWE transition removes a bridge of that name.
    names = [ap_interface, ap_bridge, *([owe_link] if owe_link else []), *([mesh_link] if mesh_link else [])]
    names += mesh_ports
    if len(set(names)) != len(names):
        raise ValueError(f"the access point and mesh interfaces must differ: {names}")
    unit_address = subnet.network_address + 1
    listeners: tuple[tuple[str, int], ...] = (("127.0.0.1", broker_port),)
    if address is not None:
        listeners += ((str(address.ip), broker_port),)
    return NetworkPlan(
        node_id=node_id,
        ap_interface=ap_interface,
        ap_subnet=subnet,
        unit_address=unit_address,
        dhcp_range=_choose_dhcp_range(subnet),
        lease_seconds=lease_seconds,
        ssid=f"iplm-{node_id[-4:]}",
        passphrase=passphrase,
        country=country,
        channel=channel,
        wifi_mode=wifi_mode,
        owe_interface=owe_link,
        owe_ssid=f"iplm-{node_id[-4:]}{_OWE_SUFFIX}" if owe_link else None,
        owe_bssid=_derive_owe_bssid(ap_mac) if owe_link else None,
        ap_bridge=ap_bridge,
        phone_interface=ap_bridge if owe_link else ap_interface,
        phone_connection_limit=_check_connection_limit(phone_connection_limit),
        mesh_mode=mesh_mode,
        mesh_interface=mesh_link,
        mesh_ports=mesh_ports,
        mesh_address=address,
        portal_port=portal_port,
        broker_port=broker_port,
        captive_api_url=f"http://{unit_address}/captive-portal/api",
        admin_ports=blocked,
        broker_listeners=listeners,
    )
