"""A lab LAN of iplm units for multi-unit tests, built from network namespaces (needs root).

Nothing is added to the root namespace:

    <prefix>-hub   a namespace that is only a switch: bridge <prefix>-br, the hub ends veth-u0..veth-uN,
                   IPv6 off and bridge netfilter off, no addresses, so it never sends a packet of its own
    <prefix>-uI    one namespace per unit: lo up; eth0 (the other end of veth-uI) with 10.213.0.(10+I)/24;
                   a route 224.0.0.0/4 dev eth0 so that multicast (mDNS) has a way out; no default route

Traffic therefore only flows between the units' namespaces (and inside each one on its loopback).
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass

from pyroute2 import IPRoute, netns

SUBNET = "10.213.0."  # inside 10.213.0.0/16, the lab's own test range
FIRST_HOST = 10
PREFIXLEN = 24
UNIT_INTERFACE = "eth0"
MULTICAST = "224.0.0.0/4"
_MAX_IFNAME = 15
_GSO_MAX_SEGS = 65535  # the kernel's default
_FRAME = 1514  # bytes on the wire of a full-size Ethernet frame (for tbf/netem sizing)


@dataclass(frozen=True)
class LabUnit:
    index: int
    name: str  # the unit's network namespace
    address: str  # its IPv4 address on the lab LAN
    interface: str  # its interface inside its namespace
    hub_interface: str  # the other end of its cable, in the hub namespace (a bridge port)


class NetLab:
    """A running lab: units on one bridge; `stop()` (or leaving the `with` block) removes all of it."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.hub = f"{prefix}-hub"
        self.bridge = f"{prefix}-br"
        self.units: list[LabUnit] = []
        self._processes: list[subprocess.Popen] = []
        self._loss: dict[int, float] = {}  # unit index -> loss percent per direction
        self._stopped = False

    # -- processes -------------------------------------------------------------------------------------

    def run(self, i: int, argv, **popen_kwargs) -> subprocess.Popen:
        """Start argv inside unit i's namespace; `stop()` kills it (and anything else left in the namespace)."""
        popen_kwargs.setdefault("start_new_session", True)
        process = subprocess.Popen(["ip", "netns", "exec", self.units[i].name, *argv], **popen_kwargs)
        self._processes.append(process)
        return process

    def check_output(self, i: int, argv, timeout: float = 30, **run_kwargs) -> str:
        """Run argv inside unit i's namespace to completion and return its stdout (text)."""
        return subprocess.check_output(
            ["ip", "netns", "exec", self.units[i].name, *argv], text=True, timeout=timeout, **run_kwargs
        )

    # -- the link --------------------------------------------------------------------------------------

    def limit(self, i: int, rate="20mbit", delay=None, loss=None) -> None:
        """Shape unit i's cable, each direction alike: rate (tc syntax or bit/s), delay, loss (percent).

        delay: tc syntax ("50ms", "50ms 10ms" for jitter) or milliseconds; it needs the netem qdisc.
        loss: "1%" or a number of percent. A round trip over one shaped cable gets 2 x delay and ~2 x loss.
        """
        self.unlimit(i)
        unit = self.units[i]
        try:
            for ns, dev in ((unit.name, unit.interface), (self.hub, unit.hub_interface)):
                for command in _qdisc_commands(rate, delay):
                    _tc(ns, "qdisc", "add", "dev", dev, *command)
            if loss is not None:
                self._loss[i] = _parse_percent(loss)
                _apply_loss(self)
        except BaseException:
            self.unlimit(i)
            raise

    def unlimit(self, i: int) -> None:
        """Remove the shaping of unit i's cable (both ends)."""
        unit = self.units[i]
        for ns, dev in ((unit.name, unit.interface), (self.hub, unit.hub_interface)):
            _tc(ns, "qdisc", "del", "dev", dev, "root", check=False)
        if self._loss.pop(i, None) is not None:
            _apply_loss(self)

    def cut(self, i: int) -> None:
        """Pull unit i's cable: its hub end goes down, so both ends lose carrier; the unit's config stays."""
        self._set_hub_port(i, "down")

    def restore(self, i: int) -> None:
        """Plug unit i's cable back in."""
        self._set_hub_port(i, "up")

    def _set_hub_port(self, i: int, state: str) -> None:
        # `ip`, not pyroute2: pyroute2 forks a Python child to enter a namespace, and tests cut cables while
        # their threads block reading the units' output; such a child can hang on an I/O lock one of them held.
        subprocess.run(
            ["ip", "-n", self.hub, "link", "set", "dev", self.units[i].hub_interface, state],
            check=True,
            capture_output=True,
        )

    # -- membership ------------------------------------------------------------------------------------

    def add_unit(self) -> int:
        """A new unit joins the LAN; returns its index. Call it before starting threads that block in reads:
        pyroute2 forks to reach the new namespace, and the child can hang on an I/O lock such a thread held."""
        index = len(self.units)
        self.units.append(_create_unit(self, index))
        return index

    def stop(self) -> None:
        """Kill the processes started in the lab and delete its namespaces (and with them bridge and veths)."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        _stop_processes(self._processes)
        # by name pattern, so that a unit whose setup failed half way goes too
        _remove_stale(self.prefix)

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_net_lab(units: int = 3, prefix: str = "iplm-lab") -> NetLab:
    """Build a lab LAN of `units` units (namespaces <prefix>-u0..) on a bridge in namespace <prefix>-hub."""
    if os.geteuid() != 0:
        raise PermissionError("start_net_lab needs root (network namespaces, veths, tc)")
    if len(f"{prefix}-br") > _MAX_IFNAME:
        raise ValueError(f"prefix {prefix!r} too long: the bridge name must fit in {_MAX_IFNAME} characters")
    _remove_stale(prefix)
    lab = NetLab(prefix)
    atexit.register(lab.stop)
    try:
        _create_hub(lab)
        for _ in range(units):
            lab.add_unit()
    except BaseException:
        lab.stop()
        raise
    return lab


# -- building ------------------------------------------------------------------------------------------


def _create_hub(lab: NetLab) -> None:
    netns.create(lab.hub)
    # A pure switch: no IPv6 (so no link-local address, RS or MLD from the hub itself), and bridged frames
    # never go through netfilter even where br_netfilter is loaded (it is per namespace, default on).
    _sysctl(
        lab.hub,
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.bridge.bridge-nf-call-iptables=0",
        "net.bridge.bridge-nf-call-ip6tables=0",
        "net.bridge.bridge-nf-call-arptables=0",
    )
    with IPRoute(netns=lab.hub) as ipr:
        # No STP (ports forward at once), no multicast snooping (every group is flooded, as on a dumb switch).
        ipr.link("add", ifname=lab.bridge, kind="bridge", br_stp_state=0, br_forward_delay=0, br_mcast_snooping=0)
        ipr.link("set", index=_index(ipr, lab.bridge), state="up")


def _create_unit(lab: NetLab, index: int) -> LabUnit:
    address = f"{SUBNET}{FIRST_HOST + index}"
    if not 0 <= index < 256 - FIRST_HOST - 1:
        raise ValueError(f"no address for unit {index}")
    unit = LabUnit(
        index=index,
        name=f"{lab.prefix}-u{index}",
        address=address,
        interface=UNIT_INTERFACE,
        hub_interface=f"veth-u{index}",
    )
    netns.create(unit.name)
    with IPRoute(netns=lab.hub) as ipr:
        ipr.link("add", ifname=unit.hub_interface, kind="veth", peer={"ifname": unit.interface, "net_ns_fd": unit.name})
        ipr.link("set", index=_index(ipr, unit.hub_interface), master=_index(ipr, lab.bridge), state="up")
    # IPv6 link-local usable at once (no DAD wait) for tests of IPv6 mDNS; no router will ever answer.
    _sysctl(unit.name, f"net.ipv6.conf.{unit.interface}.accept_dad=0", f"net.ipv6.conf.{unit.interface}.accept_ra=0")
    with IPRoute(netns=unit.name) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
        eth = _index(ipr, unit.interface)
        ipr.addr("add", index=eth, address=address, prefixlen=PREFIXLEN)
        ipr.link("set", index=eth, state="up")
        # Without a default route, sending to 224.0.0.251 fails with ENETUNREACH unless the sender sets
        # IP_MULTICAST_IF; a real unit has a route, so give the lab one that stays on the lab cable.
        ipr.route("add", dst=MULTICAST, oif=eth)
    if lab._loss:
        _set_segmentation(unit, per_frame=True)
    return unit


def _set_segmentation(unit: LabUnit, per_frame: bool) -> None:
    with IPRoute(netns=unit.name) as ipr:
        ipr.link("set", index=_index(ipr, unit.interface), gso_max_segs=1 if per_frame else _GSO_MAX_SEGS)


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise RuntimeError(f"no interface {ifname}")
    return found[0]


def _sysctl(ns: str, *assignments: str) -> None:
    # -e: keys that do not exist here (no br_netfilter, no IPv6) are not an error
    subprocess.run(
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-e", "-w", *assignments], check=True, capture_output=True
    )


# -- shaping -------------------------------------------------------------------------------------------


def _qdisc_commands(rate, delay) -> list:
    """tc qdisc arguments (after 'dev DEV') for one end of a cable: tbf for the rate, netem for the delay."""
    netem = []
    if delay is not None:
        netem = ["netem", "delay", *(f"{delay}ms" if isinstance(delay, (int, float)) else delay).split()]
    if rate is None:
        return [["root", "handle", "10:", *netem, "limit", "100000"]] if netem else []
    bps = _parse_rate(rate)
    burst = min(max(bps // 8 // 1000, 4 * _FRAME), 64 * 1024)  # about 1 ms at the rate
    tbf = ["root", "handle", "1:", "tbf", "rate", f"{bps}bit", "burst", str(burst), "latency", "200ms"]
    if not netem:
        return [tbf]
    # netem under tbf (as Mininet does): it holds the frames in flight over the delay plus ~200 ms of queue.
    packets = max(int(bps / 8 / _FRAME * (_parse_delay(delay) + 0.2)) + 16, 64)
    return [tbf, ["parent", "1:1", "handle", "10:", *netem, "limit", str(packets)]]


def _apply_loss(lab: NetLab) -> None:
    """Random drops on the hub's bridge, per unit and direction (nftables bridge family; works without netem)."""
    # A veth carries TCP's GSO super-packets (up to 44 frames) whole, so one drop would lose a lump; while
    # any loss is set, senders make one frame per packet (sockets pick this up when they connect).
    for unit in lab.units:
        _set_segmentation(unit, per_frame=bool(lab._loss))
    rules = []
    for i, percent in sorted(lab._loss.items()):
        threshold = round(percent * 10_000)  # out of 1_000_000
        port = lab.units[i].hub_interface
        rules += [
            f'iifname "{port}" numgen random mod 1000000 < {threshold} drop',
            f'oifname "{port}" numgen random mod 1000000 < {threshold} drop',
        ]
    chain = "\n    ".join(["type filter hook forward priority 0; policy accept;", *rules])
    # declaring then deleting the table makes the whole replacement one atomic nft transaction
    script = "table bridge iplm_lab\ndelete table bridge iplm_lab\n"
    if rules:
        script += f"table bridge iplm_lab {{\n  chain forward {{\n    {chain}\n  }}\n}}\n"
    result = subprocess.run(
        ["ip", "netns", "exec", lab.hub, "nft", "-f", "-"], input=script, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"nft in {lab.hub}: {result.stderr.strip()}\n{script}")


_RATE_UNITS = {
    "": 1,
    "bit": 1,
    "kbit": 10**3,
    "mbit": 10**6,
    "gbit": 10**9,
    "bps": 8,
    "kbps": 8 * 10**3,
    "mbps": 8 * 10**6,
    "gbps": 8 * 10**9,
}


def _parse_rate(rate) -> int:
    if isinstance(rate, (int, float)):
        return int(rate)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", rate.lower())
    if not match or match.group(2) not in _RATE_UNITS:
        raise ValueError(f"rate {rate!r}: want e.g. '20mbit', '500kbit', '1gbit' or bit/s as a number")
    return int(float(match.group(1)) * _RATE_UNITS[match.group(2)])


def _parse_delay(delay) -> float:
    if isinstance(delay, (int, float)):
        return delay / 1000
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?", delay)
    if not match:
        raise ValueError(f"delay {delay!r}: want e.g. '50ms' or milliseconds as a number")
    return float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0}[match.group(2)]


def _parse_percent(loss) -> float:
    value = float(str(loss).strip().rstrip("%"))
    if not 0 <= value <= 100:
        raise ValueError(f"loss {loss!r}: want a percentage between 0 and 100")
    return value


def _tc(ns: str, *args: str, check: bool = True) -> None:
    result = subprocess.run(["tc", "-n", ns, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        hint = ""
        if "netem" in args and "unknown" in result.stderr:
            hint = " (this kernel has no netem qdisc, CONFIG_NET_SCH_NETEM: no delay; rate and loss still work)"
        raise RuntimeError(f"tc -n {ns} {' '.join(args)}: {result.stderr.strip()}{hint}")


# -- cleaning up ---------------------------------------------------------------------------------------


def _remove_stale(prefix: str) -> None:
    """Delete the namespaces of a lab with this prefix (this one, or a crashed run's), and what runs in them."""
    pattern = re.compile(rf"{re.escape(prefix)}-(hub|u\d+)")
    for name in netns.listnetns():
        if pattern.fullmatch(name):
            _kill_netns_pids(name)
            netns.remove(name)


def _stop_processes(processes: list) -> None:
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + 3
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # run() starts each process in its own session
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


def _kill_netns_pids(name: str) -> None:
    result = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for pid in result.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
