"""Start and keep a mosquitto process (development and tests; on the image systemd runs mosquitto).

mosquitto 2.0.11 has no option to check a config without running it (`mosquitto -h` lists -c, -d, -p,
-v only), so a config is validated by starting a broker with it: start_broker fails with the broker's
own error lines when the config is wrong.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from appliance.mesh.mesh_errors import BrokerError
from appliance.mesh.mesh_types import Broker

_LISTENER = re.compile(r"^listener\s+(\d+)(?:\s+(\S+))?\s*$")
_LOG_FILE = re.compile(r"^log_dest\s+file\s+(.+?)\s*$")
_LOG_LINES = 20
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
_POLL_S = 0.02
_STOP_TIMEOUT_S = 5.0


def _find_listener(conf_path: Path) -> tuple[str, int]:
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        match = _LISTENER.match(line.strip())
        if match and int(match.group(1)) != 0:  # port 0: a unix socket
            address = match.group(2) or "127.0.0.1"
            return _WILDCARDS.get(address, address), int(match.group(1))
    raise BrokerError(f"{conf_path} has no TCP listener line", code="broker_config")


def _find_log_file(conf_path: Path) -> Path | None:
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        match = _LOG_FILE.match(line.strip())
        if match:
            return Path(match.group(1))
    return None


def _read_log_tail(log_file: Path | None, offset: int) -> str:
    # With "log_dest file", mosquitto's own error lines go there, not to stderr.
    if log_file is None:
        return ""
    try:
        with log_file.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_LOG_LINES:])


def _find_executable(executable: str | None) -> str:
    # /usr/sbin is not on a normal user's PATH, and that is where Debian puts mosquitto.
    found = executable or shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise BrokerError("mosquitto is not installed (Debian: apt install mosquitto)", code="broker_missing")
    return found


def _socket_inodes(pid: int) -> set[str] | None:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except PermissionError:
        return None  # not ours to read: fall back to the TCP probe alone
    except OSError:
        return set()  # the process is gone (it may have just died of "address in use"): it holds nothing
    return {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}


def _holds_listening_port(pid: int, port: int) -> bool:
    # A TCP connect alone could reach another program on the port while our broker dies of
    # "address in use"; ready means *this* process listens on it.
    inodes = _socket_inodes(pid)
    if inodes is None:
        return True
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                return True
    return False


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_broker(conf_path: Path | str, *, ready_timeout: float = 10.0, executable: str | None = None) -> Broker:
    """Start `mosquitto -c conf_path` and return once it listens; raises BrokerError with its error lines."""
    conf_path = Path(conf_path).resolve()
    address, port = _find_listener(conf_path)
    log_file = _find_log_file(conf_path)
    command = [_find_executable(executable), "-c", str(conf_path)]
    lock = threading.Lock()
    tail: collections.deque[str] = collections.deque(maxlen=50)
    state: dict = {"process": None, "drain": None, "log_offset": 0}

    def drain_stderr(process: subprocess.Popen) -> None:
        # Read continuously: a full pipe would block the broker on its next log line.
        stderr = process.stderr
        assert stderr is not None  # spawned with stderr=PIPE
        for line in iter(stderr.readline, b""):
            tail.append(line.decode("utf-8", "replace").rstrip())
        stderr.close()

    def spawn() -> None:
        tail.clear()
        try:  # only this run's log lines belong in an error message
            state["log_offset"] = log_file.stat().st_size if log_file else 0
        except OSError:
            state["log_offset"] = 0
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        drain = threading.Thread(target=drain_stderr, args=(process,), name="mosquitto-stderr", daemon=True)
        drain.start()
        state.update(process=process, drain=drain)

    def read_tail() -> str:
        return "\n".join(tail)

    def describe_output() -> str:
        return "\n".join(part for part in (read_tail(), _read_log_tail(log_file, state["log_offset"])) if part)

    def wait_ready(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = state["process"]
            status = process.poll()
            if status is not None:
                state["drain"].join(timeout=1.0)
                raise BrokerError(f"mosquitto exited with status {status}:\n{describe_output()}")
            if _holds_listening_port(process.pid, port) and _accepts(address, port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"mosquitto did not listen on {address}:{port} within {timeout} s:\n{describe_output()}",
                    code="broker_timeout",
                )
            time.sleep(_POLL_S)

    def stop() -> None:
        with lock:
            process = state["process"]
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if state["drain"] is not None:
                state["drain"].join(timeout=1.0)

    def restart() -> None:
        stop()
        with lock:
            spawn()
        try:
            wait_ready(ready_timeout)
        except BrokerError:
            stop()
            raise

    def reload() -> None:
        process = state["process"]
        if process.poll() is None:
            process.send_signal(signal.SIGHUP)

    with lock:
        spawn()
    try:
        wait_ready(ready_timeout)
    except BaseException:
        stop()
        raise
    return Broker(
        conf_path=conf_path,
        address=address,
        port=port,
        process=lambda: state["process"],
        wait_ready=wait_ready,
        restart=restart,
        reload=reload,
        stop=stop,
        stderr_tail=read_tail,
    )
