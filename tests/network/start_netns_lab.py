"""Network namespaces for the network tests (needs root): cabled with veths, removed with all their processes.

Nothing is added to the root namespace; addresses are 198.18.0.0/24 (the AP) and 10.213.x (the mesh), inside
the namespaces only. `stop()` also runs at exit, and a crashed run's namespaces go at the next start.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import time

from pyroute2 import IPRoute, netns

_PREFIX = "iplm-nt"
_STALE = re.compile(rf"{_PREFIX}(\d+)-.+")


class NetnsLab:
    """Namespaces named <prefix><pid>-<name>; `stop()` (or leaving the `with` block) removes every one."""

    def __init__(self):
        self.prefix = f"{_PREFIX}{os.getpid()}-"
        self.names: list[str] = []
        self._processes: list[subprocess.Popen] = []
        self._stopped = False

    def add(self, name: str) -> str:
        """Create a namespace with loopback up; returns its full name."""
        full = self.prefix + name
        netns.create(full)
        self.names.append(full)
        with IPRoute(netns=full) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return full

    def cable(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth from ns_a (if_a) to ns_b (if_b); ns_b may equal ns_a. Both ends stay down."""
        with IPRoute(netns=ns_a) as ipr:
            ipr.link("add", ifname=if_a, kind="veth", peer={"ifname": if_b, "net_ns_fd": ns_b})

    def address(self, ns: str, ifname: str, cidr: str, *, gateway: str | None = None) -> None:
        """Give ifname an address, bring it up, and optionally a default route via gateway (inside ns)."""
        address, prefixlen = cidr.split("/")
        with IPRoute(netns=ns) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=index, address=address, prefixlen=int(prefixlen))
            ipr.link("set", index=index, state="up")
            if gateway:
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)

    def spawn(self, ns: str, argv: list[str], **popen_kwargs) -> subprocess.Popen:
        popen_kwargs.setdefault("start_new_session", True)
        process = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **popen_kwargs)
        self._processes.append(process)
        return process

    def run(self, ns: str, argv: list[str], timeout: float = 30, **run_kwargs) -> subprocess.CompletedProcess:
        run_kwargs.setdefault("capture_output", True)
        return subprocess.run(["ip", "netns", "exec", ns, *argv], text=True, timeout=timeout, **run_kwargs)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        for process in self._processes:
            _end_process(process)
        for name in self.names:
            _remove_netns(name)

    def __enter__(self) -> NetnsLab:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_netns_lab() -> NetnsLab:
    """An empty lab for this test process; removes the namespaces of earlier runs that died."""
    for name in netns.listnetns():
        match = _STALE.fullmatch(name)
        if match and not _is_alive(int(match.group(1))):
            _remove_netns(name)
    lab = NetnsLab()
    atexit.register(lab.stop)
    return lab


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # spawn() starts each in its own session
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _remove_netns(name: str) -> None:
    # Whatever still runs inside (a daemon that forked away) would keep the namespace alive.
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 2
    while (
        pids
        and time.monotonic() < deadline
        and subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    ):
        time.sleep(0.02)
    try:
        netns.remove(name)
    except OSError:
        pass
