"""The model source test server itself: HF-shaped paths, ranges, refusals and every injected fault."""

from __future__ import annotations

import hashlib
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.library.model_source_server import start_model_source

SEED = 20240601
MODEL = "/gpt2/resolve/main/model.bin"
TINY = "/org/tiny/resolve/main/weights.bin"
MIB = 1024 * 1024


@pytest.fixture
def files(tmp_path) -> dict:
    """Small reproducible files under tmp_path/root, and a secret just outside it."""
    rng = random.Random(SEED)
    contents = {
        "gpt2/model.bin": rng.randbytes(200_000),
        "gpt2/config.json": b'{"n_layer": 2}',
        "org/tiny/weights.bin": rng.randbytes(5000),
    }
    for relative, data in contents.items():
        path = tmp_path / "root" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    (tmp_path / "root" / "gpt2" / "escape").symlink_to(tmp_path / "secret.txt")
    return contents


@pytest.fixture
def server(tmp_path, files):
    with start_model_source(tmp_path / "root") as source:
        yield source


@pytest.fixture
def client(server):
    # verify=False: plain HTTP only, and it skips loading CA certificates (~40 ms per client).
    with httpx.Client(base_url=server.base_url, timeout=5, verify=False) as http:
        yield http


# --- raw HTTP, for what httpx hides or normalises (dot segments, early EOF, resets) ---


def open_socket(server) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def send_request(sock: socket.socket, method: str, path: str, headers: dict | None = None) -> None:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
        "",
        "",
    ]
    sock.sendall("\r\n".join(lines).encode())


def read_head(reader) -> tuple:
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers


def fetch_raw(server, path: str, headers: dict | None = None) -> tuple:
    """(status, headers, every byte after the head until the server closes) for one request."""
    with open_socket(server) as sock, sock.makefile("rb") as reader:
        send_request(sock, "GET", path, {"Connection": "close", **(headers or {})})
        status, head = read_head(reader)
        return status, head, reader.read()


def sha256_etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


# --- plain serving ---


def test_get_sends_the_file_with_its_headers(client, files):
    response = client.get(MODEL)

    assert response.status_code == 200
    assert response.content == files["gpt2/model.bin"]
    assert response.headers["content-length"] == "200000"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == sha256_etag(files["gpt2/model.bin"])


def test_head_sends_the_same_headers_without_a_body(client, files):
    head = client.head(MODEL)
    get = client.get(MODEL)

    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "accept-ranges", "etag"):
        assert head.headers[name] == get.headers[name]


@pytest.mark.parametrize(
    "url, key",
    [
        ("/gpt2/model.bin", "gpt2/model.bin"),
        ("/gpt2/resolve/v1.0/config.json", "gpt2/config.json"),
        ("/org/tiny/resolve/main/weights.bin", "org/tiny/weights.bin"),
        ("/org/tiny/resolve/refs%2Fpr%2F1/weights.bin", "org/tiny/weights.bin"),
        ("/org/tiny/weights.bin", "org/tiny/weights.bin"),
    ],
)
def test_hf_and_plain_mirror_paths_serve_the_file(client, files, url, key):
    response = client.get(url)

    assert response.status_code == 200
    assert response.content == files[key]


def test_keep_alive_serves_several_requests_on_one_connection(server, files):
    with open_socket(server) as sock, sock.makefile("rb") as reader:
        send_request(sock, "GET", MODEL, {"Range": "bytes=0-9"})
        status, head = read_head(reader)
        assert (status, reader.read(int(head["content-length"]))) == (206, files["gpt2/model.bin"][:10])

        send_request(sock, "HEAD", MODEL)
        assert read_head(reader)[0] == 200

        send_request(sock, "GET", "/gpt2/resolve/main/nope.bin")
        status, head = read_head(reader)
        assert status == 404
        reader.read(int(head["content-length"]))

        send_request(sock, "GET", TINY)
        status, head = read_head(reader)
        assert (status, reader.read(int(head["content-length"]))) == (200, files["org/tiny/weights.bin"])


def test_requests_and_bytes_sent_are_recorded(client, server):
    client.head(MODEL)
    client.get(MODEL, headers={"Range": "bytes=0-9"})

    assert server.requests == [("HEAD", MODEL, None), ("GET", MODEL, "bytes=0-9")]
    assert server.bytes_sent == 10


# --- ranges ---


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=10-19", 10, 20),
        ("bytes=199990-", 199990, 200000),
        ("bytes=-7", 199993, 200000),
        ("bytes=0-999999", 0, 200000),  # last byte past the end: clamped
        ("bytes=-999999", 0, 200000),  # suffix longer than the file: the whole file
        ("bytes=199999-199999", 199999, 200000),
    ],
)
def test_each_range_form_answers_206(client, files, header, start, end):
    response = client.get(MODEL, headers={"Range": header})

    assert response.status_code == 206
    assert response.content == files["gpt2/model.bin"][start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/200000"
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["etag"] == sha256_etag(files["gpt2/model.bin"])


@pytest.mark.parametrize("header", ["bytes=200000-", "bytes=300000-300010", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_ranges_answer_416(client, header):
    response = client.get(MODEL, headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */200000"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=-"])
def test_other_range_headers_get_the_whole_file(client, files, header):
    response = client.get(MODEL, headers={"Range": header})

    assert response.status_code == 200
    assert response.content == files["gpt2/model.bin"]


# --- refusals ---


@pytest.mark.parametrize(
    "url",
    [
        "/gpt2/resolve/main/nope.bin",
        "/nope/resolve/main/model.bin",
        "/gpt2/nope.bin",
        "/org/resolve/main/tiny",
        "/gpt2",
        "/",
        "/gpt2/resolve/main",
    ],
)
def test_missing_files_are_404(client, url):
    assert client.get(url).status_code == 404
    assert client.head(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/gpt2/../../secret.txt",
        "/gpt2/resolve/main/../../../secret.txt",
        "/gpt2/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/gpt2/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/gpt2/resolve/main/..%5C..%5C..%5Csecret.txt",
        "/%2e%2e/secret.txt",
        "/gpt2/resolve/main/escape",  # a symlink that leads out of root
        "/gpt2/escape",
    ],
)
def test_paths_outside_the_root_are_404(server, url):
    status, _, body = fetch_raw(server, url)

    assert status == 404
    assert b"top secret" not in body


def test_revisions_limit_what_a_repo_answers(client, server):
    server.revisions["gpt2"] = {"main", "abc123"}

    assert client.get("/gpt2/resolve/main/config.json").status_code == 200
    assert client.get("/gpt2/resolve/abc123/config.json").status_code == 200
    refused = client.get("/gpt2/resolve/v2/config.json")
    assert refused.status_code == 404
    assert refused.headers["x-error-code"] == "RevisionNotFound"
    assert client.get("/org/tiny/resolve/anything/weights.bin").status_code == 200


# --- faults ---


def differing_offsets(got: bytes, want: bytes) -> list:
    assert len(got) == len(want)
    return [index for index, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]


def test_corrupt_flips_one_byte_exactly_times_times(client, server, files):
    data = files["gpt2/model.bin"]
    server.corrupt("model.bin", 100_000, times=2)

    assert client.get(MODEL, headers={"Range": "bytes=0-99"}).content == data[:100]  # doesn't hold it
    for _ in range(2):
        got = client.get(MODEL).content
        assert differing_offsets(got, data) == [100_000]
        assert got[100_000] == data[100_000] ^ 0xFF
    assert client.get(MODEL).content == data


def test_corrupt_counts_ranges_that_hold_the_offset(client, server, files):
    data = files["gpt2/model.bin"]
    server.corrupt("model.bin", 150)

    first = client.get(MODEL, headers={"Range": "bytes=100-199"}).content
    assert differing_offsets(first, data[100:200]) == [50]
    assert client.get(MODEL, headers={"Range": "bytes=100-199"}).content == data[100:200]


def test_faults_are_keyed_by_repo_or_root_relative_path(client, server):
    server.fail_status("org/tiny/weights.bin", 500)
    server.fail_status("config.json", 500)

    assert client.get(MODEL).status_code == 200
    assert client.get(TINY).status_code == 500
    assert client.get("/gpt2/config.json").status_code == 500


@pytest.mark.parametrize("delta", [+10, -10])
def test_wrong_size_announces_the_size_and_pads_or_cuts_the_body(client, server, files, delta):
    data = files["gpt2/model.bin"]
    size = len(data) + delta
    server.wrong_size("model.bin", size)
    announced = (data + bytes(max(0, delta)))[:size]

    assert client.head(MODEL).headers["content-length"] == str(size)
    assert client.get(MODEL).content == announced
    tail = client.get(MODEL, headers={"Range": "bytes=-20"})
    assert tail.headers["content-range"] == f"bytes {size - 20}-{size - 1}/{size}"
    assert tail.content == announced[-20:]

    server.wrong_size("model.bin", None)
    assert client.get(MODEL).content == data


def test_truncate_closes_the_connection_mid_body(client, server, files):
    data = files["gpt2/model.bin"]
    server.truncate("model.bin", 1000, times=2)

    status, head, rest = fetch_raw(server, MODEL, {"Connection": "keep-alive"})
    assert (status, head["content-length"]) == (200, "200000")
    assert rest == data[:1000]  # then EOF: the server closed a keep-alive connection
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(MODEL)
    assert client.get(MODEL).content == data


def test_truncate_with_zero_times_clears_the_fault(client, server, files):
    server.truncate("model.bin", 1000, times=5)
    server.truncate("model.bin", 1000, times=0)
    assert client.get(MODEL).content == files["gpt2/model.bin"]


def test_ignore_ranges_answers_every_get_with_the_whole_file(client, server, files):
    data = files["gpt2/model.bin"]
    server.ignore_ranges()
    response = client.get(MODEL, headers={"Range": "bytes=100-199"})
    assert response.status_code == 200 and response.content == data
    assert "accept-ranges" not in response.headers and "content-range" not in response.headers
    server.ignore_ranges(False)
    response = client.get(MODEL, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206 and response.content == data[100:200]


def test_oversize_sends_garbage_after_the_body_then_closes(client, server, files):
    data = files["gpt2/model.bin"]
    server.oversize("model.bin", 50, times=2)

    status, head, rest = fetch_raw(server, MODEL, {"Connection": "keep-alive"})
    assert (status, head["content-length"]) == (200, "200000")
    assert rest == data + b"\xa5" * 50
    # httpx stops reading at Content-Length: the garbage is invisible in the body. (Reusing that connection
    # races the garbage and the close: the next request may fail, so this uses a client of its own.)
    with httpx.Client(base_url=server.base_url, timeout=5, verify=False) as one_shot:
        assert one_shot.get(MODEL).content == data
    assert client.get(MODEL).content == data


def test_vanish_after_cuts_the_body_then_resets_every_request(client, server, files):
    data = files["org/tiny/weights.bin"]
    server.vanish_after(7000)

    assert client.get(TINY).content == data
    status, _, rest = fetch_raw(server, TINY)
    assert status == 200 and rest == data[:2000]
    assert server.bytes_sent == 7000
    with open_socket(server) as sock, pytest.raises(ConnectionResetError):
        send_request(sock, "HEAD", TINY)
        sock.recv(1)
    with pytest.raises(httpx.TransportError):
        client.get(TINY)

    server.restore()
    assert client.get(TINY).content == data


def test_vanish_after_can_answer_503(client, server, files):
    server.vanish_after(0, mode="503")

    assert client.head(TINY).status_code == 503
    assert client.get(TINY).status_code == 503
    server.restore()
    assert client.get(TINY).content == files["org/tiny/weights.bin"]


def test_fail_status_answers_times_times_then_serves(client, server, files):
    server.fail_status("model.bin", 429, times=2)

    assert client.head(MODEL).status_code == 429
    assert client.get(MODEL).status_code == 429
    assert client.get(MODEL).content == files["gpt2/model.bin"]


# --- link and concurrency ---


def test_rate_limit_paces_a_download(tmp_path, client, server):
    data = random.Random(SEED).randbytes(MIB)
    (tmp_path / "root" / "gpt2" / "big.bin").write_bytes(data)
    server.rate_limit(2 * MIB)

    started = time.monotonic()
    assert client.get("/gpt2/big.bin").content == data
    assert time.monotonic() - started >= 0.45  # 1 MiB at 2 MiB/s: 0.5 s; a lower bound only


def test_rate_limit_is_shared_by_all_connections(tmp_path, client, server):
    data = random.Random(SEED).randbytes(MIB)
    (tmp_path / "root" / "gpt2" / "big.bin").write_bytes(data)
    server.rate_limit(2 * MIB)
    halves = ["bytes=0-524287", "bytes=524288-"]

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda r: client.get("/gpt2/big.bin", headers={"Range": r}).content, halves))
    assert b"".join(parts) == data
    assert time.monotonic() - started >= 0.45


def test_parallel_ranges_reassemble_the_file(client, server, files):
    data = files["gpt2/model.bin"]
    step = len(data) // 8
    ranges = [f"bytes={start}-{start + step - 1}" for start in range(0, len(data), step)]

    with ThreadPoolExecutor(8) as pool:
        parts = list(pool.map(lambda r: client.get(MODEL, headers={"Range": r}).content, ranges))

    assert b"".join(parts) == data
    assert sorted(header for _, _, header in server.requests) == sorted(ranges)


def test_stop_does_not_wait_for_stuck_clients(server):
    server.rate_limit(1000)
    idle = open_socket(server)
    idle.sendall(b"GET /gpt2/mod")  # half a request line, never finished
    slow = open_socket(server)
    reader = slow.makefile("rb")
    send_request(slow, "GET", MODEL)
    assert read_head(reader)[0] == 200  # the body now trickles at 1000 B/s

    server.stop()  # returns although a client is stuck mid-body (the test would hang otherwise)
    assert len(reader.read()) < 200_000  # cut, not finished
    for sock in (idle, slow):
        sock.close()
    reader.close()
