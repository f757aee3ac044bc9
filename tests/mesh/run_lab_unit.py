"""One lab unit, run inside its network namespace: its own broker and mesh agent (start_unit_mesh).

    python -m tests.mesh.run_lab_unit --data-dir D --address A [--port 1883] [--peer HOST:PORT]...

The data dir must hold a mesh key (store_mesh_key). Prints JSON lines on stdout:
    {"event": "starting", "t": ..., "node": ...}   (before the broker and the agent start)
    {"event": "ready", "t": ..., "node": ..., "mesh_id": ..., "broker_pid": ...}
    {"event": "peers", "t": ..., "peers": {node: {state, via, reason, last_seen}}, "links": ..., "drops": ...}
("peers" on every change, and every second; links and drops only once "ready"). Reads commands on stdin, one a line:
    add HOST PORT | restart-broker | stop
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time

from appliance.mesh.agent.describe_unit_presence import describe_unit_presence
from appliance.mesh.agent.mesh_agent_types import MANUAL_PEERS_SETTING, AgentTiming
from appliance.mesh.agent.start_unit_mesh import start_unit_mesh
from appliance.mesh.discovery.parse_peer_address import parse_peer_address
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.write_setting import write_setting

_print_lock = threading.Lock()


def _emit(record: dict) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()


def _emit_peers(peers: dict, agent=None) -> None:
    peers = {
        node: {key: getattr(entry, key) for key in ("state", "via", "reason", "last_seen", "since")}
        for node, entry in peers.items()
    }
    extra = {"links": agent.links(), "drops": agent.drops()} if agent is not None else {}
    _emit({"event": "peers", "t": time.time(), "peers": peers, **extra})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--peer", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s unit %(process)d %(name)s %(levelname)s %(message)s",
    )
    open_database(args.data_dir)
    node_id = load_node_id(args.data_dir)
    write_setting(MANUAL_PEERS_SETTING, args.peer)
    holder: dict = {}

    def on_change(peers: dict) -> None:
        # Peers may show up before start_unit_mesh returns (it waits for the mDNS announcements).
        _emit_peers(peers, holder["mesh"].agent if "mesh" in holder else None)

    _emit({"event": "starting", "t": time.time(), "node": node_id})
    mesh = start_unit_mesh(
        data_dir=args.data_dir,
        node_id=node_id,
        mesh_address=args.address,
        portal_port=8080,
        broker_port=args.port,
        describe_unit=lambda: describe_unit_presence(
            node_id, name=f"lab-{args.address}", engine="llama.cpp", device_class="lab"
        ),
        timing=AgentTiming(),
        on_change=on_change,
    )
    if mesh is None:
        print("no mesh key in the data dir", file=sys.stderr)
        return 2
    holder["mesh"] = mesh
    _emit(
        {
            "event": "ready",
            "t": time.time(),
            "node": node_id,
            "mesh_id": mesh.agent.mesh_id,
            "broker_pid": mesh.broker.process().pid,
        }
    )
    stopping = threading.Event()

    def report() -> None:
        while not stopping.wait(1.0):
            _emit_peers(mesh.agent.peers(), mesh.agent)

    threading.Thread(target=report, daemon=True).start()
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "add":
                mesh.agent.add_peer(*parse_peer_address(f"{words[1]}:{words[2]}"))
            elif words[0] == "restart-broker":
                mesh.broker.restart()
                _emit({"event": "broker", "t": time.time(), "broker_pid": mesh.broker.process().pid})
            elif words[0] == "stop":
                break
    finally:
        stopping.set()
        mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
