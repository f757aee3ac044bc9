"""The pure name rules for a path inside a model directory (no file system access)."""

from __future__ import annotations

import re
import unicodedata

from appliance.library.library_errors import ManifestError

# Limits of common file systems (ext4, exFAT on USB sticks): bytes per name and per path.
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 1024
_DRIVE = re.compile(r"[A-Za-z]:")


def _describe(relative: str) -> str:
    # repr() keeps control characters visible in the error message.
    return repr(relative) if len(relative) <= 120 else repr(relative[:120]) + "..."


def _check_component(component: str, relative: str) -> None:
    if component == "":
        raise ManifestError(f"path {_describe(relative)} has an empty component (leading, doubled or trailing '/')")
    if component == "..":
        raise ManifestError(f"path {_describe(relative)} has a '..' component")
    if set(component) == {"."}:
        raise ManifestError(f"path {_describe(relative)} has a '.'-only component {component!r}")
    if component.startswith("."):
        # Hidden names are the library's own (".iplm-partial") and are never in a built manifest.
        raise ManifestError(f"path {_describe(relative)} has a hidden component {component!r}")
    if len(component.encode("utf-8")) > _MAX_COMPONENT_BYTES:
        raise ManifestError(f"path {_describe(relative)} has a component over {_MAX_COMPONENT_BYTES} bytes")


def check_relative_path(relative) -> str:
    """Return `relative` if it is a safe relative POSIX path for a model file; ManifestError if not.

    Refused: non-strings, empty, absolute, backslashes, NUL or control characters, text that is not
    UTF-8 encodable, Windows drive letters, empty/'.'-only/'..'/hidden components (so trailing slashes),
    over 255 UTF-8 bytes per component or 1024 in all.
    """
    if not isinstance(relative, str):
        raise ManifestError(f"path must be a string, not {type(relative).__name__}")
    if relative == "":
        raise ManifestError("path is empty")
    try:
        encoded = relative.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: names that were not valid UTF-8 on disk.
        raise ManifestError(f"path {_describe(relative)} is not valid UTF-8") from None
    if len(encoded) > _MAX_PATH_BYTES:
        raise ManifestError(f"path {_describe(relative)} is over {_MAX_PATH_BYTES} bytes")
    if any(unicodedata.category(char) == "Cc" for char in relative):
        raise ManifestError(f"path {_describe(relative)} contains a NUL or control character")
    if "\\" in relative:
        raise ManifestError(f"path {_describe(relative)} contains a backslash")
    if relative.startswith("/"):
        raise ManifestError(f"path {_describe(relative)} is absolute")
    if _DRIVE.match(relative):
        raise ManifestError(f"path {_describe(relative)} starts with a Windows drive letter")
    for component in relative.split("/"):
        _check_component(component, relative)
    return relative
