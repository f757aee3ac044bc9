"""Read one model file whole from an HTTP source that ignores ranges: one pass, capped at the manifest's size."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from appliance.library.build_source_url import build_source_url
from appliance.library.library_errors import SourceError
from appliance.library.library_types import ModelSource


def _check_answer(response: httpx.Response, url: str, file_size: int) -> None:
    if response.status_code == 404:
        raise SourceError(code="source_missing_file", message=f"{url} is not on the source (404)")
    if response.status_code != 200:
        raise SourceError(code="source_bad_response", message=f"{url} answered {response.status_code} (expected 200)")
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        # Encoded bytes would never match the manifest; asked for identity, the source should not send them.
        raise SourceError(
            code="source_bad_response",
            message=f"{url} sent the file {response.headers['content-encoding']}-encoded, not as it is",
        )
    announced = response.headers.get("content-length")
    if announced is not None and (not announced.isdigit() or int(announced) != file_size):
        raise SourceError(
            code="source_wrong_size",
            message=f"{url} is {announced} bytes on the source; the manifest says {file_size}",
        )


def stream_source_file(
    source: ModelSource, path: str, *, file_size: int, client: httpx.Client
) -> Generator[bytes, None, None]:
    """The bytes of `path` from its start, chunk by chunk as they arrive, or SourceError saying what went wrong.

    Never more than `file_size` bytes are taken (a hostile source cannot make the unit read more); a body that
    ends early, a dropped connection or a timeout mid-way is "source_short_read" (the download broke, the
    source may be fine); no answer at all is "source_unavailable". Close the iterator to stop early.
    """
    url = build_source_url(source, path)
    received, answered = 0, False
    try:
        with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            answered = True
            _check_answer(response, url, file_size)
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > file_size:
                    raise SourceError(
                        code="source_wrong_size",
                        message=f"{url} sent more than the {file_size} bytes the manifest says it has",
                    )
                yield chunk
    except httpx.HTTPError as exc:
        if not answered:
            raise SourceError(code="source_unavailable", message=f"{url}: {exc.__class__.__name__}: {exc}") from exc
        raise SourceError(
            code="source_short_read",
            message=f"{url} broke off after {received} of {file_size} bytes ({exc.__class__.__name__}: {exc})",
        ) from exc
    if received < file_size:
        raise SourceError(code="source_short_read", message=f"{url} ended after {received} of {file_size} bytes")
