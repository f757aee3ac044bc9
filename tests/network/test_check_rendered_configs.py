"""The rendered configs pass the checks of the programs that read them, and broken ones do not.

hostapd and mosquitto run in a throwaway network namespace (no radio, loopback down): they read and
check the whole file, then fail to start, touching nothing.
"""

from __future__ import annotations

import shutil

import pytest

from appliance.network.check_rendered_configs import check_rendered_configs
from appliance.network.network_types import CONFIG_FILES
from appliance.network.plan_network import plan_network
from appliance.network.render_network_files import render_network_files

NODE = "0123456789abcdef"
PLANS = {
    "owe": plan_network(NODE),
    "owe-transition": plan_network(NODE, radio_supports_second_ap=True, ap_mac="00:11:22:33:44:55"),
    "owe-transition-long-name": plan_network(NODE, radio_supports_second_ap=True, ap_interface="wlx00c0ca123456"),
    "sae-mesh": plan_network(NODE, passphrase="correct horse battery", mesh_interface="eth0", country="DE", channel=13),
    "batman-small-subnet": plan_network(
        NODE, ap_subnet="10.99.0.16/28", radio_supports_ap_and_mesh=True, lease_seconds=900
    ),
}
PROGRAMS = {"hostapd": "hostapd", "dnsmasq": "dnsmasq", "nftables": "nft", "mosquitto": "mosquitto"}


def _require(name: str) -> None:
    if shutil.which(PROGRAMS[name], path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.skip(f"{PROGRAMS[name]} is not installed")


def _write_files(tmp_path, texts: dict[str, str]) -> dict:
    files = {}
    for name, text in texts.items():
        files[name] = tmp_path / CONFIG_FILES[name]
        files[name].write_text(text, encoding="utf-8")
    return files


def _check_one(tmp_path, name: str, text: str):
    _require(name)
    (check,) = check_rendered_configs(_write_files(tmp_path, {name: text}))
    if check.ok is None:
        pytest.skip(f"{check.program} could not check here: {check.detail}")
    return check


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_rendered_config_passes_its_programs_check(tmp_path, plan_name, name):
    texts = render_network_files(PLANS[plan_name], config_dir=tmp_path, lease_file=tmp_path / "leases")
    check = _check_one(tmp_path, name, texts[name])
    assert check.ok, f"{check.program} rejects the rendered {name} config:\n{check.detail}\n\n{texts[name]}"


@pytest.mark.parametrize(
    "name, edit, expected",
    [
        ("dnsmasq", lambda text: text + "dhcp-range=198.18.0.10,nonsense\n", "bad dhcp-range"),
        ("dnsmasq", lambda text: text + "no-such-option\n", "bad option"),
        ("nftables", lambda text: text.replace("redirect to :8080", "redirect to :80800"), ""),
        ("nftables", lambda text: text.replace("reject with tcp reset", "reject with tcp rest", 1), ""),
        ("hostapd", lambda text: text + "wpa=2\nwpa_passphrase=short\nwpa_key_mgmt=WPA-PSK\n", "passphrase length"),
        ("hostapd", lambda text: text + "no_such_item=1\n", "unknown configuration item"),
        ("hostapd", lambda text: text.replace("hw_mode=g", "hw_mode=q"), "hw_mode"),
        ("mosquitto", lambda text: text + "no_such_option true\n", "Unknown configuration variable"),
    ],
)
def test_a_broken_config_is_caught_with_the_programs_own_words(tmp_path, name, edit, expected):
    texts = render_network_files(PLANS["owe"], config_dir=tmp_path, lease_file=tmp_path / "leases")
    check = _check_one(tmp_path, name, edit(texts[name]))
    assert check.ok is False, f"{check.program} accepted a broken {name} config"
    assert check.detail and expected in check.detail


@pytest.mark.parametrize(
    "plan_name, edit, expected",
    [
        # A key management hostapd does not know (a typo, or a hostapd built without OWE).
        ("owe-transition", lambda text: text.replace("wpa_key_mgmt=OWE", "wpa_key_mgmt=OWE-TRANSITION"), "key_mgmt"),
        ("owe", lambda text: text.replace("wpa_key_mgmt=OWE", "wpa_key_mgmt=OWE WPA-PSK"), "errors found"),
        ("owe-transition", lambda text: text.replace("ssid=iplm-cdef-owe", "ssid="), "invalid SSID"),
        ("owe-transition", lambda text: text.replace("owe_transition_ifname", "owe_transition_iface"), "unknown"),
        ("owe-transition", lambda text: text.replace("bssid=02:11:22:33:44:55", "bssid=02:11:22:33:44"), "bssid"),
        ("sae-mesh", lambda text: text.replace("wpa_passphrase=correct horse battery\n", ""), "errors found"),
        ("sae-mesh", lambda text: text.replace("wpa_passphrase=correct horse battery", "wpa_passphrase=short"), ""),
        # hostapd reads ieee80211w and sae_pwe with atoi ("two" is 0): the renderer's own tests pin those.
    ],
)
def test_a_broken_owe_or_sae_config_is_caught(tmp_path, plan_name, edit, expected):
    text = render_network_files(PLANS[plan_name], config_dir=tmp_path, lease_file=tmp_path / "leases")["hostapd"]
    broken = edit(text)
    assert broken != text, "the edit must change the rendered config"
    check = _check_one(tmp_path, "hostapd", broken)
    assert check.ok is False, f"hostapd accepted a broken config:\n{broken}"
    assert expected in check.detail


def test_only_known_files_can_be_checked(tmp_path):
    with pytest.raises(ValueError, match="no checker"):
        check_rendered_configs({"squid": tmp_path / "squid.conf"})


def test_an_acl_line_mosquitto_would_skip_is_refused(tmp_path):
    # mosquitto ignores an ACL line it cannot parse, which silently denies (or never denies) what it meant.
    good = tmp_path / "good.acl"
    good.write_text("# comment\n\npattern read iplm/+/presence/+\npattern write iplm/+/presence/%u\nuser x\n")
    bad = tmp_path / "bad.acl"
    bad.write_text("pattern read iplm/+/presence/+\npatern write iplm/#\ntopic readwrite a b\n")
    (ok,) = check_rendered_configs({"mosquitto_acl": good})
    (refused,) = check_rendered_configs({"mosquitto_acl": bad})
    assert ok.ok is True and refused.ok is False
    assert "line 2" in refused.detail and "line 3" in refused.detail and "line 1" not in refused.detail


def test_a_check_without_an_answer_in_time_is_not_a_verdict(tmp_path, monkeypatch):
    # Under QEMU TCG the first nft run loads its kernel modules for longer than any fixed timeout: that says
    # nothing about the file, so boot goes on (applying it still fails loudly if the kernel refuses it).
    import appliance.network.check_rendered_configs as module

    monkeypatch.setattr(module, "_run", lambda argv, timeout: (None, ""))
    path = tmp_path / "iplm.nft"
    path.write_text("table inet iplm {}\n")
    for check in check_rendered_configs({"nftables": path, "dnsmasq": path}):
        assert check.ok is None and "not checked: no answer within" in check.detail, check
