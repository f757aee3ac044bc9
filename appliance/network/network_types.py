"""Data shapes of the unit's network: the plan, what applying it changed, config checks, radio combinations.

The access point (AP) is the phones' network: the unit answers DHCP and DNS there, every name resolves to
the unit, port 80 goes to the portal, everything else is refused at once. The mesh link carries the units'
own traffic (MQTT between brokers, model pieces); AP rules never apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

# Windows NCSI resolves this name and expects exactly this address; any other answer reads "no internet".
NCSI_NAME = "dns.msftncsi.com"
NCSI_ADDRESS = IPv4Address("131.107.255.255")

# File names under config_dir (/etc/iplm on the image), by the service that reads each one.
CONFIG_FILES = {
    "hostapd": "hostapd.conf",
    "dnsmasq": "dnsmasq.conf",
    "nftables": "iplm.nft",
    "mosquitto": "mosquitto.conf",
    "mosquitto_acl": "mosquitto.acl",
}
# The unit's mesh certificate, key and CA, made by iplm serve once the unit has a mesh key (ensure_unit_identity):
# <data dir>/mesh/tls on the image.
DEFAULT_TLS_DIR = "/var/lib/iplm/mesh/tls"
# tmpfs: the phones' MAC addresses never reach the SD card and are gone after a reboot.
DEFAULT_LEASE_FILE = "/run/iplm/dnsmasq.leases"

MESH_MODES = ("batman", "ethernet")

# The access point's and the mesh point's beacon interval, in TU. Radios that do AP and mesh point together
# (mac80211_hwsim, ath9k, mt76...) require one interval for every beaconing interface
# (beacon_int_infra_match): mesh's own default (1000 TU) against hostapd's (100) makes the kernel refuse to
# join the mesh (EBUSY).
BEACON_INTERVAL_TU = 100

# How the access point protects phones from each other and from anyone in radio range (NetworkPlan.wifi_mode):
# - "owe-transition": Wi-Fi Enhanced Open (OWE) on a hidden BSS, plus an open BSS that points phones to it
#   and serves only phones without OWE; needs a radio that runs two access points at once.
# - "owe": Enhanced Open only, on a radio that runs one access point: every phone's traffic is encrypted
#   with its own key; phones without OWE (Android 9 and older, old laptops) cannot join. An open network
#   would let anyone nearby read every chat and session cookie, so it is not offered; an owner who must
#   serve such phones sets a passphrase, which every phone can use.
# - "sae-transition": a passphrase: WPA3-SAE, and WPA2-PSK for phones without WPA3.
WIFI_MODES = ("owe-transition", "owe", "sae-transition")


DEFAULT_AP_SUBNET = "198.18.0.0/24"  # why this range: README, "Network"


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the unit's network setup needs, validated (made by plan_network)."""

    node_id: str
    ap_interface: str  # the radio's (first) access point interface: hostapd's interface=
    ap_subnet: IPv4Network
    unit_address: IPv4Address  # the unit on the AP: router, DNS server, portal
    dhcp_range: tuple[IPv4Address, IPv4Address]
    lease_seconds: int
    ssid: str
    passphrase: str | None = field(repr=False)  # None: no passphrase, Enhanced Open (wifi_mode)
    country: str  # ISO 3166-1 alpha-2, upper case
    channel: int  # 2.4 GHz, hw_mode g
    wifi_mode: str  # one of WIFI_MODES
    owe_interface: str | None  # "owe-transition" only: the hidden OWE BSS's interface (hostapd creates it)
    owe_ssid: str | None  # "owe-transition" only: the hidden OWE BSS's SSID
    owe_bssid: str | None  # "owe-transition" with the radio's MAC known: the OWE BSS's own address
    # "owe-transition": both BSS interfaces are ports of this bridge (hostapd's bridge=), which holds the
    # unit's address, DHCP, DNS and every AP rule; otherwise unused (and removed if an earlier plan made it).
    ap_bridge: str
    phone_interface: str  # where phones' packets arrive: ap_bridge in "owe-transition", else ap_interface
    phone_connection_limit: int  # TCP connections to the portal one phone address may hold at once
    mesh_mode: str | None  # "batman" (802.11s + batman-adv), "ethernet", None (no mesh)
    mesh_interface: str | None  # the interface that carries the mesh's IP: bat0, or the Ethernet port
    mesh_ports: tuple[str, ...]  # batman only: batman-adv's hard interfaces (802.11s, and Ethernet if given)
    mesh_address: IPv4Interface | None
    portal_port: int
    broker_port: int
    captive_api_url: str  # RFC 8908 API, handed out in DHCP option 114 (RFC 8910)
    admin_ports: tuple[int, ...]  # TCP/UDP ports AP clients must not reach (silently dropped)
    broker_listeners: tuple[tuple[str, int], ...]  # mosquitto: localhost and the mesh address only


@dataclass(frozen=True)
class NetworkChanges:
    """What apply_network did. Nothing changed: changes and reload are empty, and the value is falsy.

    pending is not a change: it repeats on every call until the missing piece (an interface) is there.
    """

    changes: tuple[str, ...] = ()  # one human line per change made
    reload: tuple[str, ...] = ()  # services whose config changed: restart them (systemd runs them)
    pending: tuple[str, ...] = ()  # what could not be done yet, e.g. a mesh point interface not created

    def __bool__(self) -> bool:
        return bool(self.changes or self.reload)


@dataclass(frozen=True)
class ConfigCheck:
    """One rendered file checked by its own program. ok None: not checked (program missing, no isolation)."""

    name: str  # "hostapd", "dnsmasq", "nftables", "mosquitto"
    program: str  # the command that checked it
    ok: bool | None
    detail: str  # the program's own words: its error lines, or why it was not checked


@dataclass(frozen=True)
class InterfaceCombination:
    """One line of `iw list` "valid interface combinations".

    limits: ((interface types, at most this many of them together), ...); total: interfaces in all;
    channels: distinct channels in use at once.
    """

    limits: tuple[tuple[frozenset[str], int], ...]
    total: int
    channels: int


@dataclass(frozen=True)
class RadioCapabilities:
    """One radio (wiphy) from `iw list`: its supported interface modes and valid interface combinations."""

    phy: str
    modes: frozenset[str]
    combinations: tuple[InterfaceCombination, ...]
