"""Give a built wheel another platform tag: a cross-compiled wheel that its build backend tagged for the
build machine (linux_x86_64) while its libraries are for the target (linux_aarch64)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

# name-version(-build)?-python-abi-platform.whl (PEP 427); the names carry no dashes.
_WHEEL_NAME = re.compile(
    r"^(?P<stem>[^-]+-[^-]+(?:-\d[^-]*)?)-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$"
)
_PLATFORM = re.compile(r"^[a-z0-9_]+$")


def _hash_record(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def _retag_metadata(text: str, platform: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("Tag:"):
            python, abi, _ = line.split(":", 1)[1].strip().split("-")
            line = f"Tag: {python}-{abi}-{platform}"
        lines.append(line)
    return "\n".join(dict.fromkeys(lines)) + "\n"  # fat tags (a.b) collapse to one line per python-abi


def retag_wheel(wheel: Path, platform: str) -> Path:
    """Rewrite `wheel` for `platform` (a wheel platform tag, e.g. linux_aarch64): its file name, the Tag lines
    of its WHEEL file and that file's line in RECORD; returns the new wheel's path (the old one is gone, or
    is the same path when the tag did not change). ValueError for a file that is not a wheel."""
    match = _WHEEL_NAME.match(wheel.name)
    if not match:
        raise ValueError(f"{wheel.name}: not a wheel's file name (name-version-python-abi-platform.whl)")
    if not _PLATFORM.match(platform):
        raise ValueError(f"{platform!r}: not a wheel platform tag (e.g. linux_aarch64)")
    target = wheel.with_name(f"{match['stem']}-{match['python']}-{match['abi']}-{platform}.whl")
    scratch = wheel.with_name(f".{target.name}.part")
    try:
        with zipfile.ZipFile(wheel) as source:
            dist_info = f"{match['stem'].split('-')[0]}-{match['stem'].split('-')[1]}.dist-info"
            metadata_name, record_name = f"{dist_info}/WHEEL", f"{dist_info}/RECORD"
            names = source.namelist()
            if metadata_name not in names or record_name not in names:
                raise ValueError(f"{wheel.name}: no {metadata_name} or {record_name} in it")
            metadata = _retag_metadata(source.read(metadata_name).decode("utf-8"), platform).encode("utf-8")
            record = [
                f"{metadata_name},{_hash_record(metadata)}" if line.startswith(f"{metadata_name},") else line
                for line in source.read(record_name).decode("utf-8").splitlines()
            ]
            with zipfile.ZipFile(scratch, "w") as out:
                for info in source.infolist():
                    if info.filename == metadata_name:
                        data = metadata
                    elif info.filename == record_name:
                        data = ("\n".join(record) + "\n").encode("utf-8")
                    else:
                        data = source.read(info)
                    out.writestr(info, data, compress_type=info.compress_type)
    except zipfile.BadZipFile as exc:
        scratch.unlink(missing_ok=True)
        raise ValueError(f"{wheel.name}: not a zip archive ({exc})") from exc
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    os.replace(scratch, target)
    if target != wheel:
        wheel.unlink()
    return target
