"""A bare MQTT client for the mesh lab, run inside a unit's namespace (an attacker's or an observer's view).

python -m tests.mesh.run_lab_probe capture HOST PORT USER PASSWORD TOPIC
    prints {"connack": reason, "payload": base64 of the first message} (the retained one)
python -m tests.mesh.run_lab_probe publish HOST PORT USER PASSWORD TOPIC BASE64
    prints {"connack": reason, "published": bool}
"""

from __future__ import annotations

import base64
import json
import queue
import sys

from tests.mesh.mqtt_test_client import connect_test_client


def main(argv: list[str]) -> int:
    command, host, port, username, password, topic = argv[:6]
    probe = connect_test_client(int(port), host=host, username=username, password=password)
    try:
        reason = probe.wait_connack()
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
