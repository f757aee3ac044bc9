"""Admin is the owner's: by default not reachable from the phones' Wi-Fi."""

from __future__ import annotations

from ipaddress import ip_address

from appliance.admin.admin_types import AdminHooks
from appliance.portal.portal_types import ApiError


def check_admin_reach(address: str | None, hooks: AdminHooks) -> None:
    """ApiError 403 "admin_not_here" when `address` is a phone on the unit's access point and the unit was
    not started to allow admin from there (--admin-from-wifi)."""
    if hooks.admin_from_phones or not hooks.phone_networks:
        return
    try:
        client = ip_address(address or "")
    except ValueError:
        client = None
    if client is None or any(client in network for network in hooks.phone_networks):
        raise ApiError(
            403,
            "The admin pages are not reachable from this unit's Wi-Fi: connect by Ethernet or "
            "through the mesh, or have the unit started with --admin-from-wifi.",
            code="admin_not_here",
        )
