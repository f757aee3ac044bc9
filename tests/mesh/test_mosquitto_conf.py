import base64
import hashlib
import shutil
import stat
import subprocess

import pytest

from appliance.mesh.broker.render_mosquitto_conf import render_mosquitto_conf
from appliance.mesh.broker.write_broker_credentials import write_broker_credentials
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.mesh_types import MeshKey

SECRETS = derive_mesh_secrets(MeshKey(secret=bytes(range(32))))


def _options(conf: str) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in conf.splitlines() if line and not line.startswith("#")]


def test_the_config_admits_only_password_holders_on_the_given_listeners():
    conf = render_mosquitto_conf(
        listeners=[("127.0.0.1", 1883), ("fe80::1%mesh0", 1883)],
        password_file="/var/lib/iplm/mesh/passwd",
        log_path="/var/log/iplm/mqtt.log",
    )
    options = _options(conf)
    assert ("per_listener_settings", "false") in options and ("allow_anonymous", "false") in options
    assert ("password_file", "/var/lib/iplm/mesh/passwd") in options
    assert ("persistence", "false") in options and ("max_keepalive", "60") in options
    assert ("max_packet_size", "1048576") in options
    assert ("log_dest", "file /var/log/iplm/mqtt.log") in options
    assert [value for name, value in options if name == "listener"] == ["1883 127.0.0.1", "1883 fe80::1%mesh0"]
    assert "0.0.0.0" not in conf and not any(name == "user" for name, _ in options)
    # per_listener_settings must come before the security options it governs.
    names = [name for name, _ in options]
    assert names.index("per_listener_settings") < names.index("allow_anonymous")


def test_development_logs_to_stderr_and_runs_as_the_given_user():
    options = _options(render_mosquitto_conf(listeners=[("127.0.0.1", 1883)], password_file="/p", user="dev"))
    assert ("log_dest", "stderr") in options and ("user", "dev") in options


@pytest.mark.parametrize("address", ["0.0.0.0", "::", ""])
def test_every_address_listeners_need_asking_for(address):
    with pytest.raises(ValueError, match="phones"):
        render_mosquitto_conf(listeners=[(address, 1883)], password_file="/p")
    conf = render_mosquitto_conf(listeners=[(address, 1883)], password_file="/p", allow_wildcard=True)
    assert f"listener 1883 {address}".strip() in conf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"listeners": []},
        {"listeners": [("127.0.0.1", 0)]},
        {"listeners": [("127.0.0.1", 70000)]},
        {"listeners": [("127.0.0.1", "1883")]},
        {"listeners": [("localhost\nallow_anonymous true", 1883)]},
        {"listeners": [("example.org", 1883)]},
        {"password_file": "/p\nallow_anonymous true"},
        {"log_path": "/log\nlistener 1 0.0.0.0"},
        {"user": "root\nallow_anonymous true"},
    ],
)
def test_values_that_would_break_or_inject_config_are_refused(kwargs):
    with pytest.raises(ValueError):
        render_mosquitto_conf(**{"listeners": [("127.0.0.1", 1883)], "password_file": "/p", **kwargs})


def _check_password_line(line: str, username: str, password: str) -> None:
    user, hashed = line.rstrip("\n").split(":", 1)
    _, kind, iterations, salt64, hash64 = hashed.split("$")
    salt = base64.b64decode(salt64)
    assert user == username and kind == "7" and int(iterations) >= 1 and len(salt) == 12
    assert base64.b64decode(hash64) == hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations))


def test_the_password_file_holds_a_mosquitto_pbkdf2_hash_readable_only_by_us(tmp_path):
    path = write_broker_credentials(tmp_path / "passwd", SECRETS)
    text = path.read_text()
    assert text.count("\n") == 1 and SECRETS.broker_password not in text
    _check_password_line(text, SECRETS.broker_username, SECRETS.broker_password)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["passwd"]  # no temporary file left behind
    path.chmod(0o644)
    write_broker_credentials(path, SECRETS)  # rewriting (mesh join) restores the mode, new salt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() != text


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_our_format_is_the_format_mosquitto_passwd_writes(tmp_path):
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(tmp_path / "theirs"), "alice", "s3cret"], check=True, capture_output=True
    )
    _check_password_line((tmp_path / "theirs").read_text(), "alice", "s3cret")
