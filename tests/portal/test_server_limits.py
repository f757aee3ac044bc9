"""The portal server's own limits, attacked on a real `iplm serve`: huge and endless bodies, huge headers,
slow-loris and silent connections, while another phone keeps getting answers."""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
import time
from urllib.parse import urlsplit

import pytest

from appliance.cli.portal_server_types import PortalServerLimits

pytestmark = [pytest.mark.engine, pytest.mark.timeout(240)]

LIMITS = PortalServerLimits()
APP_LIMIT = 1 << 20  # the app's MAX_CONTENT_LENGTH
SERVER_LIMIT = APP_LIMIT + LIMITS.body_slack_bytes
# Generous: how late after its deadline a connection may be cut (the check interval, waitress's 1 s loop,
# and a loaded test machine).
LATE_S = LIMITS.check_every_s + 1 + 20
ANSWER_S = 30.0


def _connect(live_unit) -> socket.socket:
    url = urlsplit(live_unit.url)
    return socket.create_connection((url.hostname, url.port), timeout=ANSWER_S)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too, and ANSWER_S)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _read_status(answer: bytes) -> int | None:
    # waitress answers a request it could not parse as HTTP/1.0, so only the status counts.
    parts = answer.split(b" ", 2)
    return int(parts[1]) if answer.startswith(b"HTTP/1.") and len(parts) == 3 else None


def _list_spooled_files(pid: int) -> set[str]:
    """The process's open files in the temporary directory that have no name: waitress's spooled bodies."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
            found.add(f"{fd} -> {target}")
    return found


def _wait_until_read(server_port: int, client_port: int) -> None:
    """Wait until the server has taken every byte sent so far off its socket (receive queue 0)."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline:
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                ours = fields[1].endswith(local) and fields[2].endswith(remote)
                if ours and int(fields[4].split(":")[1], 16) == 0:
                    return
        time.sleep(0.05)
    raise AssertionError("the server did not read what was sent")


def test_a_huge_content_length_is_refused_before_any_of_the_body_is_sent(live_unit):
    with _connect(live_unit) as sock:
        sock.sendall(
            b"POST /api/conversations HTTP/1.1\r\nHost: unit\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        # Not one byte of the 100 MiB was sent: the answer can only come from the Content-Length.
        answer = _read_until_closed(sock)
    assert _read_status(answer) == 413, answer[:200]
    with live_unit.client() as phone:
        assert phone.get("/healthz").status_code == 200


def test_a_body_just_over_the_apps_limit_gets_the_apps_own_error(live_unit):
    with live_unit.client() as phone:
        response = phone.post(
            "/api/conversations", content=b"x" * (APP_LIMIT + 1000), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413 and response.json()["error"]["code"]


def test_an_endless_chunked_body_is_cut_off_at_the_limit_and_never_touches_the_disk(live_unit):
    pid = live_unit.process.pid
    before = _list_spooled_files(pid)
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    with _connect(live_unit) as sock:
        sock.sendall(
            b"POST /api/conversations HTTP/1.1\r\nHost: unit\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while sent + len(chunk) < APP_LIMIT:  # just under the app's limit: waitress keeps reading
            sock.sendall(chunk)
            sent += len(chunk)
        _wait_until_read(urlsplit(live_unit.url).port or 0, sock.getsockname()[1])
        # A megabyte held for this phone, in memory: no temporary file (waitress's default spools past 512 KiB).
        assert _list_spooled_files(pid) == before
        refused = False
        while sent < 64 * APP_LIMIT:  # the old limit took a gigabyte; this one must stop long before 64 MiB
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                refused = True
                break
            sent += len(chunk)
            readable, _, _ = selectors.select.select([sock], [], [], 0)
            if readable:
                refused = True
                break
        answer = _read_until_closed(sock) if refused else b""
    assert refused, f"{sent} bytes of body were taken"
    assert answer == b"" or _read_status(answer) == 413, answer[:200]
    assert _list_spooled_files(pid) == before


def test_headers_over_the_limit_are_refused(live_unit):
    with _connect(live_unit) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: unit\r\nX-Pad: " + b"a" * LIMITS.max_header_bytes + b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert _read_status(answer) == 431, answer[:200]


def test_slow_loris_and_silent_connections_are_cut_off_while_another_phone_gets_answers(live_unit):
    # A request that never ends, one byte at a time: each byte keeps waitress's idle timer from firing.
    head = b"GET /healthz HTTP/1.1\r\nHost: unit\r\nX-Slow: " + b"a" * 1000
    slow = [_connect(live_unit) for _ in range(20)]
    silent = [_connect(live_unit) for _ in range(5)]
    selector = selectors.DefaultSelector()
    for sock in slow + silent:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    started = time.monotonic()
    closed_at: dict[socket.socket, float] = {}
    answers: list[bytes] = []
    statuses: list[int] = []
    position = 0
    with live_unit.client() as phone:
        while (
            len(closed_at) < len(slow) + len(silent) and time.monotonic() - started < LIMITS.request_deadline_s + LATE_S
        ):
            for sock in slow:
                if sock not in closed_at:
                    try:
                        sock.send(head[position : position + 1])
                    except OSError:
                        closed_at[sock] = time.monotonic() - started
            position += 1
            # Paces the trickle at about 2 bytes a second, and notices connections the server closed.
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    answers.append(data)
                else:
                    selector.unregister(sock)
                    closed_at.setdefault(sock, time.monotonic() - started)
            statuses.append(phone.get("/healthz").status_code)
    for sock in slow + silent:
        sock.close()
    assert answers == [], "a request that never arrived in full was answered"
    assert set(closed_at) == set(slow + silent), f"{len(slow) + len(silent) - len(closed_at)} connections still open"
    # Cut off by the deadline and the idle timeout, not before, and not much after.
    assert all(LIMITS.request_deadline_s <= closed_at[sock] <= LIMITS.request_deadline_s + LATE_S for sock in slow)
    assert all(LIMITS.idle_timeout_s <= closed_at[sock] <= LIMITS.idle_timeout_s + LATE_S for sock in silent)
    assert len(statuses) >= 10 and set(statuses) == {200}, "the other phone must get answers all along"
