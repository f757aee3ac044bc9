"""Send bytes no HTTP client would send (broken request lines, endless bodies, a trickle) and judge the answer."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from benchmarks.hostile.hostile_types import Probe

_ANSWER_S = 25.0  # longer than the unit's 15 s request deadline


def _read_status(sock: socket.socket) -> tuple[int | None, bool]:
    """(the status of the answer or None, whether the unit answered or closed at all within _ANSWER_S)."""
    received = b""
    deadline = time.monotonic() + _ANSWER_S
    while b"\r\n" not in received:
        if time.monotonic() > deadline:
            return None, False
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return None, False
        except ConnectionError:
            break
        if not chunk:
            break
        received += chunk
    parts = received.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None, True
    return int(parts[1]), True


def send_raw_bytes(
    url: str,
    label: str,
    head: bytes,
    *,
    body_chunks: int = 0,
    chunk: bytes = b"",
    trickle_s: float = 0.0,
    expect: tuple[int | None, ...] = (),
) -> Probe:
    """Send `head`, then up to `body_chunks` times `chunk` (every `trickle_s` seconds), then read the answer.

    Wanted: any 4xx or a closed connection, or exactly one of `expect` (None in it: a closed connection);
    never a connection left open without an answer.
    Sending stops as soon as the unit answers or hangs up, as a client that reads would.
    """
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port or 80), timeout=_ANSWER_S) as sock:
        try:
            sock.sendall(head)
            for _ in range(body_chunks):
                if trickle_s:
                    time.sleep(trickle_s)
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body: its answer, if any, is read below
        status, settled = _read_status(sock)
    if not settled:  # neither answered nor hung up: a connection a phone could hold forever
        return Probe(label, None, False, note=f"no answer and not closed after {_ANSWER_S:.0f} s")
    wanted = status in expect if expect else status is None or 400 <= status < 500
    return Probe(label, status, wanted)
