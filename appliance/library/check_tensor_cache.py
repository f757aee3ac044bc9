"""Cross-check an MLC model's tensor cache (tensor-cache.json / ndarray-cache.json) against its files."""

from __future__ import annotations

import json
import os
import re
import stat

from appliance.hash_file import hash_file
from appliance.library.library_errors import ManifestError
from appliance.library.resolve_model_path import resolve_model_path

# tvmjs.dump_tensor_cache writes tensor-cache.json; MLC LLM before the rename wrote ndarray-cache.json.
_CACHE_NAMES = ("tensor-cache.json", "ndarray-cache.json")
# A real cache is about 1 KiB per tensor; anything this big is not one.
_MAX_CACHE_BYTES = 64 * 1024 * 1024
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_SHARD = re.compile(r"params_shard_[^/]*\.bin")


def _open_regular_file(model_dir, relative: str):
    path = resolve_model_path(model_dir, relative)
    # O_NOFOLLOW: a link swapped in after the check is refused; O_NONBLOCK: a FIFO does not hang us.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ManifestError(f"{relative!r} is not a regular file")
    return open(fd, "rb")


def _load_cache(model_dir, name: str, size: int) -> dict:
    if size > _MAX_CACHE_BYTES:
        raise ManifestError(f"{name} is {size} bytes: too big to be a tensor cache")
    with _open_regular_file(model_dir, name) as file:
        data = file.read(_MAX_CACHE_BYTES + 1)
    try:
        cache = json.loads(data)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ManifestError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(cache, dict):
        raise ManifestError(f"{name} is not a JSON object")
    if not isinstance(cache.get("records"), list):
        raise ManifestError(f"{name} has no 'records' list")
    return cache


def _check_record(model_dir, name: str, index: int, record, files: dict[str, int]) -> None:
    if not isinstance(record, dict):
        raise ManifestError(f"{name}: record {index} is not an object")
    data_path, nbytes = record.get("dataPath"), record.get("nbytes")
    if not isinstance(data_path, str):
        raise ManifestError(f"{name}: record {index} has no string 'dataPath'")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ManifestError(f"{name}: record {index} ({data_path!r}) has no integer 'nbytes'")
    try:
        resolve_model_path(model_dir, data_path)
    except ManifestError as error:
        raise ManifestError(f"{name}: record {index} has a bad dataPath: {error.message}") from None
    if data_path not in files:
        raise ManifestError(f"{name}: {data_path!r} is missing from the model directory")
    if files[data_path] != nbytes:
        raise ManifestError(f"{name}: {data_path!r} is {files[data_path]} bytes, the cache says {nbytes}")
    if "md5sum" in record and not (isinstance(record["md5sum"], str) and _MD5.fullmatch(record["md5sum"])):
        raise ManifestError(f"{name}: record {index} ({data_path!r}) has a malformed 'md5sum'")


def _compute_md5(model_dir, relative: str) -> str:
    with _open_regular_file(model_dir, relative) as file:
        # md5 only as tvmjs' checksum, not for security.
        return hash_file(file, "md5", usedforsecurity=False)


def check_tensor_cache(model_dir, files: dict[str, int]) -> None:
    """Check an MLC directory's tensor cache against `files` (relative path -> size); ManifestError if not.

    Every shard record's dataPath must be a listed file of exactly `nbytes` bytes and match its `md5sum`
    where it has one; every params_shard_*.bin must be referenced by a record.
    """
    name = next((candidate for candidate in _CACHE_NAMES if candidate in files), None)
    if name is None:
        raise ManifestError("MLC model directory has no tensor-cache.json (or ndarray-cache.json)")
    cache = _load_cache(model_dir, name, files[name])
    md5sums = {}
    for index, record in enumerate(cache["records"]):
        _check_record(model_dir, name, index, record, files)
        if "md5sum" in record:
            md5sums[record["dataPath"]] = record["md5sum"].lower()
    referenced = {record["dataPath"] for record in cache["records"]}
    unreferenced = sorted(path for path in files if _SHARD.fullmatch(path) and path not in referenced)
    if unreferenced:
        raise ManifestError(f"{name} does not reference {', '.join(map(repr, unreferenced))}")
    # Hash last: the cheap checks above fail fast on a broken directory.
    for data_path, expected in sorted(md5sums.items()):
        if _compute_md5(model_dir, data_path) != expected:
            raise ManifestError(f"{data_path!r} does not match its md5sum in {name}")
