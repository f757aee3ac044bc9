"""`iplm`: serve the appliance, probe the device."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from appliance.cli.run_admin_reset_pin import run_admin_reset_pin
from appliance.cli.run_first_boot import run_first_boot
from appliance.cli.run_mesh_add import run_mesh_add
from appliance.cli.run_mesh_create import run_mesh_create
from appliance.cli.run_mesh_join import run_mesh_join
from appliance.cli.run_mesh_status import run_mesh_status
from appliance.cli.run_models_add import run_models_add
from appliance.cli.run_models_install import run_models_install
from appliance.cli.run_models_list import run_models_list
from appliance.cli.run_models_manifest import run_models_manifest
from appliance.cli.run_models_remove import run_models_remove
from appliance.cli.run_models_verify import run_models_verify
from appliance.cli.run_network_apply import run_network_apply
from appliance.cli.run_probe import run_probe
from appliance.cli.run_serve import run_serve
from appliance.engine.pool.pool_types import PoolLimits
from appliance.mesh.discovery.choose_ble_adapter import choose_ble_adapter
from appliance.network.network_types import DEFAULT_AP_SUBNET


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _network(text: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a network such as 198.18.0.0/24") from None


def _portal_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// URL (phones reach the portal over plain HTTP)")
    return text if text.endswith("/") else text + "/"


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _ble_adapter(text: str) -> str:
    try:
        choose_ble_adapter(text, sysfs=Path("/nonexistent"))  # only the check of the name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _probability(text: str) -> float:
    value = _parse_number(text)
    if not 0 <= value <= 2:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is out of range (0-2)")
    return value


def _seconds(text: str) -> float:
    value = _parse_number(text)
    # 0 would make the pool's watchdog spin and kill every reply; nan or inf would never see a hang.
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a number of seconds greater than 0")
    return value


def _add_engine_overrides(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine overrides (default: what the device probe recommends)")
    group.add_argument("--model", help="a GGUF file (llama.cpp) or an MLC model directory (MLC LLM)")
    group.add_argument("--model-lib", help="compiled MLC model library (.so) for this board")
    group.add_argument("--n-ctx", type=_positive_int, help="context size in tokens")
    group.add_argument("--max-tokens", type=_positive_int, help="default reply length in tokens")
    group.add_argument("--temperature", type=_probability, help="default temperature (0-2)")
    group.add_argument("--threads", type=_positive_int, help="CPU threads per engine worker")
    group.add_argument("--workers", type=_positive_int, help="engine worker processes")
    group.add_argument(
        "--sequences", type=_positive_int, help="chats each llama.cpp worker decodes together (1: one at a time)"
    )


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument("--from-dir", metavar="DIR", help="a local directory or USB stick holding the model's files")
    sources.add_argument("--mirror", metavar="BASE", help="a Hugging Face-layout mirror (BASE/REPO/resolve/REV/FILE)")
    sources.add_argument("--url", metavar="BASE", help="a plain HTTP directory holding the files (BASE/FILE)")


def _add_models_commands(commands) -> None:
    models = commands.add_parser("models", help="the model library").add_subparsers(
        dest="models_command", required=True
    )
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    listing = models.add_parser("list", parents=[data_dir], help="installed, partial and installable models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_models_list)
    install = models.add_parser("install", parents=[data_dir], help="install (or resume installing) a model")
    install.add_argument("model_id")
    install.add_argument("--workers", type=_positive_int, default=4, help="parallel range requests (default 4)")
    install.add_argument("--manifest", help="verify against this manifest file")
    _add_source_options(install)
    install.set_defaults(run=run_models_install)
    for name, run, text in (
        ("remove", run_models_remove, "remove a model's files"),
        ("verify", run_models_verify, "re-hash a model's pieces on disk"),
    ):
        command = models.add_parser(name, parents=[data_dir], help=text)
        command.add_argument("model_id")
        command.set_defaults(run=run)
    add = models.add_parser("add", parents=[data_dir], help="make a model installable by giving its manifest")
    add.add_argument("model_id")
    add.add_argument("--manifest", required=True, help="the model's manifest (from `iplm models manifest`)")
    _add_source_options(add)
    add.set_defaults(run=run_models_add)
    manifest = models.add_parser("manifest", help="print the manifest of a model directory or .gguf file")
    manifest.add_argument("dir")
    manifest.add_argument("--piece-size", type=_positive_int, help="bytes per piece (default 4 MiB)")
    manifest.add_argument("--output", help="write to this file instead of printing")
    manifest.set_defaults(run=run_models_manifest)


def _add_mesh_commands(commands) -> None:
    mesh = commands.add_parser("mesh", help="the mesh of units").add_subparsers(dest="mesh_command", required=True)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    create = mesh.add_parser("create", parents=[data_dir], help="start a new mesh and print its key")
    create.add_argument("--force", action="store_true", help="replace this unit's mesh key (it leaves its mesh)")
    create.set_defaults(run=run_mesh_create)
    join = mesh.add_parser("join", parents=[data_dir], help="join the mesh whose key is KEY ('-': read it from stdin)")
    join.add_argument("key", metavar="KEY")
    join.set_defaults(run=run_mesh_join)
    add = mesh.add_parser("add", parents=[data_dir], help="a peer to connect to where mDNS does not reach")
    add.add_argument("host", metavar="HOST[:PORT]")
    add.set_defaults(run=run_mesh_add)
    status = mesh.add_parser("status", parents=[data_dir], help="the units this unit sees")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=run_mesh_status)


def _add_network_commands(commands) -> None:
    network = commands.add_parser("network", help="the unit's Wi-Fi access point, mesh link and firewall")
    network_commands = network.add_subparsers(dest="network_command", required=True)
    apply = network_commands.add_parser("apply", help="set up links, addresses, configs and nftables (idempotent)")
    apply.add_argument(
        "--ap-interface",
        default="wlan0",
        help="the access point's interface (default wlan0); 'auto': the first Wi-Fi radio, and without one no "
        "access point (the unit serves on Ethernet)",
    )
    apply.add_argument(
        "--portal-port", type=_port, default=8080, help="the port iplm serve listens on (default 8080; 80 on the image)"
    )
    apply.add_argument(
        "--serve-env",
        metavar="FILE",
        help="also write the `iplm serve` options this plan implies (portal URL, phones' subnet, mesh address) as "
        "a systemd environment file (the image's iplm.service reads it)",
    )
    apply.add_argument(
        "--ap-subnet",
        default=DEFAULT_AP_SUBNET,
        help="the phones' subnet, /16 to /28 (default 198.18.0.0/24; the unit is its first address)",
    )
    secret = apply.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase",
        help="WPA3-SAE/WPA2 passphrase, 8-63 printable ASCII characters (default: none, Enhanced Open)",
    )
    secret.add_argument("--passphrase-file", help="read the Wi-Fi passphrase from the first line of this file")
    apply.add_argument("--country", default="US", help="two-letter country code for the radio (default US)")
    apply.add_argument("--channel", type=_positive_int, default=6, help="2.4 GHz channel, 1-13 (default 6)")
    apply.add_argument(
        "--mesh-interface",
        help="Ethernet interface for the mesh (when the radio cannot run AP and mesh point together)",
    )
    apply.add_argument(
        "--mesh-address", help="the unit's mesh address with prefix (default: link-local from the node id)"
    )
    apply.add_argument(
        "--mesh-radio",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the AP's radio also runs an 802.11s mesh point (default: ask `iw list`)",
    )
    apply.add_argument("--config-dir", default="/etc/iplm", help="where the config files go (default /etc/iplm)")
    apply.add_argument(
        "--lease-file", default="/run/iplm/dnsmasq.leases", help="dnsmasq's lease file (default on tmpfs)"
    )
    apply.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    apply.add_argument("--netns", help="apply inside this network namespace (`ip netns`; for labs and tests)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan and the rendered files; change nothing")
    apply.set_defaults(run=run_network_apply)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iplm", description="Interplanetary Language Models: the appliance.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the portal and the engine")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 80 on the image)")
    serve.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    serve.add_argument(
        "--portal-url",
        type=_portal_url,
        help="on the unit's access point: the portal's URL (e.g. http://198.18.0.1/); turns on "
        "captive-portal answers. Leave it out in development",
    )
    serve.add_argument(
        "--ap-subnet",
        type=_network,
        help="the phones' subnet on the unit's Wi-Fi (default with --portal-url: 198.18.0.0/24): no admin from there",
    )
    serve.add_argument(
        "--admin-from-wifi",
        action="store_true",
        help="let phones on the unit's Wi-Fi reach the admin pages (an owner with only a phone)",
    )
    serve.add_argument("--mesh-address", help="this unit's address on the mesh link (no mesh without it)")
    serve.add_argument("--mesh-port", type=_port, default=1883, help="the mesh broker's port (default 1883)")
    serve.add_argument("--no-mesh-broker", action="store_true", help="mosquitto is run by systemd, not by iplm")
    serve.add_argument(
        "--ble-adapter",
        type=_ble_adapter,
        default="off",
        help="in a mesh, scan for and advertise to nearby units over Bluetooth LE on this adapter (hci0, ...); "
        "auto: the first one the kernel has; off (default): no BLE",
    )
    serve.add_argument(
        "--split-planner",
        choices=("rules", "model", "off"),
        default="rules",
        help="how prompts that suit it are cut into pieces answered in parallel: by rules (default), by the "
        "model (JSON output; the rules' cut wherever its plan fails the checks), or off (every prompt whole)",
    )
    serve.add_argument(
        "--hang-timeout",
        type=_seconds,
        default=120.0,
        help="seconds without a token before the engine counts as hung and restarts",
    )
    serve.add_argument(
        "--chats-per-device",
        type=_positive_int,
        default=PoolLimits.chats_per_client,
        help=f"chats one address may have running or waiting (default {PoolLimits.chats_per_client}); more get 429",
    )
    serve.add_argument(
        "--max-queued-chats",
        type=_positive_int,
        default=PoolLimits.max_queued,
        help=f"chats waiting for the engine, all devices together (default {PoolLimits.max_queued}); more get 503",
    )
    _add_engine_overrides(serve)
    serve.set_defaults(run=run_serve)
    probe = commands.add_parser("probe", help="print what the device probe finds and recommends")
    probe.add_argument("--json", action="store_true", help="machine-readable output")
    _add_engine_overrides(probe)
    probe.set_defaults(run=run_probe)
    _add_models_commands(commands)
    _add_network_commands(commands)
    _add_mesh_commands(commands)
    admin = commands.add_parser("admin", help="the unit's admin").add_subparsers(dest="admin_command", required=True)
    reset_pin = admin.add_parser("reset-pin", help="print a new random admin PIN")
    reset_pin.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    reset_pin.set_defaults(run=run_admin_reset_pin)
    first_boot = commands.add_parser(
        "first-boot", help="a flashed unit's first start: node id, hostname iplm-XXXX, admin PIN (as root)"
    )
    first_boot.add_argument("--data-dir", help="data directory (default: $IPLM_DATA or the XDG data dir)")
    first_boot.add_argument("--owner", help="the user iplm serve runs as: it gets the data dir")
    first_boot.add_argument("--pin-file", help="also write the PIN here (the image: a file on the boot partition)")
    first_boot.add_argument("--set-hostname", action="store_true", help="name the machine iplm-XXXX")
    first_boot.add_argument("--etc-dir", default="/etc", help=argparse.SUPPRESS)  # tests
    first_boot.set_defaults(run=run_first_boot)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `iplm` console script."""
    args = _build_parser().parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
