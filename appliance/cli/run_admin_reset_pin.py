"""`iplm admin reset-pin`: for an owner who lost the PIN (needs access to the unit's data dir)."""

from __future__ import annotations

from appliance.admin.ensure_admin_pin import ensure_admin_pin
from appliance.cli.open_unit_store import open_unit_store


def run_admin_reset_pin(args) -> int:
    """Replace the admin PIN with a new random one and print it."""
    open_unit_store(args.data_dir)
    print(f"new admin PIN: {ensure_admin_pin(reset=True)}")
    return 0
