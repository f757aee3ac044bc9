import pytest
from pyroute2.netlink.exceptions import NetlinkError

from appliance.network.create_mesh_point import NL80211_IFTYPE_MESH_POINT, create_mesh_point
from appliance.network.network_errors import NetworkError


class _FakeIW:
    """Records what would go to nl80211; `refuse` makes the driver say no."""

    def __init__(self, refuse=False):
        self.calls, self.closed, self.refuse = [], False, refuse

    def add_interface(self, ifname, iftype, dev=None, phy=0):
        self.calls.append((ifname, iftype, dev))
        if self.refuse:
            raise NetlinkError(95, "Operation not supported")

    def close(self):
        self.closed = True


def test_adds_a_mesh_point_on_the_ap_radio():
    iw = _FakeIW()
    create_mesh_point("mesh0", 4, open_iw=lambda: iw)
    assert iw.calls == [("mesh0", NL80211_IFTYPE_MESH_POINT, 4)] and NL80211_IFTYPE_MESH_POINT == 7
    assert iw.closed


def test_a_radio_that_refuses_is_a_clear_error_and_the_handle_is_closed():
    iw = _FakeIW(refuse=True)
    with pytest.raises(NetworkError) as refused:
        create_mesh_point("mesh0", 4, open_iw=lambda: iw)
    assert refused.value.code == "no_mesh_point" and "mesh0" in refused.value.message
    assert iw.closed


def test_a_machine_without_wifi_is_a_clear_error():
    # The real nl80211 on this machine: no Wi-Fi radio, no nl80211 family.
    with pytest.raises(NetworkError) as refused:
        create_mesh_point("mesh0", 1)
    assert refused.value.code == "no_mesh_point"
