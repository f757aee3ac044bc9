import pytest

from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_link_password import derive_mesh_link_password
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.network.plan_network import plan_network
from appliance.network.render_mesh_point_conf import render_mesh_point_conf

KEY = parse_mesh_key(create_mesh_key())


def _plan(**kwargs):
    return plan_network("0123456789abcdef", radio_supports_ap_and_mesh=True, **kwargs)


def test_every_unit_of_a_mesh_renders_the_same_encrypted_mesh_network():
    password = derive_mesh_link_password(KEY)
    mesh_id = derive_mesh_secrets(KEY).mesh_id
    one = render_mesh_point_conf(_plan(channel=11), mesh_id=mesh_id, sae_password=password)
    other = render_mesh_point_conf(
        plan_network("fedcba9876543210", radio_supports_ap_and_mesh=True, channel=11),
        mesh_id=mesh_id,
        sae_password=password,
    )
    assert one == other  # nothing unit-specific: the units find each other on it
    assert f'ssid="iplm-mesh-{mesh_id}"' in one and "mode=5" in one and "frequency=2462" in one
    assert "key_mgmt=SAE" in one and f'sae_password="{password}"' in one and "ieee80211w=2" in one
    assert "mesh_fwding=0" in one and "user_mpm=1" in one


def test_the_link_password_depends_on_the_key_only():
    assert derive_mesh_link_password(KEY) == derive_mesh_link_password(type(KEY)(secret=KEY.secret))
    other = parse_mesh_key(create_mesh_key())
    assert derive_mesh_link_password(KEY) != derive_mesh_link_password(other)
    assert len(derive_mesh_link_password(KEY)) == 64
    # Not the message key: a leaked Wi-Fi password does not let anyone seal mesh messages.
    assert derive_mesh_link_password(KEY) != derive_mesh_secrets(KEY).message_key.hex()


def test_no_mesh_point_without_a_radio_that_does_both():
    with pytest.raises(ValueError):
        render_mesh_point_conf(
            plan_network("0123456789abcdef", mesh_interface="eth0"), mesh_id="x" * 16, sae_password="p" * 64
        )
    with pytest.raises(ValueError):
        render_mesh_point_conf(_plan(), mesh_id="x" * 16, sae_password="short")


def test_network_apply_writes_the_mesh_point_config_once_the_unit_has_a_key(tmp_path):
    import os

    from appliance.cli.run_network_apply import MESH_POINT_CONF, _write_mesh_point_conf
    from appliance.mesh.key.store_mesh_key import store_mesh_key

    plan, config_dir, data_dir = _plan(), tmp_path / "etc", tmp_path / "data"
    config_dir.mkdir()
    data_dir.mkdir()
    assert "no mesh key yet" in _write_mesh_point_conf(plan, config_dir, data_dir)[0]
    assert not (config_dir / MESH_POINT_CONF).exists()
    store_mesh_key(data_dir, create_mesh_key())
    assert _write_mesh_point_conf(plan, config_dir, data_dir)[0].startswith("wrote")
    assert os.stat(config_dir / MESH_POINT_CONF).st_mode & 0o777 == 0o600
    assert _write_mesh_point_conf(plan, config_dir, data_dir) == []  # again: nothing to change


def test_the_mesh_point_beacons_at_the_access_points_interval():
    # One radio, both beaconing: drivers that require one interval refuse the mesh join otherwise (EBUSY).
    from appliance.network.render_hostapd_conf import render_hostapd_conf

    plan = _plan()
    mesh = render_mesh_point_conf(plan, mesh_id="00" * 8, sae_password=derive_mesh_link_password(KEY))
    ap_interval = [line for line in render_hostapd_conf(plan).splitlines() if line.startswith("beacon_int=")]
    assert ap_interval == ["beacon_int=100"]
    assert "    beacon_int=100" in mesh.splitlines()
