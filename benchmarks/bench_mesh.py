"""Mesh benchmark: installs from k peers vs one source, join/gone times, idle traffic, HTTP vs MQTT for pieces.

Run (root: it builds network namespaces): scripts/dev bench mesh   (or .venv/bin/python -m benchmarks.bench_mesh)

Everything runs in one lab LAN of network namespaces (tests/netlab/start_net_lab.py, prefix iplm-bm,
10.213.0.x); nothing leaves the lab's namespaces and their loopbacks. Measured in one run:

1. Install speed-up. Unit 0 installs; units 1-4 are peers running `iplm serve` with the whole model
   installed and the mesh key; unit 5 is the model's source (the HF-layout test source on its lab address).
   "Every link alike": every serving unit's link (peers and source) is shaped to the same rate R (tbf,
   both ways); the installer's link is shaped too, to 5 x R by default, so that it is never the bottleneck
   (k peers at R each cannot beat an installer link of R). Rows: install_model from the source, and
   install_from_peers with k = 1, 2, 4 peer URLs, each into a fresh data dir, alternated over rounds
   (the order flips every round), medians; speed-up = source time / k-peer time.
2. Join and failure detection: units 1-4 run the mesh (tests/mesh/run_lab_unit.py: own mosquitto and
   agent, found by mDNS); a new unit starts its mesh and we time until each other unit's agent has it
   "online"; then the unit dies, alternately by kill -9 of agent and broker (the host closes their sockets)
   or by a pulled cable (nothing tells the others), and we time until each has it "gone". Each sample is a
   fresh unit in a fresh namespace (so mDNS must find it; no reconnect loop already knows its address).
3. Idle mesh traffic: units 1-4 idle in the mesh; eth0 byte counters inside each namespace over a window.
4. Transport for piece bytes, unit 1 serving unit 0, both links as in 1: every 4 MiB piece of the model
   (a) as HTTP range requests to unit 1's `iplm serve` (fetch_pieces, the installer's own client, 4 in flight)
   (b) over MQTT through a broker on unit 1 (a dedicated config: the mesh's with max_packet_size raised
   to fit a piece), a request per piece, the piece published back on a per-request topic, 4 in flight.
   Both verify every piece and keep nothing. CPU seconds of the asker and of the serving processes
   (`iplm serve`; or mosquitto plus the answering client) from /proc. Again on unshaped links, for information.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "bench-org/Bench-Mesh-q4f16_1-MLC"
MODEL_ID = "Bench-Mesh-MLC"
MB = 1_000_000
# Two layers at these sizes: ~65 MB in two ~32.4 MB shards (8 pieces of 4 MiB each), plus small JSON files.
HIDDEN, INTERMEDIATE = 2048, 6656
PREFIX = "iplm-bm"
PORTAL_PORT = 8080
SOURCE_PORT = 8000
MESH_PORT = 1883
MQTT_BENCH_PORT = 1884
PEERS = (1, 2, 3, 4)
SOURCE_UNIT = 5
KS = (1, 2, 4)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes in the lab ------------------------------------------------------------------------------------


def _run_logged(lab, index: int, argv: list[str], log: Path, **popen_kwargs) -> subprocess.Popen:
    """lab.run with the process's stderr (and stdout, unless given) into `log`."""
    with open(log, "wb") as out:
        popen_kwargs.setdefault("stdout", out)
        return lab.run(index, argv, cwd=ROOT, stderr=out, **popen_kwargs)


class _JsonProcess:
    """A helper process in a unit's namespace that speaks one JSON object a line on stdin/stdout."""

    def __init__(self, lab, index: int, argv: list[str], log: Path):
        self.log = log
        self.process = _run_logged(lab, index, argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout or ():
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def receive(self, timeout: float = 120) -> dict:
        try:
            record = self.lines.get(timeout=timeout)
        except queue.Empty:
            record = None
        if record is None or "error" in record:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise SystemExit(f"bench: {self.process.args!r} failed: {record}\n{tail}")
        return record

    def ask(self, command: dict, timeout: float = 120) -> dict:
        stdin = self.process.stdin
        assert stdin is not None  # started with stdin=PIPE
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self.receive(timeout)

    def close(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            _kill_group(self.process, signal.SIGKILL)


class _MeshUnit:
    """One tests/mesh/run_lab_unit process (own broker and agent): its events, read in a thread."""

    def __init__(self, lab, index: int, data_dir: Path, log: Path):
        self.index = index
        argv = [
            sys.executable,
            "-m",
            "tests.mesh.run_lab_unit",
            "--data-dir",
            str(data_dir),
            "--address",
            lab.units[index].address,
            "--port",
            str(MESH_PORT),
        ]
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.spawned_at = time.time()
        self.process = _run_logged(lab, index, argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.started_at = self.wait(lambda e: e["event"] == "starting", 30, "start")["t"]
        self.node = self.events[0]["node"]

    def _read(self) -> None:
        for line in self.process.stdout or ():
            with self.cond:
                self.events.append(json.loads(line))
                self.cond.notify_all()

    def wait(self, predicate, timeout: float, what: str, since: float = 0.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events:
                    if event["t"] >= since and predicate(event):
                        return event
                if time.monotonic() >= deadline:
                    raise SystemExit(f"bench: unit {self.index}: no {what} within {timeout} s")
                self.cond.wait(deadline - time.monotonic())

    def wait_peer(self, node: str, state: str, timeout: float, since: float = 0.0) -> dict:
        return self.wait(
            lambda e: e["event"] == "peers" and e["peers"].get(node, {}).get("state") == state,
            timeout,
            f"peer {node} {state}",
            since,
        )

    def kill(self) -> None:
        """kill -9 of the whole unit: its broker and its agent, no goodbye, no will."""
        ready = self.wait(lambda e: e["event"] == "ready", 10, "ready")
        try:
            os.kill(ready["broker_pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        _kill_group(self.process, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                stdin = self.process.stdin
                assert stdin is not None  # started with stdin=PIPE
                stdin.write("stop\n")
                stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                _kill_group(self.process, signal.SIGKILL)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # lab.run starts each process in its own session
    except ProcessLookupError:
        pass


def _read_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads ( /proc is shared by every network namespace)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise SystemExit(f"bench: {process.args!r} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"bench: no {text!r} in {log} within {timeout} s")


def _read_interface_bytes(lab, index: int) -> tuple[int, int]:
    unit = lab.units[index]
    out = lab.check_output(
        index,
        [
            "cat",
            f"/sys/class/net/{unit.interface}/statistics/rx_bytes",
            f"/sys/class/net/{unit.interface}/statistics/tx_bytes",
        ],
    )
    rx, tx = out.split()
    return int(rx), int(tx)


# -- 1. installs ------------------------------------------------------------------------------------------------


def _prepare_peer(work: Path, index: int, model: Path, manifest, source_url: str, key: str) -> Path:
    """A peer's data dir: the model installed (from the generated directory) and the mesh key."""
    from appliance.library.add_model import add_model
    from appliance.library.install_model import install_model
    from appliance.library.library_types import ModelSource
    from appliance.mesh.key.store_mesh_key import store_mesh_key
    from appliance.store.load_node_id import load_node_id
    from appliance.store.open_database import open_database

    data_dir = work / f"peer{index}"
    db = open_database(data_dir)
    try:
        add_model(MODEL_ID, manifest, ModelSource(kind="hf", base=source_url, repo=REPO))
        result = install_model(
            MODEL_ID, data_dir=data_dir, node_id=load_node_id(data_dir), source=ModelSource(kind="dir", base=str(model))
        )
    finally:
        db.close()
    if result["state"] != "installed":
        raise SystemExit(f"bench: peer {index}'s install ended {result['state']}")
    store_mesh_key(data_dir, key)
    return data_dir


def _alternate(sides: dict, rounds: int) -> dict[str, list]:
    results: dict[str, list] = {name: [] for name in sides}
    for i in range(rounds):
        for name in list(sides) if i % 2 == 0 else list(sides)[::-1]:
            results[name].append(sides[name]())
    return results


def _check_install(name: str, record: dict, peer_urls: list[str]) -> dict:
    if record["state"] != "installed":
        raise SystemExit(f"bench: install {name} ended {record['state']}")
    origin = sum(s["bytes"] for s in record["suppliers"] if s["origin"])
    by_peer = {s["name"]: s["bytes"] for s in record["suppliers"] if not s["origin"]}
    if peer_urls and (origin or any(by_peer.get(url, 0) == 0 for url in peer_urls)):
        raise SystemExit(f"bench: install {name} did not come from its {len(peer_urls)} peers alone: {record}")
    return record


def _measure_installs(asker: _JsonProcess, urls: dict[int, str], rounds: int) -> dict[str, list[dict]]:
    def install(name: str, peers: list[str]):
        return lambda: _check_install(name, asker.ask({"op": "install", "peers": peers}), peers)

    sides = {"source": install("source", [])}
    for k in KS:
        sides[f"k={k}"] = install(f"k={k}", [urls[i] for i in PEERS[:k]])
    sides[f"k={KS[-1]}"]()  # warm-up, not counted: first connections, first imports in the asker
    return _alternate(sides, rounds)


# -- 4. transports ----------------------------------------------------------------------------------------------


def _start_bench_broker(lab, work: Path, key: str) -> subprocess.Popen:
    from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
    from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
    from appliance.mesh.key.parse_mesh_key import parse_mesh_key

    # The mesh's own TLS settings, with an ACL open to the bench's topics only.
    identity = ensure_unit_identity(work / "bench-broker", "bench-broker", parse_mesh_key(key))
    acl = work / "bench-mqtt.acl"
    acl.write_text("pattern readwrite bench/#\n", encoding="utf-8")
    conf = render_mosquitto_conf(
        listeners=[("127.0.0.1", MQTT_BENCH_PORT), (lab.units[1].address, MQTT_BENCH_PORT)],
        tls_dir=identity.key_path.parent,
        acl_file=acl,
        user="root",
    )
    # The mesh's 1 MiB packet limit cannot carry a 4 MiB piece: this broker is for this measurement only.
    lines = [
        f"max_packet_size {4 * 1024 * 1024 + 64 * 1024}" if line.startswith("max_packet_size") else line
        for line in conf.splitlines()
    ]
    conf_path = work / "bench-mqtt.conf"
    conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if mosquitto is None:
        raise SystemExit("bench: mosquitto is not installed (scripts/dev setup --test installs it)")
    return _run_logged(lab, 1, [mosquitto, "-c", str(conf_path)], work / "bench-mqtt.log")


def _read_peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _measure_transports(
    asker: _JsonProcess, peer_url: str, serve_pids: dict[str, list[int]], address: str, rounds: int
) -> dict[str, list[dict]]:
    def run(name: str, command: dict):
        def side() -> dict:
            before = {pid: _read_cpu_seconds(pid) for pid in serve_pids[name]}
            record = asker.ask(command)
            record["serve_cpu_s"] = sum(_read_cpu_seconds(pid) - cpu for pid, cpu in before.items())
            return record

        return side

    return _alternate(
        {
            "http": run("http", {"op": "http", "peer": peer_url}),
            "mqtt": run("mqtt", {"op": "mqtt", "host": address, "port": MQTT_BENCH_PORT}),
        },
        rounds,
    )


# -- 2 and 3. the mesh agents --------------------------------------------------------------------------------


def _start_mesh_unit(lab, work: Path, index: int, key: str) -> _MeshUnit:
    from appliance.mesh.key.store_mesh_key import store_mesh_key

    data_dir = work / f"mesh{index}"
    store_mesh_key(data_dir, key)
    return _MeshUnit(lab, index, data_dir, work / f"mesh{index}.log")


def _measure_idle(lab, units: list[_MeshUnit], seconds: float) -> dict[int, tuple[float, float]]:
    before = {u.index: _read_interface_bytes(lab, u.index) for u in units}
    started = time.monotonic()
    time.sleep(seconds)
    after = {u.index: _read_interface_bytes(lab, u.index) for u in units}
    elapsed = time.monotonic() - started
    return {i: ((after[i][0] - before[i][0]) / elapsed, (after[i][1] - before[i][1]) / elapsed) for i in before}


def _measure_join_and_gone(
    lab, work: Path, key: str, observers: list[_MeshUnit], samples: int, rate: str
) -> dict[str, list]:
    """Fresh units join, then die: kill -9 of agent and broker (the host stays up and closes their sockets),
    or a pulled cable (power loss, out of range: nothing tells the others), alternately."""
    found: dict[str, list] = {
        "join": [],
        "join_from_spawn": [],
        "kill": [],
        "kill_reasons": [],
        "cut": [],
        "cut_reasons": [],
    }
    # Namespaces whose roles are over, then the ones made for joining at the start (_count_lab_units).
    free = [0, SOURCE_UNIT, *range(SOURCE_UNIT + 1, len(lab.units))]
    for sample in range(2 * samples):
        index = free[sample]
        lab.limit(index, rate=rate)  # every link alike
        joining = _start_mesh_unit(lab, work, index, key)
        end = "kill" if sample % 2 == 0 else "cut"
        try:
            for unit in observers:
                seen = unit.wait_peer(joining.node, "online", 15, since=joining.started_at)
                found["join"].append(seen["t"] - joining.started_at)
                found["join_from_spawn"].append(seen["t"] - joining.spawned_at)
            for unit in observers:  # and it sees them
                joining.wait_peer(unit.node, "online", 15)
            time.sleep(1.0)
            ended_at = time.time()
            if end == "kill":
                joining.kill()
            else:
                lab.cut(index)
            for unit in observers:
                gone = unit.wait_peer(joining.node, "gone", 30, since=ended_at)
                found[end].append(gone["t"] - ended_at)
                found[f"{end}_reasons"].append(gone["peers"][joining.node]["reason"])
        finally:
            if joining.process.poll() is None:
                joining.kill()
    return found


# -- output -----------------------------------------------------------------------------------------------------


def _compute_median(values) -> float:
    return statistics.median(values)


def _print_installs(installs: dict[str, list[dict]], size: int, rate_mbit: float, rounds: int) -> None:
    link = rate_mbit * 1e6 / 8 / MB
    base = _compute_median([r["seconds"] for r in installs["source"]])
    print(
        f"\n1. install of the model ({size / MB:.1f} MB), each serving link {rate_mbit:g} Mbit/s = {link:.2f} MB/s; "
        f"{rounds} alternated rounds, medians (all samples in brackets)"
    )
    print(f"   {'from':22}{'seconds':>9}{'MB/s':>8}{'of R':>7}{'speed-up':>10}   samples (s)")
    for name, records in installs.items():
        seconds = [r["seconds"] for r in records]
        median = _compute_median(seconds)
        k = name[2:]
        label = (
            "the source (unit 5)" if name == "source" else "1 peer (unit 1)" if k == "1" else f"{k} peers (units 1-{k})"
        )
        print(
            f"   {label:22}{median:9.2f}{size / median / MB:8.2f}{size / median / MB / link:7.2f}"
            f"{base / median:9.2f}x   {', '.join(f'{s:.2f}' for s in seconds)}"
        )
    last = installs[f"k={KS[-1]}"][-1]["suppliers"]
    shares = ", ".join(f"{s['bytes'] / MB:.1f}" for s in last if not s["origin"])
    print(
        f"   k={KS[-1]}, last round, MB served by each peer: {shares}; by the source: "
        f"{sum(s['bytes'] for s in last if s['origin']) / MB:.1f} (no peer install took a byte from the source)"
    )


def _print_join(found: dict[str, list], samples: int, observers: int) -> None:
    print(
        f"\n2. join and failure detection: {2 * samples} fresh units joining a mesh of {observers} (each seen by "
        f"{observers} units), then {samples} killed and {samples} cut off; seconds, all samples in brackets"
    )
    print(
        f"   {'join: start_unit_mesh -> others have it online':52} median {_compute_median(found['join']):.2f}   "
        f"[{', '.join(f'{v:.2f}' for v in found['join'])}]"
    )
    print(
        f"   {'  (from process spawn, Python start-up included)':52} "
        f"median {_compute_median(found['join_from_spawn']):.2f}"
    )
    for end, label in (
        ("kill", "gone: kill -9 agent+broker -> others mark it gone"),
        ("cut", "gone: cable pulled -> others mark it gone"),
    ):
        reasons = {r: found[f"{end}_reasons"].count(r) for r in sorted(set(found[f"{end}_reasons"]))}
        print(
            f"   {label:52} median {_compute_median(found[end]):.2f}   [{', '.join(f'{v:.2f}' for v in found[end])}]"
            f"  reasons {reasons}"
        )


def _print_idle(idle: dict[int, tuple[float, float]], seconds: float) -> None:
    print(f"\n3. idle mesh traffic, {len(idle)} units, {seconds:g} s window, eth0 counters in each namespace (bytes/s)")
    for index, (rx, tx) in sorted(idle.items()):
        print(f"   unit {index}: rx {rx:8.0f} B/s   tx {tx:8.0f} B/s")
    print(
        f"   mean per unit: rx {statistics.mean(v[0] for v in idle.values()):.0f} B/s, "
        f"tx {statistics.mean(v[1] for v in idle.values()):.0f} B/s"
    )


def _print_transports(results: dict[str, dict[str, list[dict]]], broker_peak: int) -> None:
    print(
        "\n4. piece transport, every piece of the model from unit 1 to unit 0, 4 requests in flight, verified; "
        "medians (CPU: the asker / the serving unit's processes, seconds per run)"
    )
    print(f"   {'link':30}{'transport':28}{'MB/s':>8}{'asker CPU':>11}{'serving CPU':>13}   MB/s samples")
    labels = {"http": "HTTP range (iplm serve)", "mqtt": "MQTT (mosquitto + client)"}
    for link, sides in results.items():
        for name, records in sides.items():
            rates = [r["bytes"] / r["seconds"] / MB for r in records]
            print(
                f"   {link:30}{labels[name]:28}{_compute_median(rates):8.2f}"
                f"{_compute_median([r['cpu_s'] for r in records]):11.2f}"
                f"{_compute_median([r['serve_cpu_s'] for r in records]):13.2f}   {', '.join(f'{v:.1f}' for v in rates)}"
            )
    print(
        f"   the benchmark broker's peak memory (VmHWM): {broker_peak / MB:.1f} MB (it holds every piece in flight "
        f"whole; the mesh's own brokers refuse packets over 1 MiB)"
    )


def _say(text: str) -> None:
    print(f"bench mesh: {text}", file=sys.stderr, flush=True)


# -- main -------------------------------------------------------------------------------------------------------


def _parse_mbit(text: str) -> float:
    from tests.netlab.start_net_lab import _parse_rate

    return _parse_rate(text if any(c.isalpha() for c in text) else f"{text}mbit") / 1e6


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="40mbit", help="every serving unit's link, tc syntax (default 40mbit)")
    parser.add_argument(
        "--installer-rate", default=None, help="the installing unit's link (default 5 x --rate; 'none': not shaped)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternated install rounds (default 2)")
    parser.add_argument(
        "--samples",
        type=int,
        default=3,
        help="fresh units joined then killed, and as many joined then cut off (default 3)",
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle traffic window (default 20)")
    parser.add_argument(
        "--transport-rounds",
        type=int,
        default=2,
        help="alternated transport rounds on the shaped link (default 2; 5 unshaped)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench mesh: needs root (network namespaces, tc)", file=sys.stderr)
        return 2
    if not (shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")):
        print("bench mesh: mosquitto is not installed", file=sys.stderr)
        return 2
    rate_mbit = _parse_mbit(args.rate)
    installer = (
        None
        if args.installer_rate == "none"
        else (_parse_mbit(args.installer_rate) if args.installer_rate else 5 * rate_mbit)
    )

    from appliance.library.build_manifest import build_manifest
    from appliance.library.library_types import DEFAULT_PIECE_SIZE
    from appliance.library.render_manifest import render_manifest
    from appliance.mesh.key.create_mesh_key import create_mesh_key
    from tests.engine.make_mlc_model_dir import make_mlc_model_dir
    from tests.netlab.start_net_lab import start_net_lab

    # A TERM (or a hang-up) unwinds like Ctrl-C does, so that the finally below removes the lab.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    began = time.monotonic()
    key = create_mesh_key()
    with tempfile.TemporaryDirectory(prefix="iplm-bench-mesh-") as tmp:
        work = Path(tmp)
        model = make_mlc_model_dir(work / "hf" / REPO, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE)
        manifest = build_manifest(model, piece_size=DEFAULT_PIECE_SIZE)
        (work / "manifest.json").write_text(json.dumps(render_manifest(manifest)), encoding="utf-8")
        (work / "mesh_key").write_text(key + "\n", encoding="ascii")
        os.chmod(work / "mesh_key", 0o600)
        _say("lab of 6 units, peers' data dirs, 4 x iplm serve, the source")
        # Every namespace is made now, before any thread reads a unit's output: pyroute2 forks to reach a
        # namespace, and a fork while threads block in reads can hang on a copied I/O lock.
        lab = start_net_lab(units=SOURCE_UNIT + 1 + max(0, 2 * args.samples - 2), prefix=PREFIX)
        helpers: list[_JsonProcess] = []
        mesh_units: list[_MeshUnit] = []
        serves: dict[int, subprocess.Popen] = {}
        try:
            address = {u.index: u.address for u in lab.units}
            source_url = f"http://{address[SOURCE_UNIT]}:{SOURCE_PORT}"
            peer_dirs = {i: _prepare_peer(work, i, model, manifest, source_url, key) for i in PEERS}
            for i in PEERS + (SOURCE_UNIT,):
                lab.limit(i, rate=f"{rate_mbit * 1e6:.0f}bit")
            if installer is not None:
                lab.limit(0, rate=f"{installer * 1e6:.0f}bit")
            for i in PEERS:
                serves[i] = _run_logged(
                    lab,
                    i,
                    [
                        sys.executable,
                        "-m",
                        "appliance.cli.main",
                        "serve",
                        "--host",
                        address[i],
                        "--port",
                        str(PORTAL_PORT),
                        "--data-dir",
                        str(peer_dirs[i]),
                        "--workers",
                        "1",
                        "--threads",
                        "1",
                        "--n-ctx",
                        "512",
                    ],
                    work / f"serve{i}.log",
                )
            source = _JsonProcess(
                lab,
                SOURCE_UNIT,
                [
                    sys.executable,
                    "-m",
                    "benchmarks.run_bench_unit",
                    "source",
                    "--root",
                    str(work / "hf"),
                    "--host",
                    address[SOURCE_UNIT],
                    "--port",
                    str(SOURCE_PORT),
                ],
                work / "source.log",
            )
            helpers.append(source)
            source.receive()
            asker = _JsonProcess(
                lab,
                0,
                [
                    sys.executable,
                    "-m",
                    "benchmarks.run_bench_unit",
                    "asker",
                    "--work",
                    str(work),
                    "--manifest",
                    str(work / "manifest.json"),
                    "--key-file",
                    str(work / "mesh_key"),
                    "--model-id",
                    MODEL_ID,
                    "--source-url",
                    source_url,
                    "--repo",
                    REPO,
                ],
                work / "asker.log",
            )
            helpers.append(asker)
            asker.receive()
            for i in PEERS:
                _wait_for_line(work / f"serve{i}.log", "serving on", serves[i])
            urls = {i: f"http://{address[i]}:{PORTAL_PORT}" for i in PEERS}

            _say(f"installs: source, k = {', '.join(map(str, KS))} peers, {args.rounds} rounds")
            installs = _measure_installs(asker, urls, args.rounds)

            _say("piece transports: HTTP range requests, MQTT")
            broker = _start_bench_broker(lab, work, key)
            responder = _JsonProcess(
                lab,
                1,
                [
                    sys.executable,
                    "-m",
                    "benchmarks.run_bench_unit",
                    "mqtt-serve",
                    "--data-dir",
                    str(peer_dirs[1]),
                    "--model-id",
                    MODEL_ID,
                    "--key-file",
                    str(work / "mesh_key"),
                    "--port",
                    str(MQTT_BENCH_PORT),
                ],
                work / "responder.log",
            )
            helpers.append(responder)
            responder.receive()
            serve_pids = {"http": [serves[1].pid], "mqtt": [broker.pid, responder.process.pid]}
            transports = {
                f"shaped ({rate_mbit:g} Mbit/s)": _measure_transports(
                    asker, urls[1], serve_pids, address[1], args.transport_rounds
                )
            }
            for i in (0, 1):
                lab.unlimit(i)
            transports["unshaped (info)"] = _measure_transports(asker, urls[1], serve_pids, address[1], 5)
            broker_peak = _read_peak_rss(broker.pid)
            lab.limit(1, rate=f"{rate_mbit * 1e6:.0f}bit")  # back to "every link alike" for the mesh
            if installer is not None:
                lab.limit(0, rate=f"{installer * 1e6:.0f}bit")

            # The piece services' part is over: free the cores for the mesh agents.
            for helper in (asker, source, responder):
                helper.close()
            _kill_group(broker, signal.SIGTERM)
            for process in serves.values():
                _kill_group(process, signal.SIGTERM)
            for process in serves.values():
                process.wait(timeout=20)

            _say(f"mesh of {len(PEERS)} units: idle traffic for {args.idle_seconds:g} s")
            mesh_units = [_start_mesh_unit(lab, work, i, key) for i in PEERS]
            for unit in mesh_units:
                for other in mesh_units:
                    if other is not unit:
                        unit.wait_peer(other.node, "online", 20)
            time.sleep(3.0)  # past the start-up announcements
            idle = _measure_idle(lab, mesh_units, args.idle_seconds)
            _say(f"join and failure detection, {2 * args.samples} fresh units")
            found = _measure_join_and_gone(lab, work, key, mesh_units, args.samples, f"{rate_mbit * 1e6:.0f}bit")
        finally:
            for unit in mesh_units:
                unit.stop()
            for helper in helpers:
                if helper.process.poll() is None:
                    helper.close()
            lab.stop()

    size = manifest.total_size
    print(
        f"iplm mesh benchmark: {os.cpu_count()} cores; lab LAN of network namespaces (tbf shaping, no delay); "
        f"MLC model of {size / MB:.1f} MB in {len(manifest.files)} files, {manifest.piece_count} pieces of "
        f"{DEFAULT_PIECE_SIZE >> 20} MiB; {time.monotonic() - began:.0f} s in all"
    )
    print(
        f'"every link alike": each serving unit (peers 1-4, source 5) is shaped to R = {rate_mbit:g} Mbit/s both '
        f"ways; the installer (unit 0) to {'no limit' if installer is None else f'{installer:g} Mbit/s'}, "
        f"so that k x R can reach it (an installer link of R would cap every k at R)"
    )
    _print_installs(installs, size, rate_mbit, args.rounds)
    _print_join(found, args.samples, len(PEERS))
    _print_idle(idle, args.idle_seconds)
    _print_transports(transports, broker_peak)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
