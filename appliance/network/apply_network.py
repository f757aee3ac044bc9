"""Apply a network plan to this unit (or to a network namespace): links, addresses, config files, nftables.

Addresses. The phones' interface is the unit's alone: it ends up with exactly the unit's IPv4 address (any
other IPv4 address there is removed, so a changed subnet leaves nothing stale behind; IPv6 link-local stays).
That is the AP interface, or in OWE transition mode the bridge (created here) whose ports hostapd adds: the
open and the OWE BSS, which keep no IPv4 address of their own. Without transition mode a bridge of that
name, left by an earlier plan, is removed.
batman-adv's interface (bat0) is ours too: exactly the mesh address. A plain Ethernet mesh link may be
shared (a venue's LAN, an admin's DHCP address): the mesh address is added and nothing is removed.

Only the AP, bridge and mesh interfaces and tables inet iplm and bridge iplm are touched. Services are not
started or restarted: systemd runs them; NetworkChanges.reload names those whose config file changed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from ipaddress import IPv4Interface
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from appliance.network.create_mesh_point import create_mesh_point
from appliance.network.network_errors import NetworkError
from appliance.network.network_types import (
    CONFIG_FILES,
    DEFAULT_LEASE_FILE,
    DEFAULT_TLS_DIR,
    NetworkChanges,
    NetworkPlan,
)
from appliance.network.render_network_files import render_network_files
from appliance.write_file_atomically import write_file_atomically

_IFF_UP = 0x1
_SCOPE_LINK = 253  # RT_SCOPE_LINK: a link-local address is never a source for routed traffic
# hostapd.conf holds the Wi-Fi passphrase.
_FILE_MODES = {"hostapd": 0o600, "dnsmasq": 0o644, "nftables": 0o644, "mosquitto": 0o644, "mosquitto_acl": 0o644}
_SERVICES = ("hostapd", "dnsmasq", "mosquitto")  # nftables is loaded here, not by a service restart
_TABLE = ("inet", "iplm")
_BRIDGE_TABLE = ("bridge", "iplm")  # OWE transition mode only
_NFT_TIMEOUT_S = 30


def _find_index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _ensure_up(ipr: IPRoute, index: int, ifname: str) -> list[str]:
    if ipr.get_links(index)[0]["flags"] & _IFF_UP:
        return []
    ipr.link("set", index=index, state="up")
    return [f"set {ifname} up"]


def _list_ipv4(ipr: IPRoute, index: int) -> list[tuple[str, int]]:
    return [
        (msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS"), msg["prefixlen"])
        for msg in ipr.get_addr(family=socket.AF_INET, index=index)
    ]


def _ensure_address(ipr: IPRoute, index: int, ifname: str, address, *, exclusive: bool) -> list[str]:
    """address: an IPv4Interface, or None for none. exclusive: remove every other IPv4 address of the interface."""
    wanted = (str(address.ip), address.network.prefixlen) if address is not None else None
    present = _list_ipv4(ipr, index)
    changes = []
    if exclusive:
        # Removed before the add: deleting a primary address would take its secondaries with it.
        for local, prefixlen in present:
            if (local, prefixlen) != wanted:
                ipr.addr("del", index=index, address=local, prefixlen=prefixlen)
                changes.append(f"removed {local}/{prefixlen} from {ifname}")
    if address is not None and wanted not in present:
        scope = {"scope": _SCOPE_LINK} if address.is_link_local else {}
        ipr.addr(
            "add",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
            broadcast=str(address.network.broadcast_address),
            **scope,
        )
        changes.append(f"added {address} to {ifname}")
    return changes


def _check_bridge(ipr: IPRoute, index: int) -> bool:
    info = ipr.get_links(index)[0].get_attr("IFLA_LINKINFO")
    return info is not None and info.get_attr("IFLA_INFO_KIND") == "bridge"


def _remove_bridge(ipr: IPRoute, name: str) -> list[str]:
    # Its address would be a second route to the phones' subnet beside the AP interface's.
    index = _find_index(ipr, name)
    if index is None or not _check_bridge(ipr, index):
        return []
    ipr.link("del", index=index)
    return [f"removed bridge {name} (no OWE transition mode)"]


def _ensure_bridge(ipr: IPRoute, plan: NetworkPlan) -> tuple[int, list[str], list[str]]:
    """(the bridge's index, changes, pending): the bridge exists; its ports, hostapd's, hold no address."""
    changes: list[str] = []
    index = _find_index(ipr, plan.ap_bridge)
    if index is not None and not _check_bridge(ipr, index):
        raise NetworkError("no_interface", f"{plan.ap_bridge} exists and is not a bridge: choose another bridge name")
    if index is None:
        ipr.link("add", ifname=plan.ap_bridge, kind="bridge")
        index = _find_index(ipr, plan.ap_bridge)
        if index is None:
            raise NetworkError("no_interface", f"{plan.ap_bridge} vanished right after it was created")
        changes.append(f"created bridge {plan.ap_bridge}")
    waiting = []
    for port in (plan.ap_interface, plan.owe_interface):
        port_index = _find_index(ipr, port) if port else None
        if port_index is None or ipr.get_links(port_index)[0].get_attr("IFLA_MASTER") != index:
            waiting.append(str(port))
        if port_index is not None:
            # A port's own address (an earlier plan's) would be a second route to the phones' subnet.
            changes += _ensure_address(ipr, port_index, str(port), None, exclusive=True)
    pending = []
    if waiting:
        # hostapd (re)creates the BSS interfaces and adds them to the bridge itself (bridge= in hostapd.conf).
        pending.append(f"{' and '.join(waiting)} join {plan.ap_bridge} when hostapd starts the access point")
    return index, changes, pending


def _ensure_ap(ipr: IPRoute, plan: NetworkPlan) -> tuple[list[str], list[str]]:
    index = _find_index(ipr, plan.ap_interface)
    if index is None:
        raise NetworkError("no_interface", f"the access point interface {plan.ap_interface} does not exist")
    unit = IPv4Interface(f"{plan.unit_address}/{plan.ap_subnet.prefixlen}")
    if plan.owe_interface is None:
        changes = _remove_bridge(ipr, plan.ap_bridge)
        changes += _ensure_address(ipr, index, plan.ap_interface, unit, exclusive=True)
        return changes + _ensure_up(ipr, index, plan.ap_interface), []
    bridge, changes, pending = _ensure_bridge(ipr, plan)
    changes += _ensure_address(ipr, bridge, plan.ap_bridge, unit, exclusive=True)
    return changes + _ensure_up(ipr, bridge, plan.ap_bridge), pending


def _ensure_batman(ipr: IPRoute, plan: NetworkPlan, bat_name: str, address) -> tuple[list[str], list[str]]:
    changes: list[str] = []
    pending: list[str] = []
    bat = _find_index(ipr, bat_name)
    if bat is None:
        try:
            ipr.link("add", ifname=bat_name, kind="batadv")
        except NetlinkError as exc:
            return [], [f"cannot create {bat_name} (batman-adv: modprobe batman-adv): {exc}"]
        bat = _find_index(ipr, bat_name)
        if bat is None:
            return [], [f"{bat_name} vanished right after it was created"]
        changes.append(f"created batman-adv interface {bat_name}")
    for position, port in enumerate(plan.mesh_ports):
        index = _find_index(ipr, port)
        ap_index = _find_index(ipr, plan.ap_interface)
        if index is None and position == 0 and ap_index is not None:
            # The first port is the 802.11s mesh point, made on the access point's own radio; wpa_supplicant
            # (wpa_supplicant-mesh.conf) then joins it to the mesh.
            try:
                create_mesh_point(port, ap_index)
                changes.append(f"created mesh point {port} on {plan.ap_interface}'s radio")
                index = _find_index(ipr, port)
            except NetworkError as exc:
                pending.append(exc.message)
                continue
        if index is None:
            pending.append(f"{port} does not exist yet: not added to {bat_name}")
            continue
        if ipr.get_links(index)[0].get_attr("IFLA_MASTER") != bat:
            ipr.link("set", index=index, master=bat)
            changes.append(f"added {port} to {bat_name}")
        changes += _ensure_up(ipr, index, port)
    changes += _ensure_address(ipr, bat, bat_name, address, exclusive=True)
    changes += _ensure_up(ipr, bat, bat_name)
    return changes, pending


def _ensure_mesh(ipr: IPRoute, plan: NetworkPlan) -> tuple[list[str], list[str]]:
    interface, address = plan.mesh_interface, plan.mesh_address
    if plan.mesh_mode is None or interface is None or address is None:
        return [], []
    if plan.mesh_mode == "batman":
        return _ensure_batman(ipr, plan, interface, address)
    index = _find_index(ipr, interface)
    if index is None:
        return [], [f"the mesh interface {interface} does not exist: no mesh address"]
    changes = _ensure_address(ipr, index, interface, address, exclusive=False)
    return changes + _ensure_up(ipr, index, interface), []


def _write_file(path: Path, text: str, mode: int) -> bool:
    """Write atomically when content or mode differ; True when it wrote."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    # The passphrase is never readable by others, and the rename survives a power cut (boards lose power).
    write_file_atomically(path, data, mode=mode)
    return True


def _ensure_directory(path: Path) -> list[str]:
    if path.is_dir():
        return []
    path.mkdir(parents=True, mode=0o755)
    return [f"created {path}"]


def _find_nft() -> str:
    found = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if found is None:
        raise NetworkError("nft_failed", "nft is not installed (Debian: nftables)")
    return found


def _run_nft(argv: list[str], *, script: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=_NFT_TIMEOUT_S)


def _list_wanted_tables(nft: str, script: str, tables: list[tuple[str, str]]) -> str:
    # The canonical listing of the wanted tables, made by loading them where it harms nothing: a throwaway
    # network namespace. Comparing listings (not files) also catches a table changed or flushed by hand.
    # Terse (-t): a set's elements are the phones connected now, not part of the rules.
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    lists = " && ".join(f'"$0" -t list table {family} {name}' for family, name in tables)
    result = _run_nft([unshare, "--net", "sh", "-c", f'"$0" -f - && {lists}', nft], script=script)
    if result.returncode != 0:
        raise NetworkError("nft_failed", f"the ruleset does not load: {result.stderr.strip()}")
    return result.stdout


def _list_live_tables(prefix: list[str], nft: str, tables: list[tuple[str, str]]) -> str | None:
    """The tables' terse listing as loaded now; None when one of them is missing."""
    listings = []
    for table in tables:
        live = _run_nft([*prefix, nft, "-t", "list", "table", *table])
        if live.returncode != 0:
            return None
        listings.append(live.stdout)
    return "".join(listings)


def _ensure_ruleset(path: Path, script: str, netns: str | None, transition: bool) -> list[str]:
    nft = _find_nft()
    prefix = ["ip", "netns", "exec", netns] if netns else []
    tables = [_TABLE, _BRIDGE_TABLE] if transition else [_TABLE]
    changes = []
    if not transition and _run_nft([*prefix, nft, "list", "table", *_BRIDGE_TABLE]).returncode == 0:
        # An earlier plan's: it names BSS interfaces this plan does not have.
        deleted = _run_nft([*prefix, nft, "delete", "table", *_BRIDGE_TABLE])
        if deleted.returncode != 0:
            raise NetworkError("nft_failed", f"nft delete table bridge iplm: {deleted.stderr.strip()}")
        changes.append("deleted nftables table bridge iplm (no OWE transition mode)")
    if _list_live_tables(prefix, nft, tables) == _list_wanted_tables(nft, script, tables):
        return changes
    loaded = _run_nft([*prefix, nft, "-f", str(path)])
    if loaded.returncode != 0:
        raise NetworkError("nft_failed", f"nft -f {path}: {loaded.stderr.strip()}")
    names = " and ".join(" ".join(table) for table in tables)
    return [*changes, f"loaded nftables table {names} from {path}"]


def apply_network(
    plan: NetworkPlan,
    *,
    config_dir: Path | str,
    netns: str | None = None,
    lease_file: Path | str = DEFAULT_LEASE_FILE,
    broker_user: str | None = "mosquitto",
    tls_dir: Path | str = DEFAULT_TLS_DIR,
) -> NetworkChanges:
    """Make links, addresses, config files and table inet iplm match `plan`; idempotent.

    netns: a named network namespace (`ip netns`) instead of this one. Returns what changed; a second
    call with the same plan returns an empty NetworkChanges. Raises NetworkError (no AP interface, nft).
    """
    config_dir = Path(config_dir)
    texts = render_network_files(
        plan, config_dir=config_dir, lease_file=lease_file, broker_user=broker_user, tls_dir=tls_dir
    )
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        changes, pending = _ensure_ap(ipr, plan)
        mesh_changes, mesh_pending = _ensure_mesh(ipr, plan)
    changes += mesh_changes
    pending += mesh_pending
    changes += _ensure_directory(config_dir) + _ensure_directory(Path(lease_file).parent)
    written = []
    for name, text in texts.items():
        path = config_dir / CONFIG_FILES[name]
        if _write_file(path, text, _FILE_MODES[name]):
            written.append(name)
            changes.append(f"wrote {path}")
    changes += _ensure_ruleset(
        config_dir / CONFIG_FILES["nftables"], texts["nftables"], netns, transition=plan.owe_interface is not None
    )
    reload = tuple(name for name in _SERVICES if name in written or f"{name}_acl" in written)  # the ACL: its broker
    return NetworkChanges(changes=tuple(changes), reload=reload, pending=tuple(pending))
