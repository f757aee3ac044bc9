"""Install benchmark: install_model against a plain download, and piece hashing against sha256sum.

Run: scripts/dev bench install   (or .venv/bin/python -m benchmarks.bench_install --help)

Measured side by side in one run, alternating (the order flips every round), medians:
  - install throughput on a rate-limited link: an MLC model directory (~89 MB, generated, deterministic)
    served by the loopback HF-layout test source with `rate_limit(R)`. "raw" is one plain streaming GET
    per file (httpx, written to disk, no fsync); "ours" is install_model of the same model, admin-added
    with its manifest (so every 4 MiB piece is verified), default workers, into a fresh data dir.
    Once more on an unlimited link, for information.
  - piece verification: build_manifest (whole-file and per-piece SHA-256 in one read) against
    `sha256sum` on one large file already in the page cache.

The source runs in its own process, as a real mirror would: in this process its Python threads would
share the installer's GIL. Its rate limit paces each 64 KiB send with no burst credit, so one stream
(raw) loses the scheduling gap after every send and stays near 0.9 of the link, while parallel
streams (ours) keep it busy: the "of the link" shares say more than the raw/ours ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from appliance.hash_file import hash_file
from appliance.library.add_model import add_model
from appliance.library.build_manifest import build_manifest
from appliance.library.build_source_url import build_source_url
from appliance.library.install_model import install_model
from appliance.library.library_types import DEFAULT_PIECE_SIZE, Manifest, ModelSource
from appliance.store.open_database import open_database
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

REPO = "bench-org/Bench-q4f16_1-MLC"
MODEL_ID = "Bench-MLC"
NODE = "0123456789abcdef"
MB = 1_000_000
# Two layers at these sizes: ~89 MB in two ~45 MB shards (11 pieces of 4 MiB each), plus small JSON files.
HIDDEN, INTERMEDIATE = 2560, 6912
_BLOCK = 16 * 1024 * 1024


def _serve_source(root: str, conn) -> None:
    # Child process: the source, driven over a pipe with ("rate", bytes_per_second | None) until "stop".
    server = start_model_source(root)
    conn.send(server.base_url)
    for command, value in iter(conn.recv, ("stop", None)):
        if command == "rate":
            server.rate_limit(value)
        conn.send("ok")
    server.stop()


def _start_source(root: Path, in_process: bool) -> tuple[str, Callable, Callable]:
    """(base_url, set_rate, stop) of a source serving `root`."""
    if in_process:
        server = start_model_source(root)
        return server.base_url, server.rate_limit, server.stop
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve_source, args=(str(root), child), daemon=True)
    process.start()
    base_url = parent.recv()

    def set_rate(rate: float | None) -> None:
        parent.send(("rate", rate))
        parent.recv()

    def stop() -> None:
        parent.send(("stop", None))
        process.join(timeout=10)

    return base_url, set_rate, stop


def _alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each side per round; the order flips every round so that drifts hit every side alike."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(rounds):
        for name in list(sides) if i % 2 == 0 else list(sides)[::-1]:
            times[name].append(sides[name]())
    return times


def _download_raw(source: ModelSource, manifest: Manifest, work: Path) -> float:
    """Seconds to fetch every file with one plain streaming GET each, as curl -o would."""
    out_dir = Path(tempfile.mkdtemp(dir=work))
    try:
        start = time.perf_counter()
        with httpx.Client(timeout=30.0) as client:
            for file in manifest.files:
                with (
                    client.stream("GET", build_source_url(source, file.path)) as response,
                    open(out_dir / file.path, "wb") as out,
                ):
                    response.raise_for_status()
                    for chunk in response.iter_raw():
                        out.write(chunk)
        elapsed = time.perf_counter() - start
        sizes = {f.path: (out_dir / f.path).stat().st_size for f in manifest.files}
    finally:
        shutil.rmtree(out_dir)
    if sizes != {f.path: f.size for f in manifest.files}:
        raise SystemExit(f"bench: the raw download is incomplete: {sizes}")
    return elapsed


def _install_ours(source: ModelSource, manifest: Manifest, work: Path) -> float:
    """Seconds for install_model of the admin-added model into a fresh data dir."""
    data_dir = Path(tempfile.mkdtemp(dir=work))
    db = open_database(data_dir)  # binds the global database proxy to this data dir
    try:
        add_model(MODEL_ID, manifest, source)
        start = time.perf_counter()
        result = install_model(MODEL_ID, data_dir=data_dir, node_id=NODE, piece_size=DEFAULT_PIECE_SIZE)
        elapsed = time.perf_counter() - start
    finally:
        db.close()
        shutil.rmtree(data_dir)
    if result["state"] != "installed":
        raise SystemExit(f"bench: the install ended {result['state']}")
    return elapsed


def _measure_link(source: ModelSource, manifest: Manifest, work: Path, rounds: int) -> dict[str, list[float]]:
    return _alternate(
        {"raw": lambda: _download_raw(source, manifest, work), "ours": lambda: _install_ours(source, manifest, work)},
        rounds,
    )


def _write_random_file(path: Path, size: int) -> str:
    """Write `size` deterministic random bytes; return their SHA-256 (the read leaves them in the page cache)."""
    rng = random.Random(20240501)
    with open(path, "wb") as out:
        for offset in range(0, size, _BLOCK):
            out.write(rng.randbytes(min(_BLOCK, size - offset)))
    with open(path, "rb") as handle:
        return hash_file(handle)


def _time_tool(command: list[str], path: Path, expected: str) -> float:
    start = time.perf_counter()
    out = subprocess.run([*command, str(path)], check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - start
    if out.split()[0] != expected:  # sha256sum and openssl -r both print "<hex digest> <name>"
        raise SystemExit(f"bench: {command[0]} says {out.split()[0]}, expected {expected}")
    return elapsed


def _time_build_manifest(model_dir: Path, expected: str) -> float:
    start = time.perf_counter()
    manifest = build_manifest(model_dir, piece_size=DEFAULT_PIECE_SIZE)
    elapsed = time.perf_counter() - start
    if manifest.files[0].sha256 != expected:
        raise SystemExit(f"bench: build_manifest says {manifest.files[0].sha256}, expected {expected}")
    return elapsed


def _measure_hashing(work: Path, size: int, rounds: int) -> dict[str, list[float]]:
    model_dir = work / "hash"
    model_dir.mkdir()
    path = model_dir / "bench.gguf"  # one .gguf at the top: build_manifest takes the directory as a model
    expected = _write_random_file(path, size)
    sides = {
        "sha256sum": lambda: _time_tool(["sha256sum"], path, expected),
        "manifest": lambda: _time_build_manifest(model_dir, expected),
    }
    if shutil.which("openssl"):
        # A one-pass hasher that uses SHA-NI, for information: Debian's sha256sum does not.
        sides["openssl"] = lambda: _time_tool(["openssl", "dgst", "-sha256", "-r"], path, expected)
    return _alternate(sides, rounds)


def _compute_rate(size: int, seconds: list[float]) -> float:
    return size / statistics.median(seconds) / MB


def _print_row(label: str, base: float, ours: float, note: str = "") -> None:
    print(f"{label:34}{base:12.1f}{ours:12.1f}{ours / base:11.3f}x{note}")


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="the link's rate in MB/s (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per measurement (default 3)")
    parser.add_argument("--hash-mb", type=int, default=256, help="size of the hashed file in MB (default 256)")
    parser.add_argument(
        "--source-in-process",
        action="store_true",
        help="run the source in this process (its threads then share the installer's GIL)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="iplm-bench-") as tmp:
        work = Path(tmp)
        model = make_mlc_model_dir(work / "hf" / REPO, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE)
        manifest = build_manifest(model, piece_size=DEFAULT_PIECE_SIZE)
        size = manifest.total_size
        base_url, set_rate, stop = _start_source(work / "hf", args.source_in_process)
        source = ModelSource(kind="hf", base=base_url, repo=REPO, revision="main")
        try:
            # Warm-up, not counted: the source hashes each file once for its ETag, first calls import.
            _measure_link(source, manifest, work, 1)
            set_rate(args.rate * MB)
            limited = _measure_link(source, manifest, work, args.rounds)
            set_rate(None)
            unlimited = _measure_link(source, manifest, work, args.rounds)
        finally:
            stop()
        hashing = _measure_hashing(work, args.hash_mb * MB, args.rounds)

    print(
        f"iplm install benchmark: {os.cpu_count()} cores; MLC model of {size / MB:.1f} MB in "
        f"{len(manifest.files)} files ({manifest.piece_count} pieces of {DEFAULT_PIECE_SIZE >> 20} MiB) from "
        f"the loopback HF source ({'in this process' if args.source_in_process else 'own process'}); "
        f"{args.rounds} alternated rounds, medians"
    )
    print(f"{'':34}{'raw MB/s':>12}{'ours MB/s':>12}{'ratio':>12}")
    raw, ours = _compute_rate(size, limited["raw"]), _compute_rate(size, limited["ours"])
    _print_row(
        f"install, link {args.rate:g} MB/s",
        raw,
        ours,
        f"   of the link: raw {raw / args.rate:.2f}, ours {ours / args.rate:.2f}",
    )
    _print_row(
        "install, unlimited link (info)", _compute_rate(size, unlimited["raw"]), _compute_rate(size, unlimited["ours"])
    )
    print(f"{'':34}{'sha256sum':>12}{'manifest':>12}")
    hash_size = args.hash_mb * MB
    _print_row(
        f"hash {args.hash_mb} MB file (page cache)",
        _compute_rate(hash_size, hashing["sha256sum"]),
        _compute_rate(hash_size, hashing["manifest"]),
    )
    if "openssl" in hashing:
        print(
            f"  for information: openssl dgst -sha256 {_compute_rate(hash_size, hashing['openssl']):.1f} MB/s "
            "(one SHA-256 pass; the manifest makes two, whole file and piece)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(_main())
