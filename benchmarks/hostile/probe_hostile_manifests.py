"""The manifests group: installs from hostile sources (admin API) and hostile manifests (`iplm models add`)
end in a clean error, with nothing installed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.hostile.hostile_types import OWNER_DEVICE, HostileUnit, Keepsake, Probe

_INSTALL_S = 90  # every install has failed by then (the fetcher retries a broken source a few times)
_SHA = "0" * 64
_PIECE = 64 * 1024


def _file(path, size=10, pieces=None) -> dict:
    return {"path": path, "size": size, "sha256": _SHA, "pieces": [_SHA] if pieces is None else pieces}


def _manifest(*files: dict) -> dict:
    return {"version": 1, "format": "mlc", "piece_size": _PIECE, "files": list(files), "root": _SHA}


# (label, the manifest file's bytes): each must be refused by `iplm models add` with a message, no traceback.
_MANIFESTS = (
    ("not JSON", b"{manifest"),
    ("a nesting bomb", b"[" * 100_000 + b"]" * 100_000),
    ("a JSON list", b"[1, 2]"),
    ("a path out of the model", json.dumps(_manifest(_file("../../../etc/cron.d/x"))).encode()),
    ("an absolute path", json.dumps(_manifest(_file("/etc/passwd"))).encode()),
    ("a native library", json.dumps(_manifest(_file("model.so"))).encode()),
    ("a negative size", json.dumps(_manifest(_file("a.bin", size=-1, pieces=[]))).encode()),
    ("pieces that do not add up", json.dumps(_manifest(_file("a.bin", size=10**12))).encode()),
    ("a piece size of 1 byte", json.dumps({**_manifest(_file("a.bin")), "piece_size": 1}).encode()),
    ("200000 files (a 40 MB manifest)", json.dumps(_manifest(*(_file(f"f{i}.bin") for i in range(200_000)))).encode()),
)


_RIGHT_BYTES = ("hostile-oversize",)  # its answers hold the right bytes, junk after them


def _install_from_sources(unit: HostileUnit) -> list[Probe]:
    probes = []
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{OWNER_DEVICE}")
    with httpx.Client(base_url=unit.url, timeout=30, transport=transport) as http:
        if http.post("/api/admin/session", json={"pin": unit.pin}).status_code != 200:
            return [Probe("the owner signs in", None, False, note="the owner's PIN was refused")]
        started = {
            model: http.post(f"/api/admin/models/{model}/install").status_code for model, _ in unit.hostile_models
        }
        deadline, models = time.monotonic() + _INSTALL_S, {}
        while time.monotonic() < deadline:
            models = {m["id"]: m for m in http.get("/api/admin/models").json()["models"]}
            jobs = [models.get(model, {}).get("job") or {} for model in started]
            if all(job.get("state") in ("installed", "failed", "cancelled") for job in jobs):
                break
            time.sleep(0.5)
    for model, what in unit.hostile_models:
        job = models.get(model, {}).get("job") or {}
        error = (job.get("error") or {}).get("code")
        refused = job.get("state") == "failed" and error is not None and models[model]["state"] != "installed"
        # Garbage after a correct body leaves the pieces right: an install that verified every one of them is
        # as safe an end as a clean error (which it is when the client reuses that connection and reads junk).
        verified = model in _RIGHT_BYTES and job.get("state") == "installed" and models[model]["state"] == "installed"
        note = f"job {job.get('state')}, model {models.get(model, {}).get('state')}"
        if verified:
            probes.append(Probe(f"install from a source that {what}", started[model], True, note))
        else:
            probes.append(Probe(f"install from a source that {what}", started[model], refused, note, error))
    return probes


def _add_manifests(unit: HostileUnit, work: Path) -> list[Probe]:
    probes = []
    for number, (label, data) in enumerate(_MANIFESTS):
        path = work / f"hostile-manifest-{number}.json"
        path.write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-m", "appliance.cli.main", "models", "add", f"hostile-manifest-{number}"]
            + ["--manifest", str(path), "--url", "http://127.0.0.1:9/", "--data-dir", str(unit.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = (done.stderr.strip().splitlines() or [""])[-1][:100]
        clean = done.returncode == 2 and "Traceback" not in done.stderr
        probes.append(Probe(f"iplm models add: {label}", None, clean, said, f"exit {done.returncode}"))
    return probes


def probe_hostile_manifests(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Each hostile source's install fails with an error code and leaves the model not installed (or, for junk after
    correct bodies, installs with every piece verified); each
    hostile manifest is refused by the CLI (exit 2, a message) while the unit serves."""
    return _install_from_sources(unit) + _add_manifests(unit, unit.data_dir.parent)
