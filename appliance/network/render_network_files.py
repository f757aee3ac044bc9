"""Render every config file of the unit's network from its plan."""

from __future__ import annotations

from pathlib import Path

from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.network.network_types import BROKER_PASSWORD_FILE, DEFAULT_LEASE_FILE, NetworkPlan
from appliance.network.render_dnsmasq_conf import render_dnsmasq_conf
from appliance.network.render_hostapd_conf import render_hostapd_conf
from appliance.network.render_nftables_ruleset import render_nftables_ruleset


def render_network_files(
    plan: NetworkPlan,
    *,
    config_dir: Path | str,
    lease_file: Path | str = DEFAULT_LEASE_FILE,
    broker_user: str | None = "mosquitto",
) -> dict[str, str]:
    """{"hostapd" | "dnsmasq" | "nftables" | "mosquitto": file text}; file names are CONFIG_FILES.

    mosquitto listens on localhost and the mesh address only, with the password file
    `<config_dir>/mosquitto.passwd` (written by write_broker_credentials once the unit has the mesh key).
    """
    return {
        "hostapd": render_hostapd_conf(plan),
        "dnsmasq": render_dnsmasq_conf(plan, lease_file=lease_file),
        "nftables": render_nftables_ruleset(plan),
        "mosquitto": render_mosquitto_conf(
            listeners=list(plan.broker_listeners),
            password_file=Path(config_dir) / BROKER_PASSWORD_FILE,
            user=broker_user,
        ),
    }
