"""List a model's files and sizes on its source, for an install that has no manifest yet."""

from __future__ import annotations

import json
import os
import re
import time

import httpx

from appliance.library.build_source_url import build_source_url
from appliance.library.check_relative_path import check_relative_path
from appliance.library.library_errors import ManifestError, SourceError
from appliance.library.library_types import ModelSource
from appliance.library.resolve_model_path import resolve_model_path

_MLC_CONFIG = "mlc-chat-config.json"
_TENSOR_CACHES = ("tensor-cache.json", "ndarray-cache.json")  # the older name last
# Tokenizer files an MLC directory may carry, when its config does not list them.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_MAX_CONFIG_BYTES = 16 * 1024 * 1024
_ATTEMPTS = 4
# Hugging Face names an LFS file's SHA-256 in X-Linked-Etag (on the redirect, before the CDN answers).
_LINKED_ETAG = re.compile(r'(?:W/)?"?([0-9a-f]{64})"?')


def _linked_sha256(response: httpx.Response) -> str | None:
    for answer in (*response.history, response):
        match = _LINKED_ETAG.fullmatch(answer.headers.get("x-linked-etag", "").strip().lower())
        if match:
            return match[1]
    return None


def _stat(source: ModelSource, path: str, client) -> tuple[int | None, str | None, str | None]:
    """(size, the source's commit id if it says, the LFS SHA-256 if it says) or Nones when the file is not there."""
    if source.kind == "dir":
        local = resolve_model_path(source.base, path)
        return (os.stat(local).st_size, None, None) if local.is_file() else (None, None, None)
    url = build_source_url(source, path)
    for attempt in range(_ATTEMPTS):
        # A busy mirror answers 429/5xx or drops a connection now and then: ask again before giving up.
        time.sleep(0 if attempt == 0 else 0.2 * 2**attempt)
        try:
            response = client.head(url, headers={"Accept-Encoding": "identity"})
        except httpx.HTTPError as exc:
            error = SourceError(code="source_unavailable", message=f"{url}: {exc.__class__.__name__}: {exc}")
            continue
        if response.status_code == 429 or response.status_code >= 500:
            error = SourceError(code="source_unavailable", message=f"{url} answered {response.status_code}")
            continue
        break
    else:
        raise error
    if response.status_code == 404:
        return None, None, None
    if response.status_code != 200 or "content-length" not in response.headers:
        raise SourceError(code="source_bad_response", message=f"{url} answered {response.status_code} without a size")
    answers = (response, *response.history)  # Hugging Face's own answer, not its CDN's, names the commit
    commit = next((a.headers["x-repo-commit"] for a in answers if "x-repo-commit" in a.headers), None)
    return int(response.headers["content-length"]), commit, _linked_sha256(response)


def _read_json(source: ModelSource, path: str, client) -> dict:
    size = _stat(source, path, client)[0]
    if size is None:
        raise SourceError(code="source_missing_file", message=f"{path} is not on the source")
    if size > _MAX_CONFIG_BYTES:
        raise ManifestError(code="manifest_invalid", message=f"{path} is {size} bytes: too large for a config file")
    if source.kind == "dir":
        raw = resolve_model_path(source.base, path).read_bytes()
    else:
        try:
            response = client.get(build_source_url(source, path))
        except httpx.HTTPError as exc:
            raise SourceError(code="source_unavailable", message=f"{path}: {exc}") from exc
        if response.status_code != 200:
            raise SourceError(code="source_bad_response", message=f"{path} answered {response.status_code}")
        raw = response.content
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(code="manifest_invalid", message=f"{path} on the source is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(code="manifest_invalid", message=f"{path} on the source is not a JSON object")
    return data


def _mlc_file_names(source: ModelSource, client) -> list[str]:
    config = _read_json(source, _MLC_CONFIG, client)
    cache_name, cache = None, None
    for name in _TENSOR_CACHES:
        if _stat(source, name, client)[0] is not None:
            cache_name, cache = name, _read_json(source, name, client)
            break
    if cache is None:
        raise ManifestError(
            code="manifest_invalid", message="the source has neither tensor-cache.json nor ndarray-cache.json"
        )
    records = cache.get("records")
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("dataPath"), str) for r in records
    ):
        raise ManifestError(code="manifest_invalid", message=f"{cache_name} has no usable records list")
    listed = config.get("tokenizer_files")
    tokenizers = [t for t in listed if isinstance(t, str)] if isinstance(listed, list) else list(_TOKENIZER_FILES)
    present = [t for t in tokenizers if _stat(source, t, client)[0] is not None]
    return [_MLC_CONFIG, cache_name, *[r["dataPath"] for r in records], *present]


def discover_source_files(
    model_format: str, known_files: tuple[str, ...], source: ModelSource, client: httpx.Client | None
) -> tuple[tuple[tuple[str, int], ...], str | None, dict[str, str]]:
    """((path, size) for every file of the model, the source's commit id or None, {path: SHA-256} for the
    files whose SHA-256 the source states (Hugging Face's LFS files)).

    GGUF models name their file in the whitelist; MLC models are listed by their own configs.
    """
    names = list(known_files) if model_format == "gguf" or known_files else _mlc_file_names(source, client)
    if not names:
        raise ManifestError(code="manifest_invalid", message="the whitelist names no file for this model")
    files, revision, digests = [], None, {}
    for name in dict.fromkeys(names):
        check_relative_path(name)  # a source's config must not steer writes outside the model directory
        size, commit, sha256 = _stat(source, name, client)
        if size is None:
            raise SourceError(code="source_missing_file", message=f"{name} is not on the source")
        files.append((name, size))
        revision = revision or commit
        if sha256:
            digests[name] = sha256
    return tuple(sorted(files)), revision, digests
