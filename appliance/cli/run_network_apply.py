"""`iplm network apply`: set up the access point, the mesh link and the firewall from one plan."""

from __future__ import annotations

import dataclasses
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from appliance.mesh.identity.identity_types import IDENTITY_DIR
from appliance.mesh.key.derive_mesh_link_password import derive_mesh_link_password
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.network.apply_network import apply_network
from appliance.network.check_rendered_configs import check_rendered_configs
from appliance.network.detect_ap_and_mesh_support import detect_ap_and_mesh_support
from appliance.network.detect_interface_combination import detect_interface_combination
from appliance.network.network_errors import NetworkError
from appliance.network.network_types import CONFIG_FILES, DEFAULT_LEASE_FILE, NetworkPlan, RadioCapabilities
from appliance.network.plan_network import plan_network
from appliance.network.read_interface_combinations import read_interface_combinations
from appliance.network.render_mesh_point_conf import render_mesh_point_conf
from appliance.network.render_network_files import render_network_files
from appliance.store.load_node_id import load_node_id
from appliance.store.resolve_data_dir import resolve_data_dir
from appliance.write_file_atomically import write_file_atomically

_MASK = "********"
# Shown by --dry-run when the unit has no identity yet (load_node_id would create one: a change).
_PLACEHOLDER_NODE_ID = "0000000000000000"


def _read_passphrase(args) -> str | None:
    if getattr(args, "passphrase_file", None):
        # The first line only: editors add a final newline that is not part of the passphrase.
        lines = Path(args.passphrase_file).read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    return args.passphrase


def _read_radios(ap_interface: str) -> tuple[str | None, tuple[RadioCapabilities, ...], str]:
    """(the AP interface's phy, every radio from `iw list`, why there are none)."""
    try:
        phy = Path(f"/sys/class/net/{ap_interface}/phy80211/name").read_text(encoding="ascii").strip()
    except OSError:
        return None, (), f"{ap_interface} is not a Wi-Fi interface here"
    iw = shutil.which("iw") or shutil.which("iw", path="/usr/sbin:/sbin")
    if iw is None:
        return phy, (), "iw is not installed (Debian: iw)"
    result = subprocess.run([iw, "list"], capture_output=True, text=True, timeout=30)
    return phy, read_interface_combinations(result.stdout) if result.returncode == 0 else (), "iw list failed"


def _detect_radio(ap_interface: str, mesh_radio: str) -> tuple[bool, bool]:
    """(a mesh point on the AP's radio?, a second access point beside it, for OWE transition mode?)."""
    phy, radios, why = _read_radios(ap_interface)
    if mesh_radio == "auto":
        mesh = phy is not None and detect_ap_and_mesh_support(radios, phy)
        found = f"{phy} {'can' if mesh else 'cannot'} run AP and mesh point together (iw list)"
        print(f"mesh radio: {found if radios else why}{'' if mesh else ': Ethernet mesh'}", file=sys.stderr)
    else:
        mesh = mesh_radio == "yes"
    # The second AP must fit beside the mesh point when the mesh uses this radio too.
    wanted = ("AP", "AP", "mesh point") if mesh else ("AP", "AP")
    second = phy is not None and detect_interface_combination(radios, phy, wanted)
    found = f"{phy} {'can' if second else 'cannot'} run {' + '.join(wanted)} together (iw list)"
    mode = "OWE transition (open + hidden OWE BSS)" if second else "Enhanced Open (OWE) only"
    print(f"access point: {found if radios else why}: {mode} unless a passphrase is set", file=sys.stderr)
    return mesh, second


def _find_radio(sys_class_net: Path = Path("/sys/class/net")) -> str | None:
    """The interface of the first Wi-Fi radio, for `--ap-interface auto`: names differ per board (wlan0, wlp1s0,
    wlx…). Per radio the interface its driver made, the lowest index: mesh0 and the OWE BSS come later."""
    found: dict[str, tuple[int, str]] = {}
    for link in sorted(sys_class_net.iterdir()) if sys_class_net.is_dir() else ():
        try:
            phy = (link / "phy80211" / "name").read_text(encoding="ascii").strip()
            index = int((link / "ifindex").read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
        if phy not in found or index < found[phy][0]:
            found[phy] = (index, link.name)
    if not found:
        return None
    # phy0 before phy1 (phy10 after phy9).
    first = min(found, key=lambda phy: (len(phy), phy))
    return found[first][1]


def _write_serve_env(path: Path, plan: NetworkPlan | None, sys_class_net: Path = Path("/sys/class/net")) -> None:
    """What iplm.service adds to `iplm serve` (systemd EnvironmentFile): the portal and the mesh address of the
    applied plan; nothing without an access point (the unit serves on Ethernet only). Also the 802.11s mesh
    point, for iplm-mesh-link.service's wpa_supplicant, where the radio made one."""
    words: list[str] = []
    if plan is not None:
        words += ["--portal-url", f"http://{plan.unit_address}/", "--ap-subnet", str(plan.ap_subnet)]
        if plan.mesh_address is not None:
            words += ["--mesh-address", str(plan.mesh_address.ip)]
    lines = [f"IPLM_SERVE_NETWORK_ARGS={' '.join(words)}"]
    if plan is not None:
        lines.append(f"IPLM_AP_INTERFACE={plan.ap_interface}")
    # A radio may refuse the mesh point (apply_network then reports it pending): no link to run then.
    mesh_point = plan.mesh_ports[0] if plan is not None and plan.mesh_mode == "batman" else None
    if mesh_point is not None and not (sys_class_net / mesh_point).exists():
        mesh_point = None
    if mesh_point is not None:
        lines.append(f"IPLM_MESH_POINT={mesh_point}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, "\n".join(lines) + "\n")
    # hostapd, dnsmasq and the mesh link start only where there is an access point or a mesh point
    # (ConditionPathExists in their units).
    ap_interface = plan.ap_interface if plan is not None else None
    for marker, value in ((AP_MARKER, ap_interface), (MESH_POINT_MARKER, mesh_point)):
        if value:
            write_file_atomically(path.with_name(marker), value + "\n")
        else:
            path.with_name(marker).unlink(missing_ok=True)


def _read_mac(ap_interface: str) -> str | None:
    # The radio's address, from which the second BSS's is derived (plan_network).
    try:
        return Path(f"/sys/class/net/{ap_interface}/address").read_text(encoding="ascii").strip()
    except OSError:
        return None


def _read_node_id(data_dir: Path, dry_run: bool) -> str:
    if dry_run and not (data_dir / "node_id").exists():
        return _PLACEHOLDER_NODE_ID
    return load_node_id(data_dir)


def _mask(text: str, plan: NetworkPlan) -> str:
    if plan.passphrase is None:
        return text
    return text.replace(f"wpa_passphrase={plan.passphrase}", f"wpa_passphrase={_MASK}")


def _render_value(value) -> str:
    # Tuples read as lists (a listener is address:port); no Python reprs in the output.
    if isinstance(value, tuple):
        return (
            ", ".join(":".join(map(str, item)) if isinstance(item, tuple) else str(item) for item in value) or "(none)"
        )
    return "(none)" if value is None else str(value)


def _print_plan(plan: NetworkPlan, texts: dict[str, str], config_dir: Path) -> None:
    for field in dataclasses.fields(plan):
        value = getattr(plan, field.name)
        if field.name == "passphrase":
            value = "(none: Enhanced Open)" if value is None else _MASK
        print(f"{field.name}: {_render_value(value)}")
    for name, text in texts.items():
        print(f"\n== {config_dir / CONFIG_FILES[name]} ==")
        print(_mask(text, plan), end="")


def _find_key_owner(data_dir: Path) -> str:
    # mosquitto 2.0 drops from root to its `user` before it reads its TLS key, and the key (0600) belongs to the
    # account iplm serve runs as, which owns the data dir: the broker runs as that account.
    try:
        return pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except (OSError, KeyError):
        return "mosquitto"  # no data dir yet: Debian's account for the broker


def _check_texts(texts: dict[str, str]) -> list[str]:
    """The programs' complaints about the rendered files (nothing is written where it matters)."""
    with tempfile.TemporaryDirectory(prefix="iplm-network-") as scratch:
        files = {}
        for name, text in texts.items():
            files[name] = Path(scratch) / CONFIG_FILES[name]
            files[name].write_text(text, encoding="utf-8")
        checks = check_rendered_configs(files)
    return [f"{check.program}: {check.detail}" for check in checks if check.ok is False]


AP_MARKER = "ap-interface"  # beside --serve-env: the unit has an access point this boot
MESH_POINT_MARKER = "mesh-point"  # beside --serve-env: the radio carries an 802.11s mesh point this boot
MESH_POINT_CONF = "wpa_supplicant-mesh.conf"  # in the config dir, for wpa_supplicant on the mesh point


def _write_mesh_point_conf(plan, config_dir: Path, data_dir) -> list[str]:
    # The Wi-Fi mesh link's wpa_supplicant config needs the mesh key; without one there is nothing to join.
    if plan.mesh_mode != "batman":
        return []
    key = load_mesh_key(data_dir)
    if key is None:
        return ["no mesh key yet: the 802.11s mesh point config is written once the unit joins a mesh"]
    text = render_mesh_point_conf(
        plan, mesh_id=derive_mesh_secrets(key).mesh_id, sae_password=derive_mesh_link_password(key)
    )
    path = Path(config_dir) / MESH_POINT_CONF
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return []
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)  # it holds the mesh link's password
    tmp.replace(path)
    return [f"wrote {path} (restart wpa_supplicant on the mesh point {plan.mesh_ports[0]})"]


def run_network_apply(args) -> int:
    """Plan, check and apply the unit's network; --dry-run prints the plan and files and changes nothing."""
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    tls_dir = data_dir / IDENTITY_DIR  # the broker's certificate, key and CA: made by iplm serve
    config_dir = Path(args.config_dir)
    lease_file = getattr(args, "lease_file", None) or DEFAULT_LEASE_FILE
    serve_env = Path(args.serve_env) if getattr(args, "serve_env", None) else None
    ap_interface = args.ap_interface
    if ap_interface == "auto":
        ap_interface = _find_radio()
        if ap_interface is None:
            # A VM or a board without Wi-Fi: no access point, no captive portal; the unit serves on Ethernet.
            print("no Wi-Fi radio here: no access point; the unit serves on its Ethernet port only")
            if serve_env is not None and not args.dry_run:
                _write_serve_env(serve_env, None)
            return 0
        print(f"access point interface: {ap_interface} (the first Wi-Fi radio)", file=sys.stderr)
    radio_supports, second_ap = _detect_radio(ap_interface, getattr(args, "mesh_radio", "auto"))
    try:
        plan = plan_network(
            _read_node_id(data_dir, args.dry_run),
            ap_interface=ap_interface,
            ap_subnet=args.ap_subnet,
            passphrase=_read_passphrase(args),
            country=args.country,
            channel=args.channel,
            mesh_interface=args.mesh_interface,
            radio_supports_ap_and_mesh=radio_supports,
            radio_supports_second_ap=second_ap,
            ap_mac=_read_mac(ap_interface) if second_ap else None,
            mesh_address=args.mesh_address,
            portal_port=getattr(args, "portal_port", None) or 8080,
        )
        broker_user = _find_key_owner(data_dir)  # after the node id: that creates the data dir
        texts = render_network_files(
            plan, config_dir=config_dir, lease_file=lease_file, tls_dir=tls_dir, broker_user=broker_user
        )
    except (ValueError, OSError) as exc:
        print(f"iplm network apply: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        _print_plan(plan, texts, config_dir)
        return 0
    complaints = _check_texts(texts)
    if complaints:
        print(
            "iplm network apply: the rendered configs do not pass their own programs' checks; nothing changed",
            file=sys.stderr,
        )
        for complaint in complaints:
            print(_mask(complaint, plan), file=sys.stderr)
        return 1
    try:
        result = apply_network(
            plan,
            config_dir=config_dir,
            netns=getattr(args, "netns", None),
            lease_file=lease_file,
            tls_dir=tls_dir,
            broker_user=broker_user,
        )
    except NetworkError as exc:
        print(f"iplm network apply: {exc.message}", file=sys.stderr)
        return 1
    except (PermissionError, NetlinkError) as exc:
        print(f"iplm network apply: {exc} (it changes links, addresses and nftables: run it as root)", file=sys.stderr)
        return 1
    for line in list(result.changes) + _write_mesh_point_conf(plan, config_dir, data_dir):
        print(line)
    if serve_env is not None:
        _write_serve_env(serve_env, plan)
    for line in result.pending:
        print(f"pending: {line}")
    if result.reload:
        print(f"restart: {' '.join(result.reload)}")
    if not result:
        print("nothing to change")
    return 0
