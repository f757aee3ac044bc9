"""A model source for installer tests: a loopback HTTP server shaped like Hugging Face, with fault injection.

Layout: `root_dir/<repo>/<file>`, where <repo> is `name` or `org/name` (a top-level directory holding no
regular file directly is an organisation; its subdirectories are the repos). Served at

    GET/HEAD /<repo>/resolve/<revision>/<file>   Hugging Face style ("hf" sources)
    GET/HEAD /<repo>/<file>                      any plain HTTP mirror ("url" sources)

`server.revisions[repo]` (a set) limits the revisions a repo answers; a repo not in it accepts any revision.
`server.lfs_min_bytes` (None: never) makes "hf" answers for files at least that large carry X-Linked-Size and
X-Linked-Etag (the quoted sha256), as Hugging Face does for its LFS files.
Responses carry Content-Length, Accept-Ranges: bytes and ETag (the quoted sha256 of the real file). A single
`Range: bytes=a-b | a- | -n` gets 206 with Content-Range; an unsatisfiable or backwards one gets 416 with
`Content-Range: bytes */total`; several ranges, another unit or a malformed header get the whole file (200),
which RFC 9110 allows. `ignore_ranges()` makes it answer every GET so, as a plain file server does (no
Accept-Ranges then). Anything outside root_dir (`..`, `%2e%2e`, `%2f`, symlinks out) is a 404.

Faults are keyed by a file's path relative to its repo ("model.bin") or to root_dir ("org/name/model.bin");
each can be set from any thread at any time. `bytes_sent` counts file body bytes (padding and oversize garbage
included, error pages not); it is what `vanish_after` and `rate_limit` meter.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from appliance.hash_file import hash_file

_CHUNK = 64 * 1024
_SOCKET_TIMEOUT_S = 10  # a stuck client gives up its thread after this; stop() cuts sooner
_GARBAGE_BYTE = b"\xa5"  # oversize filler: fixed, so tests can assert on it
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


_BURST_SECONDS = 0.02


def start_model_source(root_dir) -> ModelSourceServer:
    """Serve `root_dir` on 127.0.0.1 at a free port from a daemon thread; return the running server."""
    server = ModelSourceServer(Path(root_dir))
    server.start()
    return server


@dataclass(frozen=True)
class _Plan:
    """What one GET sends: the announced bytes [start, end) and the faults that apply to this response."""

    file: Path
    real_size: int
    start: int
    end: int
    flips: frozenset
    cut_after: int | None
    extra: int


class ModelSourceServer:
    """The running source: its URL, `revisions`, the fault switches and what it has seen."""

    def __init__(self, root_dir: Path):
        self.root_dir = root_dir.resolve()
        self.revisions: dict = {}
        self.lfs_min_bytes: int | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list = []
        self._bytes_sent = 0
        self._corruptions: dict = {}  # key -> list of [offset, times left]
        self._sizes: dict = {}  # key -> announced size
        self._truncations: dict = {}  # key -> [after_bytes, times left]
        self._oversizes: dict = {}  # key -> [extra, times left]
        self._statuses: dict = {}  # key -> [status, times left]
        self._vanish_at: int | None = None
        self._ignores_ranges = False
        self._vanish_mode = "reset"
        self._rate: float | None = None
        self._link_free_at = 0.0
        self._hashes: dict = {}
        self._connections: set = set()
        self._resets: set = set()
        self._httpd = _SourceHTTPServer(self)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_port}"
        # A short poll interval: shutdown() waits for serve_forever to notice (0.5 s by default, per test).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="model-source", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and cut every open connection, even ones stuck mid-request or mid-body."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shut_down_quietly(connection)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ModelSourceServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what the server has seen ---

    @property
    def requests(self) -> list:
        """A snapshot of (method, raw path, Range header or None), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._bytes_sent

    # --- faults ---

    def corrupt(self, path: str, offset: int, times: int = 1) -> None:
        """Flip (xor 0xFF) the byte at `offset` in the next `times` GET bodies that would carry that byte."""
        with self._lock:
            self._corruptions.setdefault(_key(path), []).append([offset, times])

    def wrong_size(self, path: str, size: int | None) -> None:
        """Announce `size` for `path` (body truncated or zero-padded to match) until set back to None."""
        with self._lock:
            _set_or_clear(self._sizes, _key(path), size)

    def truncate(self, path: str, after_bytes: int, times: int = 1) -> None:
        """The next `times` GETs of `path` close the connection after `after_bytes` bytes of body (times=0:
        none any more)."""
        with self._lock:
            _set_or_clear(self._truncations, _key(path), [after_bytes, times] if times > 0 else None)

    def ignore_ranges(self, ignore: bool = True) -> None:
        """Answer every GET with the whole file (200) whatever its Range header, as `python3 -m http.server` does."""
        with self._lock:
            self._ignores_ranges = ignore

    def oversize(self, path: str, extra: int, times: int = 1) -> None:
        """The next `times` GETs of `path` send `extra` garbage bytes after the announced body, then close
        (not on a response that `truncate` cuts)."""
        with self._lock:
            self._oversizes[_key(path)] = [extra, times]

    def fail_status(self, path: str, status: int, times: int = 1) -> None:
        """The next `times` requests (GET or HEAD) for `path` answer `status` with a short text body."""
        with self._lock:
            self._statuses[_key(path)] = [status, times]

    def vanish_after(self, total_bytes: int, mode: str = "reset") -> None:
        """Once `bytes_sent` reaches `total_bytes`, bodies stop there and every later request is reset
        (mode "reset": TCP RST, no response) or answered 503 (mode "503"). Counts from server start:
        pass `server.bytes_sent + n` for "n more bytes"."""
        if mode not in ("reset", "503"):
            raise ValueError(f"unknown vanish mode {mode!r}")
        with self._lock:
            self._vanish_at, self._vanish_mode = total_bytes, mode

    def restore(self) -> None:
        """Undo vanish_after: the source is back."""
        with self._lock:
            self._vanish_at = None

    def rate_limit(self, bytes_per_second: float | None) -> None:
        """Pace all body bytes, over all connections together, to this rate; None removes the limit."""
        with self._lock:
            self._rate = bytes_per_second
            self._link_free_at = time.monotonic()

    # --- used by the handler ---

    def _record(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self._requests.append((method, path, range_header))

    def _vanished(self) -> str | None:
        with self._lock:
            gone = self._vanish_at is not None and self._bytes_sent >= self._vanish_at
            return self._vanish_mode if gone else None

    def _take_status(self, keys: tuple) -> int | None:
        with self._lock:
            return _take(self._statuses, keys)

    def _accepts_revision(self, repo: str, revision: str) -> bool:
        allowed = self.revisions.get(repo)
        return allowed is None or revision in allowed

    def _announced_size(self, keys: tuple, real_size: int) -> int:
        with self._lock:
            return next((self._sizes[key] for key in keys if key in self._sizes), real_size)

    def _plan_body(self, keys: tuple, file: Path, real_size: int, start: int, end: int) -> _Plan:
        with self._lock:
            cut_after = _take(self._truncations, keys)
            extra = _take(self._oversizes, keys) or 0
            last = end if cut_after is None else min(end, start + cut_after)
            flips = _take_corruptions(self._corruptions, keys, start, last)
        return _Plan(file, real_size, start, end, flips, cut_after, extra)

    def _etag(self, file: Path) -> str:
        stat = file.stat()
        cache_key = (str(file), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            digest = self._hashes.get(cache_key)
        if digest is None:
            with open(file, "rb") as handle:
                digest = hash_file(handle)
            with self._lock:
                self._hashes[cache_key] = digest
        return f'"{digest}"'

    def _reserve(self, wanted: int) -> int:
        """How many of `wanted` body bytes may go now (0: the source vanished); waits for the link."""
        with self._lock:
            n = min(wanted, self._chunk_size())
            if self._vanish_at is not None:
                n = max(0, min(n, self._vanish_at - self._bytes_sent))
            self._bytes_sent += n
            delay = self._pace(n)
        if delay > 0 and self._stopping.wait(delay):
            raise ConnectionAbortedError("model source stopped")
        return n

    def _chunk_size(self) -> int:
        # Under a limit, ~50 sends a second keep the pacing smooth for every rate.
        if self._rate is None:
            return _CHUNK
        return max(1, min(_CHUNK, int(self._rate / 50)))

    def _pace(self, n: int) -> float:
        # One shared virtual clock: each send books the link for n/rate seconds after the previous booking.
        if self._rate is None:
            return 0.0
        now = time.monotonic()
        # A link that idled for a moment may send a little at once (20 ms of credit), like a real one:
        # without it a lone stream loses a gap after every send and looks slower than the link.
        self._link_free_at = max(now - _BURST_SECONDS, self._link_free_at) + n / self._rate
        return max(0.0, self._link_free_at - now)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _mark_reset(self, connection: socket.socket) -> None:
        # SO_LINGER 0 makes close() send an RST instead of a FIN.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._resets.add(connection)

    def _forget_reset(self, connection: socket.socket) -> bool:
        with self._lock:
            if connection in self._resets:
                self._resets.discard(connection)
                return True
            return False


class _SourceHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Parallel tests open many connections at once; a full backlog (default 5) drops SYNs for a 1 s retry.
    request_queue_size = 64

    def __init__(self, source: ModelSourceServer):
        self.source = source
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); a loopback fixture needs none.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)

    def shutdown_request(self, request) -> None:
        if self.source._forget_reset(request):
            self.close_request(request)  # close without shutdown(): the RST is the first thing the peer sees
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        # Hang-ups mid-body and stop() cutting connections are part of the job, not errors.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real mirror
    timeout = _SOCKET_TIMEOUT_S
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client waits ~40 ms for each
    # small response (Nagle meets delayed ACK).
    disable_nagle_algorithm = True
    server: _SourceHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.source._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.source._untrack(self.connection)

    def log_message(self, format, *args) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def _serve(self, with_body: bool) -> None:
        source = self.server.source
        range_header = self.headers.get("Range")
        source._record(self.command, self.path, range_header)
        vanished = source._vanished()
        if vanished:
            return self._answer_vanished(vanished)
        route = _route(source.root_dir, self.path)
        if route is None:
            return self._send_message(404, "EntryNotFound")
        repo, revision, file_rel = route
        keys = (file_rel, f"{repo}/{file_rel}")
        status = source._take_status(keys)
        if status is not None:
            return self._send_message(status)
        if revision is not None and not source._accepts_revision(repo, revision):
            return self._send_message(404, "RevisionNotFound")
        file = _existing_file(source.root_dir, f"{repo}/{file_rel}")
        if file is None:
            return self._send_message(404, "EntryNotFound")
        real_size = file.stat().st_size
        total = source._announced_size(keys, real_size)
        ignores_ranges = source._ignores_ranges
        status, start, end = _parse_range(None if ignores_ranges else range_header, total)
        if status == 416:
            return self._send_unsatisfiable(total)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if not ignores_ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", source._etag(file))
        if revision is not None and source.lfs_min_bytes is not None and real_size >= source.lfs_min_bytes:
            self.send_header("X-Linked-Size", str(real_size))
            self.send_header("X-Linked-Etag", source._etag(file))
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{total}")
        self.end_headers()
        if with_body:
            self._send_body(source._plan_body(keys, file, real_size, start, end))

    def _send_body(self, plan: _Plan) -> None:
        left = plan.end - plan.start if plan.cut_after is None else plan.cut_after
        for position, chunk in _read_content(plan.file, plan.real_size, plan.start, plan.end):
            chunk = _flip_bytes(chunk, position, plan.flips)[:left]
            if not self._write_body(chunk):
                self.close_connection = True  # the source vanished mid-body
                return
            left -= len(chunk)
            if left <= 0:
                break
        if plan.extra and plan.cut_after is None and not self._write_body(_GARBAGE_BYTE * plan.extra):
            self.close_connection = True
            return
        if plan.cut_after is not None or plan.extra:
            # No "Connection: close" header: a broken server doesn't announce it; the client finds out.
            self.close_connection = True

    def _write_body(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            n = self.server.source._reserve(len(view))
            if n == 0:
                return False
            self.wfile.write(view[:n])
            view = view[n:]
        return True

    def _answer_vanished(self, mode: str) -> None:
        if mode == "503":
            self._send_message(503, close=True)
        else:
            self.server.source._mark_reset(self.connection)
            self.close_connection = True

    def _send_unsatisfiable(self, total: int) -> None:
        self.send_response(416)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes */{total}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_message(self, status: int, error_code: str | None = None, close: bool = False) -> None:
        body = f"{status} {self.responses.get(status, ('',))[0]}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if error_code:
            self.send_header("X-Error-Code", error_code)  # as Hugging Face does
        if close:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _key(path: str) -> str:
    return path.strip("/")


def _set_or_clear(table: dict, key: str, value) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def _take(table: dict, keys: tuple):
    """The value of the first counted fault under `keys`, spending one of its times (caller holds the lock)."""
    for key in keys:
        entry = table.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del table[key]
            return entry[0]
    return None


def _take_corruptions(table: dict, keys: tuple, start: int, end: int) -> frozenset:
    """Offsets in [start, end) to flip in this body, spending one time of each (caller holds the lock)."""
    flips = set()
    for key in keys:
        entries = table.get(key, [])
        for entry in entries:
            if start <= entry[0] < end:
                flips.add(entry[0])
                entry[1] -= 1
        kept = [entry for entry in entries if entry[1] > 0]
        _set_or_clear(table, key, kept or None)
    return frozenset(flips)


def _shut_down_quietly(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its handler


def _is_safe_name(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")


def _is_organisation(directory: Path) -> bool:
    # An org directory holds repos only; a repo directory holds at least one file of its own.
    if not directory.is_dir():
        return False
    with os.scandir(directory) as entries:
        return not any(entry.is_file() for entry in entries)


def _route(root: Path, raw_path: str) -> tuple | None:
    """(repo, revision or None, file path in the repo) for a request path, or None if it can't be one."""
    # Split before decoding, so that %2F stays inside a name (and is then refused, except in a revision).
    names = [unquote(part) for part in urlsplit(raw_path).path.split("/")[1:]]
    repo_length = 2 if len(names) > 2 and _is_safe_name(names[0]) and _is_organisation(root / names[0]) else 1
    repo, rest = names[:repo_length], names[repo_length:]
    revision = None
    if len(rest) >= 3 and rest[0] == "resolve":
        revision, rest = rest[1], rest[2:]
    if not rest or not all(_is_safe_name(name) for name in repo + rest):
        return None
    return "/".join(repo), revision, "/".join(rest)


def _existing_file(root: Path, relative: str) -> Path | None:
    # realpath also catches symlinks that lead out of root.
    real = os.path.realpath(root / relative)
    if not real.startswith(str(root) + os.sep) or not os.path.isfile(real):
        return None
    return Path(real)


def _parse_range(header: str | None, total: int) -> tuple:
    """(status, start, end) for a Range header against `total` announced bytes; end is exclusive."""
    match = _SINGLE_RANGE.fullmatch((header or "").strip())
    if not match or match[1] == match[2] == "":
        return 200, 0, total  # none, several, another unit or malformed: the whole file
    first, last = match[1], match[2]
    if first == "":
        suffix = int(last)
        return (416, 0, 0) if suffix == 0 or total == 0 else (206, max(0, total - suffix), total)
    start = int(first)
    if start >= total or (last != "" and int(last) < start):
        return 416, 0, 0
    end = total if last == "" else min(int(last) + 1, total)
    return 206, start, end


def _read_content(file: Path, real_size: int, start: int, end: int):
    """Yield (offset, bytes) over the announced content [start, end): the file, then zeros past its end."""
    with open(file, "rb") as handle:
        handle.seek(min(start, real_size))
        position = start
        while position < end:
            n = min(_CHUNK, end - position)
            chunk = handle.read(n) if position < real_size else b""
            yield position, chunk + bytes(n - len(chunk))
            position += n


def _flip_bytes(chunk: bytes, position: int, flips: frozenset) -> bytes:
    hits = [offset - position for offset in flips if position <= offset < position + len(chunk)]
    if not hits:
        return chunk
    data = bytearray(chunk)
    for index in hits:
        data[index] ^= 0xFF
    return bytes(data)
