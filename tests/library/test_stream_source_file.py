"""One pass over a file from a source that ignores ranges, against a raw loopback server that misbehaves."""

from __future__ import annotations

import contextlib
import socket
import threading

import httpx
import pytest

from appliance.library.library_errors import SourceError
from appliance.library.library_types import ModelSource
from appliance.library.stream_source_file import stream_source_file

SIZE = 100_000


@contextlib.contextmanager
def _raw_server(answer):
    """A one-connection HTTP server on 127.0.0.1: answer(connection, release) writes whatever it likes."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)  # the request
            with contextlib.suppress(OSError):  # the client may hang up first: that is the point
                answer(connection, release)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield ModelSource(kind="url", base=f"http://127.0.0.1:{listener.getsockname()[1]}")
    finally:
        release.set()
        thread.join(timeout=10)
        listener.close()


def _read_all(source: ModelSource, timeout: float = 10.0) -> tuple[bytes, SourceError | None]:
    received = bytearray()
    with httpx.Client(timeout=httpx.Timeout(timeout)) as client:
        try:
            for chunk in stream_source_file(source, "model.bin", file_size=SIZE, client=client):
                received += chunk
        except SourceError as exc:
            return bytes(received), exc
    return bytes(received), None


def test_a_source_that_sends_more_than_the_manifest_says_is_cut_off():
    def endless(connection, _release) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # no length: ends when it closes
        for _ in range(200):  # 12.8 MB if nobody stops it
            connection.sendall(b"x" * 65536)

    with _raw_server(endless) as source:
        received, error = _read_all(source)
    assert error is not None and error.code == "source_wrong_size" and "more than the 100000 bytes" in error.message
    assert len(received) <= SIZE  # never more than the manifest's size handed on


def test_a_source_that_stalls_mid_file_is_a_broken_download():
    def stall(connection, release) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE + b"y" * 1000)
        release.wait(30)  # then nothing, until the test is over

    with _raw_server(stall) as source:
        received, error = _read_all(source, timeout=0.3)
    assert error is not None and error.code == "source_short_read"
    assert "broke off after 1000 of 100000 bytes" in error.message and "Timeout" in error.message
    assert received == b"y" * 1000


def test_a_source_that_closes_early_is_a_broken_download():
    def close_early(connection, _release) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 5000)

    with _raw_server(close_early) as source:
        received, error = _read_all(source)
    assert error is not None and error.code == "source_short_read" and "ended after 5000 of 100000" in error.message


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", "source_wrong_size"),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "source_missing_file"),
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", "source_bad_response"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 100000\r\n\r\n", "source_bad_response"),
    ],
)
def test_answers_that_cannot_be_the_file_are_refused_before_any_byte(head, code):
    with _raw_server(lambda connection, _release: connection.sendall(head)) as source:
        received, error = _read_all(source)
    assert error is not None and error.code == code and received == b""


def test_a_source_that_does_not_answer_is_unavailable():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    _, error = _read_all(ModelSource(kind="url", base=f"http://127.0.0.1:{port}"))
    assert error is not None and error.code == "source_unavailable"
