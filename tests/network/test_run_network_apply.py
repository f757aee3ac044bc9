"""`iplm network apply`: --dry-run prints and changes nothing; a real run applies once, then has nothing to do."""

from __future__ import annotations

import argparse
import os
import shutil

import pytest

from appliance.cli.run_network_apply import run_network_apply
from tests.network.start_netns_lab import start_netns_lab


def _make_args(tmp_path, **overrides) -> argparse.Namespace:
    # What `iplm network apply` parses to (see the parser in appliance/cli/main.py).
    values = {
        "ap_interface": "wlan0",
        "ap_subnet": "198.18.0.0/24",
        "passphrase": None,
        "passphrase_file": None,
        "country": "US",
        "channel": 6,
        "mesh_interface": None,
        "mesh_address": None,
        "mesh_radio": "no",
        "config_dir": str(tmp_path / "etc"),
        "lease_file": str(tmp_path / "run" / "leases"),
        "data_dir": str(tmp_path / "data"),
        "netns": None,
        "dry_run": False,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_dry_run_prints_the_plan_and_files_and_changes_nothing(tmp_path, capsys):
    assert (
        run_network_apply(_make_args(tmp_path, dry_run=True, passphrase="correct horse battery", mesh_interface="eth0"))
        == 0
    )
    out = capsys.readouterr().out
    assert "ssid: iplm-0000" in out, "no node id yet: a placeholder, not a new identity"
    assert "unit_address: 198.18.0.1" in out and "mesh_mode: ethernet" in out
    for name in ("hostapd.conf", "dnsmasq.conf", "iplm.nft", "mosquitto.conf"):
        assert f"== {tmp_path / 'etc' / name} ==" in out
    assert "correct horse battery" not in out and "wpa_passphrase=********" in out
    assert "wifi_mode: sae-transition" in out and "wpa_key_mgmt=WPA-PSK SAE" in out
    assert "tcp dport 80 redirect to :8080" in out and "address=/#/198.18.0.1" in out
    assert not (tmp_path / "etc").exists() and not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_dry_run_uses_the_units_node_id(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "node_id").write_text("00112233445566ab\n")
    assert run_network_apply(_make_args(tmp_path, dry_run=True)) == 0
    assert "ssid: iplm-66ab" in capsys.readouterr().out


def test_a_passphrase_file_is_read_without_its_newline(tmp_path, capsys):
    secret = tmp_path / "psk"
    secret.write_text("from a file 123\n")
    assert run_network_apply(_make_args(tmp_path, dry_run=True, passphrase_file=str(secret))) == 0
    assert "wpa=2" in capsys.readouterr().out


def test_auto_mesh_radio_on_an_interface_without_a_radio_means_ethernet(tmp_path, capsys):
    args = _make_args(tmp_path, dry_run=True, mesh_radio="auto", ap_interface="nosuchwlan9", mesh_interface="eth0")
    assert run_network_apply(args) == 0
    captured = capsys.readouterr()
    assert "nosuchwlan9 is not a Wi-Fi interface here" in captured.err and "mesh_mode: ethernet" in captured.out


def test_without_a_passphrase_the_plan_says_enhanced_open_and_never_an_open_network(tmp_path, capsys):
    # No radio here to run a second access point: OWE only (transition mode needs two APs on the radio).
    assert run_network_apply(_make_args(tmp_path, dry_run=True, ap_interface="nosuchwlan9")) == 0
    captured = capsys.readouterr()
    assert "Enhanced Open (OWE) only unless a passphrase is set" in captured.err
    assert "wifi_mode: owe" in captured.out and "passphrase: (none: Enhanced Open)" in captured.out
    assert "wpa_key_mgmt=OWE" in captured.out and "wpa=0" not in captured.out


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"passphrase": "short"}, "8-63"),
        ({"ap_subnet": "192.168.1.0/30"}, "/16 to /28"),
        ({"country": "Germany"}, "two-letter"),
    ],
)
def test_bad_input_exits_2_with_the_reason(tmp_path, capsys, overrides, message):
    assert run_network_apply(_make_args(tmp_path, dry_run=True, **overrides)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "etc").exists()


@pytest.mark.netns
@pytest.mark.timeout(60)
def test_apply_in_a_namespace_then_nothing_to_change(tmp_path, capsys):
    if os.geteuid() != 0 or shutil.which("nft", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("needs root and nftables (deselect with -m 'not netns')", pytrace=False)
    with start_netns_lab() as lab:
        ns = lab.add("cli")
        lab.cable(ns, "ap0", ns, "ph0")
        args = _make_args(tmp_path, ap_interface="ap0", netns=ns, passphrase="correct horse battery")
        assert run_network_apply(args) == 0
        first = capsys.readouterr().out
        assert "added 198.18.0.1/24 to ap0" in first and "restart: hostapd dnsmasq mosquitto" in first
        assert (tmp_path / "data" / "node_id").exists()
        assert run_network_apply(args) == 0
        assert capsys.readouterr().out.strip() == "nothing to change"


def _make_sys_class_net(root, links: dict[str, tuple[str | None, int]]):
    # /sys/class/net as the kernel lays it out: <link>/ifindex, and <link>/phy80211/name for a Wi-Fi radio.
    for name, (phy, index) in links.items():
        (root / name).mkdir(parents=True)
        (root / name / "ifindex").write_text(f"{index}\n")
        if phy is not None:
            (root / name / "phy80211").mkdir()
            (root / name / "phy80211" / "name").write_text(f"{phy}\n")
    return root


def test_auto_picks_the_first_radios_own_interface_not_the_ones_made_later(tmp_path):
    from appliance.cli.run_network_apply import _find_radio

    links = {
        "eth0": (None, 2),
        "mesh0": ("phy0", 9),  # made on phy0 by an earlier apply: sorts before wlp1s0, and is not the radio
        "wlp1s0": ("phy0", 3),
        "wlx00c0ca": ("phy10", 4),
        "wlan2": ("phy2", 5),
    }
    assert _find_radio(_make_sys_class_net(tmp_path / "net", links)) == "wlp1s0"
    assert _find_radio(_make_sys_class_net(tmp_path / "wired", {"lo": (None, 1), "enp0s3": (None, 2)})) is None
    assert _find_radio(tmp_path / "missing") is None


def test_auto_without_a_radio_serves_on_ethernet_and_says_so(tmp_path, capsys, monkeypatch):
    import appliance.cli.run_network_apply as module

    monkeypatch.setattr(module, "_find_radio", lambda: None)
    serve_env = tmp_path / "run" / "serve.env"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / module.AP_MARKER).write_text("wlan0\n")  # from a boot that still had its radio
    assert run_network_apply(_make_args(tmp_path, ap_interface="auto", serve_env=str(serve_env))) == 0
    assert "no Wi-Fi radio" in capsys.readouterr().out
    assert serve_env.read_text() == "IPLM_SERVE_NETWORK_ARGS=\n"
    assert not (tmp_path / "run" / module.AP_MARKER).exists(), "hostapd and dnsmasq must not start"
    assert not (tmp_path / "etc").exists(), "nothing rendered without a radio"


def test_the_serve_env_carries_the_portal_the_subnet_and_the_mesh_address(tmp_path):
    from appliance.cli.run_network_apply import AP_MARKER, MESH_POINT_MARKER, _write_serve_env
    from appliance.network.plan_network import plan_network

    plan = plan_network("00112233445566ab", ap_interface="wlp1s0", mesh_interface="eth0", portal_port=80)
    path = tmp_path / "serve.env"
    _write_serve_env(path, plan)
    lines = path.read_text().splitlines()
    assert lines[0] == (
        f"IPLM_SERVE_NETWORK_ARGS=--portal-url http://198.18.0.1/ --ap-subnet 198.18.0.0/24 "
        f"--mesh-address {plan.mesh_address.ip}"
    )
    assert lines[1] == "IPLM_AP_INTERFACE=wlp1s0"
    assert (tmp_path / AP_MARKER).read_text() == "wlp1s0\n"
    assert not (tmp_path / MESH_POINT_MARKER).exists(), "an Ethernet mesh has no mesh point to join"


def test_the_serve_env_names_the_mesh_point_only_where_the_radio_made_one(tmp_path):
    from appliance.cli.run_network_apply import AP_MARKER, MESH_POINT_MARKER, _write_serve_env
    from appliance.network.plan_network import plan_network

    plan = plan_network("00112233445566ab", ap_interface="wlan0", radio_supports_ap_and_mesh=True, portal_port=80)
    net = tmp_path / "net"
    (net / "wlan0").mkdir(parents=True)
    path = tmp_path / "run" / "serve.env"
    _write_serve_env(path, plan, net)  # the radio refused the mesh point: no mesh0
    assert "IPLM_MESH_POINT" not in path.read_text() and not path.with_name(MESH_POINT_MARKER).exists()
    (net / "mesh0").mkdir()
    _write_serve_env(path, plan, net)
    assert "IPLM_MESH_POINT=mesh0" in path.read_text().splitlines()
    assert path.with_name(MESH_POINT_MARKER).read_text() == "mesh0\n"
    _write_serve_env(path, None, net)  # a later boot without the radio: neither marker stays
    assert not path.with_name(MESH_POINT_MARKER).exists() and not path.with_name(AP_MARKER).exists()


def test_the_portal_port_reaches_the_firewall(tmp_path, capsys):
    assert run_network_apply(_make_args(tmp_path, dry_run=True, portal_port=80)) == 0
    assert "tcp dport 80 redirect to :80" in capsys.readouterr().out
