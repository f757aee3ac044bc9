"""Render every config file of the unit's network from its plan."""

from __future__ import annotations

from pathlib import Path

from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.network.network_types import CONFIG_FILES, DEFAULT_LEASE_FILE, DEFAULT_TLS_DIR, NetworkPlan
from appliance.network.render_dnsmasq_conf import render_dnsmasq_conf
from appliance.network.render_hostapd_conf import render_hostapd_conf
from appliance.network.render_nftables_ruleset import render_nftables_ruleset


def render_network_files(
    plan: NetworkPlan,
    *,
    config_dir: Path | str,
    lease_file: Path | str = DEFAULT_LEASE_FILE,
    broker_user: str | None = "mosquitto",
    tls_dir: Path | str = DEFAULT_TLS_DIR,
) -> dict[str, str]:
    """{"hostapd" | "dnsmasq" | "nftables" | "mosquitto" | "mosquitto_acl": file text}; file names are
    CONFIG_FILES.

    mosquitto listens on localhost and the mesh address only, for clients with a certificate of the mesh
    (the unit's own in `tls_dir`, made once it has the mesh key), under the ACL `<config_dir>/mosquitto.acl`.
    mosquitto 2.0 reads its key after it drops to `broker_user`: that account must read `tls_dir`.
    """
    return {
        "hostapd": render_hostapd_conf(plan),
        "dnsmasq": render_dnsmasq_conf(plan, lease_file=lease_file),
        "nftables": render_nftables_ruleset(plan),
        "mosquitto": render_mosquitto_conf(
            listeners=list(plan.broker_listeners),
            tls_dir=tls_dir,
            acl_file=Path(config_dir) / CONFIG_FILES["mosquitto_acl"],
            user=broker_user,
        ),
        "mosquitto_acl": render_mosquitto_acl(),
    }
