"""Read one byte range of one model file from a source: HTTP range request, or a local directory."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

import httpx

from appliance.library.build_source_url import build_source_url
from appliance.library.fetch_types import IGNORES_RANGES
from appliance.library.library_errors import SourceError
from appliance.library.library_types import ModelSource
from appliance.library.resolve_model_path import resolve_model_path

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _read_local(source: ModelSource, path: str, offset: int, length: int, file_size: int) -> bytes:
    # A USB stick is as untrusted as a web server: same path rules, same size checks.
    local = resolve_model_path(source.base, path)
    try:
        with open(local, "rb") as handle:
            actual = os.fstat(handle.fileno()).st_size
            if actual != file_size:
                raise SourceError(
                    code="source_wrong_size",
                    message=f"{path} on {source.base} is {actual} bytes; the manifest says {file_size}",
                )
            handle.seek(offset)
            data = handle.read(length)
    except FileNotFoundError:
        raise SourceError(code="source_missing_file", message=f"{path} is not on {source.base}") from None
    except OSError as exc:
        raise SourceError(
            code="source_unavailable", message=f"cannot read {path} on {source.base}: {exc.strerror}"
        ) from exc
    if len(data) != length:
        raise SourceError(code="source_short_read", message=f"{path} on {source.base} ended early")
    return data


def _check_range(response: httpx.Response, url: str, offset: int, length: int, file_size: int) -> None:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
    if not match or (int(match[1]), int(match[2])) != (offset, offset + length - 1):
        raise SourceError(
            code="source_bad_response",
            message=f"{url} sent the wrong range: "
            f"{response.headers.get('content-range')!r} for bytes {offset}-{offset + length - 1}",
        )
    if match[3] != "*" and int(match[3]) != file_size:
        raise SourceError(
            code="source_wrong_size",
            message=f"{url} is {match[3]} bytes on the source; the manifest says {file_size}",
        )


def _check_whole_file(response: httpx.Response, url: str, offset: int, length: int, file_size: int) -> None:
    """A 200 answers a range request with the whole file (RFC 9110 allows it): fine when that is what was asked."""
    announced = response.headers.get("content-length")
    if announced is not None and (not announced.isdigit() or int(announced) != file_size):
        raise SourceError(
            code="source_wrong_size",
            message=f"{url} answered a range request with the whole file, {announced} bytes; "
            f"the manifest says {file_size}",
        )
    if (offset, length) != (0, file_size):
        # Not read: the fetch asks this source for whole files from now on, each read once (stream_source_file).
        raise SourceError(
            code=IGNORES_RANGES, message=f"{url} answered a range request with the whole file (200, not 206)"
        )


def _read_http(
    client: httpx.Client, source: ModelSource, path: str, offset: int, length: int, file_size: int, sign
) -> bytes:
    url = build_source_url(source, path)
    headers = {"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"}
    if sign is not None:
        # The server checks the signature against the decoded path, as its framework hands it over.
        headers.update(sign("GET", unquote(urlsplit(url).path), headers["Range"]))
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                raise SourceError(code="source_missing_file", message=f"{url} is not on the source (404)")
            if response.status_code == 416:
                announced = response.headers.get("content-range", "").rpartition("/")[2]
                raise SourceError(
                    code="source_wrong_size",
                    message=f"{url} is {announced or 'of unknown size'} "
                    f"bytes on the source; the manifest says {file_size}",
                )
            if response.status_code == 200:
                _check_whole_file(response, url, offset, length, file_size)
            elif response.status_code != 206:
                raise SourceError(
                    code="source_bad_response",
                    message=f"{url} answered {response.status_code} to a range request (expected 206)",
                )
            else:
                _check_range(response, url, offset, length, file_size)
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > length:
                    raise SourceError(
                        code="source_bad_response", message=f"{url} sent more bytes than the range asked for"
                    )
    except httpx.HTTPError as exc:
        raise SourceError(code="source_unavailable", message=f"{url}: {exc.__class__.__name__}: {exc}") from exc
    if len(body) != length:
        raise SourceError(code="source_short_read", message=f"{url} sent {len(body)} of {length} bytes")
    return bytes(body)


def fetch_source_range(
    source: ModelSource,
    path: str,
    offset: int,
    length: int,
    *,
    file_size: int,
    client: httpx.Client | None = None,
    sign=None,
) -> bytes:
    """Exactly `length` bytes of `path` from `offset`, or SourceError saying what the source did wrong
    ("source_ignores_ranges": it answered with the whole file, which the fetch then streams once).

    `sign(method, path, range) -> headers` authenticates requests to mesh peers.
    """
    if source.kind == "dir":
        return _read_local(source, path, offset, length, file_size)
    if client is None:
        raise ValueError("an HTTP source needs an httpx.Client")
    return _read_http(client, source, path, offset, length, file_size, sign)
