"""One role of the mesh benchmark, run inside a lab unit's network namespace (benchmarks/bench_mesh.py).

    python -m benchmarks.run_bench_unit source --root DIR --host ADDR --port PORT
        the model's "source": the HF-layout test source (tests/library/model_source_server.py), bound to the
        unit's lab address instead of loopback; prints {"event": "ready", "url": ...}; stops at EOF on stdin
    python -m benchmarks.run_bench_unit asker --work DIR --manifest FILE --key-file FILE --model-id ID \\
            --source-url URL --repo REPO
        the installing unit: reads one JSON command a line on stdin, answers one JSON line on stdout:
          {"op": "install", "peers": [url...]}   install_from_peers (or install_model from the source when
                                                 peers is empty) into a fresh data dir; seconds, suppliers
          {"op": "http", "peer": url}            every piece from a peer's `iplm serve` (fetch_pieces, 4 in
                                                 flight, verified, not written); seconds, CPU seconds
          {"op": "mqtt", "host": h, "port": p}   the same pieces over MQTT (see mqtt-serve); seconds, CPU seconds
    python -m benchmarks.run_bench_unit mqtt-serve --data-dir DIR --model-id ID --key-file FILE --port PORT
        the serving side of the MQTT transport: a client of the unit's own (benchmark) broker on loopback
        that answers each piece request on bench/req/<asker> with the piece on bench/piece/<asker>/<id>

Timings are taken here, around the call itself: Python's start-up and imports are not in them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from appliance.library.add_model import add_model
from appliance.library.fetch_pieces import fetch_pieces
from appliance.library.install_model import install_model
from appliance.library.library_types import InstallProgress, Manifest, ModelSource, PieceSpec, PieceSupplier
from appliance.library.parse_manifest import parse_manifest
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from appliance.mesh.pieces.install_from_peers import install_from_peers
from appliance.store.open_database import open_database

NODE = "00000000000000b0"  # the installing unit's node id (signatures name it; nothing else does)
INFLIGHT = 4
_MQTT_QOS = 1


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def _load_secrets(key_file: str):
    return derive_mesh_secrets(parse_mesh_key(Path(key_file).read_text(encoding="ascii").strip()))


def _plan_pieces(manifest: Manifest) -> list[PieceSpec]:
    pieces = []
    for file in manifest.files:
        for index, sha in enumerate(file.pieces):
            offset = index * manifest.piece_size
            pieces.append(
                PieceSpec(file.path, index, offset, min(manifest.piece_size, file.size - offset), file.size, sha)
            )
    return pieces


# -- the source -------------------------------------------------------------------------------------------


def _run_source(args) -> int:
    import tests.library.model_source_server as mss

    class _BoundServer(mss._SourceHTTPServer):
        # The test source binds loopback; in the lab it must listen on the unit's lab address.
        def __init__(self, source):
            self.source = source
            mss.ThreadingHTTPServer.__init__(self, (args.host, args.port), mss._Handler)

    setattr(mss, "_SourceHTTPServer", _BoundServer)  # noqa: B010 (a module attribute, replaced for the lab)
    server = mss.start_model_source(args.root)
    for file in Path(args.root).rglob("*"):  # its ETags hash each file on first use: not in a timed install
        if file.is_file():
            server._etag(file.resolve())
    _emit({"event": "ready", "url": f"http://{args.host}:{server._httpd.server_port}"})
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        server.stop()
    return 0


# -- the asker ----------------------------------------------------------------------------------------------


def _install(args, manifest: Manifest, secrets, peers: list[str]) -> dict:
    data_dir = Path(tempfile.mkdtemp(dir=args.work, prefix="install-"))
    db = open_database(data_dir)  # binds the global database proxy to this fresh data dir
    updates: list[InstallProgress] = []
    try:
        add_model(args.model_id, manifest, ModelSource(kind="hf", base=args.source_url, repo=args.repo))
        started = time.perf_counter()
        if peers:
            from appliance.mesh.identity.derive_mesh_authority import derive_mesh_authority

            # The peers' answers are checked against the mesh's CA: this scratch data dir holds no mesh key.
            key = parse_mesh_key(Path(args.key_file).read_text(encoding="ascii").strip())
            result = install_from_peers(
                args.model_id,
                peers,
                data_dir=data_dir,
                node_id=NODE,
                secrets=secrets,
                authority=derive_mesh_authority(key),
                progress=updates.append,
            )
        else:
            result = install_model(args.model_id, data_dir=data_dir, node_id=NODE, progress=updates.append)
        seconds = time.perf_counter() - started
    finally:
        db.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    # JSON for the benchmark's log: the suppliers' reports as dicts.
    suppliers = next(([dataclasses.asdict(s) for s in u.suppliers] for u in reversed(updates) if u.suppliers), [])
    return {
        "state": result["state"],
        "seconds": seconds,
        "bytes": manifest.total_size,
        "suppliers": [{"name": s["name"], "origin": s["origin"], "bytes": s["bytes"]} for s in suppliers],
    }


def _fetch_http(manifest: Manifest, secrets, peer: str, model_id: str) -> dict:
    """Every piece from one peer's piece service, as install_from_peers asks for them (verified, not kept)."""

    def sign(method: str, path: str, range_header: str) -> dict:
        return {
            PEER_AUTH_HEADER: sign_peer_request(
                secrets, NODE, method, path, range_header, now_ms=int(time.time() * 1000)
            )
        }

    supplier = PieceSupplier(source=ModelSource(kind="peer", base=peer, repo=model_id), name=peer, sign=sign)
    pieces = _plan_pieces(manifest)
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
        cpu, started = time.process_time(), time.perf_counter()
        fetch_pieces(
            pieces,
            [supplier],
            client=client,
            workers=INFLIGHT,
            cancel=threading.Event(),
            on_piece=lambda piece, data: None,
            on_tick=lambda stats, rejected: None,
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "bytes": sum(p.length for p in pieces), "cpu_s": cpu}


def _connect_mqtt(host: str, port: int, key_file: str, client_id: str, on_message, subscribe: str):
    import ssl
    import tempfile

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity

    # As the mesh agent connects: mutual TLS with a certificate of the mesh (made here, in a scratch dir).
    key = parse_mesh_key(Path(key_file).read_text(encoding="ascii").strip())
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as scratch:  # the context holds the files once loaded
        identity = ensure_unit_identity(scratch, client_id, key)
        context = ssl.create_default_context(cafile=str(identity.ca_path))
        context.check_hostname = False
        context.load_cert_chain(str(identity.certificate_path), str(identity.key_path))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set_context(context)
    ready = threading.Event()

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        if not reason_code.is_failure:
            client.subscribe(subscribe, qos=_MQTT_QOS)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = on_message
    deadline = time.monotonic() + 15
    while True:  # the broker may still be starting
        try:
            client.connect(host, port, keepalive=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    if not ready.wait(15):
        raise SystemExit(f"no MQTT subscription on {host}:{port}")
    return client


def _fetch_mqtt(manifest: Manifest, key_file: str, host: str, port: int) -> dict:
    """Every piece through the serving unit's broker: a request each, the piece back on a per-request topic."""
    me = f"asker-{uuid.uuid4().hex[:8]}"
    arrived: queue.Queue = queue.Queue()
    client = _connect_mqtt(
        host, port, key_file, me, lambda c, u, msg: arrived.put((msg.topic, msg.payload)), f"bench/piece/{me}/+"
    )
    pieces = _plan_pieces(manifest)
    waiting: dict[str, PieceSpec] = {}
    try:
        cpu, started = time.process_time(), time.perf_counter()
        todo = list(enumerate(pieces))

        def ask() -> None:
            number, piece = todo.pop(0)
            waiting[str(number)] = piece
            client.publish(
                f"bench/req/{me}",
                json.dumps({"id": number, "path": piece.path, "offset": piece.offset, "length": piece.length}),
                qos=_MQTT_QOS,
            )

        while todo and len(waiting) < INFLIGHT:
            ask()
        while waiting:
            topic, payload = arrived.get(timeout=60)
            piece = waiting.pop(topic.rpartition("/")[2])
            if hashlib.sha256(payload).hexdigest() != piece.sha256:
                raise SystemExit(f"piece {piece.index} of {piece.path} came over MQTT corrupted")
            if todo:
                ask()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        client.disconnect()
        client.loop_stop()
    return {"seconds": seconds, "bytes": sum(p.length for p in pieces), "cpu_s": cpu}


def _run_asker(args) -> int:
    manifest = parse_manifest(json.loads(Path(args.manifest).read_text(encoding="utf-8")))
    secrets = _load_secrets(args.key_file)
    _emit({"event": "ready"})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "install":
                _emit(_install(args, manifest, secrets, command["peers"]))
            elif command["op"] == "http":
                _emit(_fetch_http(manifest, secrets, command["peer"], args.model_id))
            elif command["op"] == "mqtt":
                _emit(_fetch_mqtt(manifest, args.key_file, command["host"], command["port"]))
            else:
                _emit({"error": f"unknown op {command['op']!r}"})
        except Exception as exc:  # the benchmark prints it and stops
            _emit({"error": f"{exc.__class__.__name__}: {exc}"})
    return 0


# -- the serving side of the MQTT transport -----------------------------------------------------------------


def _run_mqtt_serve(args) -> int:
    model_dir = Path(args.data_dir) / "models" / args.model_id
    files: dict = {}
    holder: dict = {}

    def on_message(_client, _userdata, message) -> None:
        asker = message.topic.rpartition("/")[2]
        request = json.loads(message.payload)
        handle = files.get(request["path"]) or files.setdefault(
            request["path"], open(model_dir / request["path"], "rb")
        )
        handle.seek(request["offset"])
        data = handle.read(request["length"])
        holder["client"].publish(f"bench/piece/{asker}/{request['id']}", data, qos=_MQTT_QOS)

    holder["client"] = client = _connect_mqtt(
        "127.0.0.1", args.port, args.key_file, f"server-{uuid.uuid4().hex[:8]}", on_message, "bench/req/+"
    )
    _emit({"event": "ready"})
    try:
        sys.stdin.read()
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    source = roles.add_parser("source")
    source.add_argument("--root", required=True)
    source.add_argument("--host", required=True)
    source.add_argument("--port", type=int, default=0)
    asker = roles.add_parser("asker")
    for name in ("--work", "--manifest", "--key-file", "--model-id", "--source-url", "--repo"):
        asker.add_argument(name, required=True)
    serve = roles.add_parser("mqtt-serve")
    for name in ("--data-dir", "--model-id", "--key-file"):
        serve.add_argument(name, required=True)
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return {"source": _run_source, "asker": _run_asker, "mqtt-serve": _run_mqtt_serve}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
