"""apply_network inside a network namespace: links, addresses, files, table inet iplm; idempotence.

The "AP" and the Ethernet mesh link are veths inside the test's own namespace; nothing runs in or is
added to the root namespace.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess

import pytest
from pyroute2 import IPRoute

from appliance.network.apply_network import apply_network
from appliance.network.network_errors import NetworkError
from appliance.network.plan_network import plan_network
from appliance.network.render_network_files import render_network_files
from tests.network.start_netns_lab import start_netns_lab

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

NODE = "0123456789abcdef"


@pytest.fixture(scope="module", autouse=True)
def _require_root():
    if os.geteuid() != 0:
        pytest.fail(
            "tests/network netns tests need root: they create network namespaces and veths "
            "(run as root, or deselect with -m 'not netns')",
            pytrace=False,
        )
    missing = [tool for tool in ("ip", "nft", "unshare") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"needs iproute2, nftables and util-linux: {', '.join(missing)} not found", pytrace=False)


@pytest.fixture
def unit(tmp_path):
    """(namespace, config dir, apply(plan)) with veths ap0 (the AP) and me0 (an Ethernet mesh link)."""
    with start_netns_lab() as lab:
        ns = lab.add("unit")
        lab.cable(ns, "ap0", ns, "ph0")
        lab.cable(ns, "me0", ns, "me1")
        config_dir = tmp_path / "etc-iplm"

        def apply(plan):
            return apply_network(
                plan, config_dir=config_dir, netns=ns, lease_file=tmp_path / "run" / "leases", broker_user=None
            )

        yield ns, config_dir, apply


def _make_plan(**kwargs):
    kwargs.setdefault("ap_interface", "ap0")
    kwargs.setdefault("mesh_interface", "me0")
    kwargs.setdefault("mesh_address", "10.213.0.11/24")
    return plan_network(NODE, **kwargs)


def _list_ipv4(ns: str, ifname: str) -> set[str]:
    with IPRoute(netns=ns) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return {
            f"{msg.get_attr('IFA_LOCAL')}/{msg['prefixlen']}"
            for msg in ipr.get_addr(family=socket.AF_INET, index=index)
        }


def _check_up(ns: str, ifname: str) -> bool:
    with IPRoute(netns=ns) as ipr:
        return bool(ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0]["flags"] & 1)


def _run_nft(ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True, text=True)


def test_apply_sets_everything_up_and_a_second_apply_changes_nothing(unit, tmp_path):
    ns, config_dir, apply = unit
    with IPRoute(netns=ns) as ipr:  # leftovers: a stale AP address, and a mesh-link address not ours
        ipr.addr("add", index=ipr.link_lookup(ifname="ap0")[0], address="10.213.9.9", prefixlen=24)
        ipr.addr("add", index=ipr.link_lookup(ifname="me0")[0], address="10.213.50.5", prefixlen=24)
    plan = _make_plan(passphrase="correct horse battery")

    first = apply(plan)
    assert "removed 10.213.9.9/24 from ap0" in first.changes
    assert "added 198.18.0.1/24 to ap0" in first.changes and "set ap0 up" in first.changes
    assert first.reload == ("hostapd", "dnsmasq", "mosquitto") and first.pending == ()
    assert _list_ipv4(ns, "ap0") == {"198.18.0.1/24"}
    assert _list_ipv4(ns, "me0") == {"10.213.50.5/24", "10.213.0.11/24"}, "the mesh link's other addresses stay"
    assert _check_up(ns, "ap0") and _check_up(ns, "me0")
    listing = _run_nft(ns, "list", "table", "inet", "iplm").stdout
    assert 'iifname "ap0" tcp dport 80 redirect to :8080' in listing
    assert 'iifname "ap0" tcp dport 443 reject with tcp reset' in listing

    texts = render_network_files(plan, config_dir=config_dir, lease_file=tmp_path / "run" / "leases", broker_user=None)
    assert (config_dir / "hostapd.conf").read_text() == texts["hostapd"]
    assert (config_dir / "dnsmasq.conf").read_text() == texts["dnsmasq"]
    assert (config_dir / "iplm.nft").read_text() == texts["nftables"]
    assert (config_dir / "mosquitto.conf").read_text() == texts["mosquitto"]
    assert stat.S_IMODE((config_dir / "hostapd.conf").stat().st_mode) == 0o600, "it holds the passphrase"
    assert (tmp_path / "run").is_dir()

    second = apply(plan)
    assert second.changes == () and second.reload == () and not second
    assert _list_ipv4(ns, "ap0") == {"198.18.0.1/24"}
    assert _run_nft(ns, "list", "table", "inet", "iplm").stdout == listing


def test_a_changed_passphrase_rewrites_hostapd_conf_only(unit):
    ns, config_dir, apply = unit
    apply(_make_plan())
    changed = apply(_make_plan(passphrase="a new passphrase"))
    assert changed.changes == (f"wrote {config_dir / 'hostapd.conf'}",) and changed.reload == ("hostapd",)


def test_a_changed_subnet_moves_the_unit_address_and_the_rules(unit):
    ns, config_dir, apply = unit
    apply(_make_plan())
    changed = apply(_make_plan(ap_subnet="198.18.0.64/26"))
    assert "removed 198.18.0.1/24 from ap0" in changed.changes and "added 198.18.0.65/26 to ap0" in changed.changes
    assert changed.reload == ("dnsmasq",)
    assert _list_ipv4(ns, "ap0") == {"198.18.0.65/26"}
    assert "198.18.0.64/26" in _run_nft(ns, "list", "table", "inet", "iplm").stdout


def test_a_table_flushed_by_hand_is_loaded_again_and_other_tables_stay(unit):
    ns, config_dir, apply = unit
    assert _run_nft(ns, "add", "table", "inet", "someone_else").returncode == 0
    apply(_make_plan())
    assert _run_nft(ns, "flush", "table", "inet", "iplm").returncode == 0
    again = apply(_make_plan())
    assert again.changes == (f"loaded nftables table inet iplm from {config_dir / 'iplm.nft'}",)
    assert again.reload == ()
    assert "table inet someone_else" in _run_nft(ns, "list", "tables").stdout


def test_a_missing_ap_interface_is_an_error_and_changes_nothing(unit):
    ns, config_dir, apply = unit
    with pytest.raises(NetworkError, match="wlan9 does not exist"):
        apply(_make_plan(ap_interface="wlan9"))
    assert not config_dir.exists()
    assert _run_nft(ns, "list", "table", "inet", "iplm").returncode != 0


def test_a_missing_mesh_interface_is_pending_not_fatal(unit):
    ns, config_dir, apply = unit
    result = apply(_make_plan(mesh_interface="eth7"))
    assert result.pending == ("the mesh interface eth7 does not exist: no mesh address",)
    assert _list_ipv4(ns, "ap0") == {"198.18.0.1/24"}


def test_batman_mesh_over_the_mesh_point(unit):
    ns, config_dir, apply = unit
    probe = subprocess.run(["ip", "-n", ns, "link", "add", "batprobe", "type", "batadv"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this kernel has no batman-adv (modprobe batman-adv)")
    subprocess.run(["ip", "-n", ns, "link", "del", "batprobe"], check=True)
    plan = _make_plan(radio_supports_ap_and_mesh=True, mesh_interface=None, mesh_point_interface="me0")
    first = apply(plan)
    assert "created batman-adv interface bat0" in first.changes and "added me0 to bat0" in first.changes
    assert _list_ipv4(ns, "bat0") == {"10.213.0.11/24"} and _check_up(ns, "bat0")
    assert not apply(plan)


def test_owe_transition_puts_the_unit_on_a_bridge_that_hostapd_fills_and_back(unit):
    ns, config_dir, apply = unit
    apply(_make_plan())  # one BSS first: the unit's address on ap0
    plan = _make_plan(radio_supports_second_ap=True, owe_interface="ap0-owe")

    first = apply(plan)
    assert "created bridge br-ap" in first.changes and "added 198.18.0.1/24 to br-ap" in first.changes
    assert "removed 198.18.0.1/24 from ap0" in first.changes, "a second route to the phones' subnet"
    assert first.pending == ("ap0 and ap0-owe join br-ap when hostapd starts the access point",)
    assert _list_ipv4(ns, "br-ap") == {"198.18.0.1/24"} and _list_ipv4(ns, "ap0") == set()
    assert _check_up(ns, "br-ap")
    assert 'iifname "br-ap" tcp dport 80 redirect to :8080' in _run_nft(ns, "list", "table", "inet", "iplm").stdout
    bridge_table = _run_nft(ns, "list", "table", "bridge", "iplm").stdout
    assert 'iifname { "ap0", "ap0-owe" } drop' in bridge_table
    assert "interface=br-ap" in (config_dir / "dnsmasq.conf").read_text()

    # hostapd's part: it creates the OWE BSS's interface and puts both BSS in the bridge.
    subprocess.run(["ip", "-n", ns, "link", "add", "ap0-owe", "type", "veth", "peer", "name", "ph1"], check=True)
    for port in ("ap0", "ap0-owe"):
        subprocess.run(["ip", "-n", ns, "link", "set", port, "master", "br-ap"], check=True)
    settled = apply(plan)
    assert not settled and settled.pending == ()

    # A passphrase: one BSS again. The bridge and its table go, the address comes back to ap0.
    back = apply(_make_plan(passphrase="correct horse battery"))
    assert "removed bridge br-ap (no OWE transition mode)" in back.changes
    assert "deleted nftables table bridge iplm (no OWE transition mode)" in back.changes
    assert _list_ipv4(ns, "ap0") == {"198.18.0.1/24"}
    assert _run_nft(ns, "list", "table", "bridge", "iplm").returncode != 0
    with IPRoute(netns=ns) as ipr:
        assert not ipr.link_lookup(ifname="br-ap")
    assert not apply(_make_plan(passphrase="correct horse battery"))


def test_a_bridge_name_taken_by_another_kind_of_link_is_an_error(unit):
    ns, config_dir, apply = unit
    with pytest.raises(NetworkError, match="me0 exists and is not a bridge"):
        apply(_make_plan(radio_supports_second_ap=True, ap_bridge="me0", mesh_interface=None, mesh_address=None))
