"""A bare MQTT client for the mesh lab, run inside a unit's namespace (an attacker's or an observer's view).

python -m tests.mesh.run_lab_probe capture HOST PORT DATA_DIR NODE TOPIC
    prints {"connack": reason, "payload": base64 of the first message} (the retained one)
python -m tests.mesh.run_lab_probe publish HOST PORT DATA_DIR NODE TOPIC BASE64
    prints {"connack": reason, "published": bool}

It connects over TLS with the certificate of unit NODE for the mesh key stored in DATA_DIR (made there if
needed): a member, a stolen key, or another mesh. {"connack": "no connection"}: the broker never admitted it.
"""

from __future__ import annotations

import base64
import json
import queue
import sys

from appliance.mesh.identity.ensure_unit_identity import ensure_unit_identity
from appliance.mesh.key.load_mesh_key import load_mesh_key
from tests.mesh.mqtt_test_client import connect_test_client


def main(argv: list[str]) -> int:
    command, host, port, data_dir, node, topic = argv[:6]
    key = load_mesh_key(data_dir)
    assert key is not None, f"no mesh key in {data_dir}"
    try:
        probe = connect_test_client(int(port), host=host, identity=ensure_unit_identity(data_dir, node, key))
        reason = probe.wait_connack(timeout=3)
    except (OSError, queue.Empty):  # the handshake failed, or the broker closed the connection after it
        print(json.dumps({"connack": "no connection"}), flush=True)
        return 0
    try:
        result: dict = {"connack": reason.getName()}
        if not reason.is_failure and command == "capture":
            probe.subscribe(topic)
            try:
                result["payload"] = base64.b64encode(probe.wait_message().payload).decode("ascii")
            except queue.Empty:
                result["payload"] = None
        elif not reason.is_failure and command == "publish":
            info = probe.client.publish(topic, base64.b64decode(argv[6]), qos=1)
            info.wait_for_publish(5)
            result["published"] = info.is_published()
        print(json.dumps(result), flush=True)
    finally:
        probe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
