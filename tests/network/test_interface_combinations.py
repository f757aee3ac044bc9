"""Reading `iw list` and deciding whether the AP's radio can also run an 802.11s mesh point."""

from __future__ import annotations

from appliance.network.detect_ap_and_mesh_support import detect_ap_and_mesh_support
from appliance.network.detect_interface_combination import detect_interface_combination
from appliance.network.network_types import InterfaceCombination
from appliance.network.read_interface_combinations import read_interface_combinations
from tests.network import iw_list_samples as samples


def test_modes_and_wrapped_combination_lines_are_read():
    (radio,) = read_interface_combinations(samples.ATH9K)
    assert radio.phy == "phy0"
    assert {"AP", "mesh point", "managed", "P2P-GO"} <= radio.modes
    # Bullets of other sections (ciphers, commands, HT overrides) are not modes.
    assert "new_interface" not in radio.modes and "join_mesh" not in radio.modes
    assert radio.combinations == (
        InterfaceCombination(
            limits=(
                (frozenset({"managed"}), 2048),
                (frozenset({"AP", "mesh point"}), 8),
                (frozenset({"P2P-client", "P2P-GO"}), 1),
            ),
            total=2048,
            channels=1,
        ),
    )


def test_several_combinations_per_radio():
    (radio,) = read_interface_combinations(samples.BRCMFMAC)
    assert [(c.total, c.channels) for c in radio.combinations] == [(3, 2), (4, 1)]
    assert radio.combinations[1].limits[1] == (frozenset({"AP"}), 1)
    assert "mesh point" not in radio.modes


def test_several_radios_in_one_output():
    radios = read_interface_combinations(samples.BRCMFMAC + samples.SEPARATE)
    assert [radio.phy for radio in radios] == ["phy0", "phy2"]
    assert detect_ap_and_mesh_support(radios, "phy2") and not detect_ap_and_mesh_support(radios, "phy0")


def test_ap_and_mesh_point_together():
    assert detect_ap_and_mesh_support(read_interface_combinations(samples.ATH9K), "phy0")
    assert detect_ap_and_mesh_support(read_interface_combinations(samples.SEPARATE), "phy2")


def test_mesh_point_only_instead_of_the_ap_is_not_enough():
    # "#{ AP, mesh point } <= 1": one interface of either type, never both.
    assert not detect_ap_and_mesh_support(read_interface_combinations(samples.EITHER), "phy1")


def test_no_mesh_point_no_combinations_or_another_radio_mean_no():
    assert not detect_ap_and_mesh_support(read_interface_combinations(samples.BRCMFMAC), "phy0")
    assert read_interface_combinations(samples.SINGLE)[0].combinations == ()
    assert not detect_ap_and_mesh_support(read_interface_combinations(samples.SINGLE), "phy3")
    assert not detect_ap_and_mesh_support(read_interface_combinations(samples.ATH9K), "phy7")
    assert read_interface_combinations("") == ()
    assert read_interface_combinations("command failed: No such device (-19)\n") == ()


def test_a_combination_of_one_interface_in_all_cannot_hold_both():
    text = samples.SEPARATE.replace("total <= 2", "total <= 1")
    assert not detect_ap_and_mesh_support(read_interface_combinations(text), "phy2")


def test_two_access_points_for_owe_transition_mode():
    two, with_mesh = ("AP", "AP"), ("AP", "AP", "mesh point")
    ath9k = read_interface_combinations(samples.ATH9K)
    assert detect_interface_combination(ath9k, "phy0", two) and detect_interface_combination(ath9k, "phy0", with_mesh)
    # One AP group of 1: AP beside a mesh point, but never a second AP (Enhanced Open only there).
    separate = read_interface_combinations(samples.SEPARATE)
    assert not detect_interface_combination(separate, "phy2", two)
    assert not detect_interface_combination(separate, "phy2", with_mesh)
    brcmfmac = read_interface_combinations(samples.BRCMFMAC)
    assert not detect_interface_combination(brcmfmac, "phy0", two)
    assert detect_interface_combination(brcmfmac, "phy0", ("AP",)), "one AP needs no combination"
    single = read_interface_combinations(samples.SINGLE)
    assert detect_interface_combination(single, "phy3", ("AP",)) and not detect_interface_combination(
        single, "phy3", two
    )
    assert not detect_interface_combination(ath9k, "phy7", ("AP",))


def test_two_access_points_need_room_in_the_total_too():
    text = samples.ATH9K.replace("total <= 2048", "total <= 2")
    radios = read_interface_combinations(text)
    assert detect_interface_combination(radios, "phy0", ("AP", "AP"))
    assert not detect_interface_combination(radios, "phy0", ("AP", "AP", "mesh point"))
    # "#{ AP, mesh point } <= 1": one interface of either type, so never two APs.
    assert not detect_interface_combination(read_interface_combinations(samples.EITHER), "phy1", ("AP", "AP"))
