import pytest

from appliance.mesh.broker.render_mosquitto_acl import render_mosquitto_acl
from appliance.mesh.broker.render_mosquitto_conf import MAX_CONNECTIONS, render_mosquitto_conf

TLS = {"tls_dir": "/var/lib/iplm/mesh/tls", "acl_file": "/etc/iplm/mosquitto.acl"}


def _options(conf: str) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in conf.splitlines() if line and not line.startswith("#")]


def _listener_blocks(conf: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in conf.splitlines():
        if line.startswith("listener "):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    return blocks


def test_every_listener_takes_only_certificates_of_the_mesh():
    conf = render_mosquitto_conf(
        listeners=[("127.0.0.1", 1883), ("fe80::1%mesh0", 1883)], log_path="/var/log/iplm/mqtt.log", **TLS
    )
    options = _options(conf)
    assert ("per_listener_settings", "false") in options and ("allow_anonymous", "false") in options
    assert ("acl_file", "/etc/iplm/mosquitto.acl") in options and not any(n == "password_file" for n, _ in options)
    assert ("persistence", "false") in options and ("max_keepalive", "60") in options
    assert ("max_packet_size", "1048576") in options and ("max_queued_messages", "100") in options
    assert ("log_dest", "file /var/log/iplm/mqtt.log") in options
    assert [value for name, value in options if name == "listener"] == ["1883 127.0.0.1", "1883 fe80::1%mesh0"]
    assert "0.0.0.0" not in conf and not any(name == "user" for name, _ in options)
    # TLS settings are the listener's own: each listener repeats them.
    for block in _listener_blocks(conf):
        assert {
            f"max_connections {MAX_CONNECTIONS}",
            "cafile /var/lib/iplm/mesh/tls/ca.crt",
            "certfile /var/lib/iplm/mesh/tls/unit.crt",
            "keyfile /var/lib/iplm/mesh/tls/unit.key",
            "require_certificate true",
            "use_identity_as_username true",
        } <= set(block)
    names = [name for name, _ in options]
    assert names.index("per_listener_settings") < names.index("allow_anonymous")


def test_the_acl_lets_a_unit_write_its_own_presence_and_work_and_read_everyones_presence_and_its_work():
    lines = [line for line in render_mosquitto_acl().splitlines() if line and not line.startswith("#")]
    # pattern lines apply to every client; a top-level topic line would apply to anonymous clients only.
    assert lines == [
        "pattern read iplm/+/presence/+",
        "pattern write iplm/+/presence/%u",
        "pattern write iplm/+/jobs/%u/+",
        "pattern read iplm/+/jobs/+/%u",
        "pattern write iplm/+/results/%u/+",
        "pattern read iplm/+/results/+/%u",
    ]


def test_development_logs_to_stderr_and_runs_as_the_given_user():
    options = _options(render_mosquitto_conf(listeners=[("127.0.0.1", 1883)], user="dev", **TLS))
    assert ("log_dest", "stderr") in options and ("user", "dev") in options


@pytest.mark.parametrize("address", ["0.0.0.0", "::", ""])
def test_every_address_listeners_need_asking_for(address):
    with pytest.raises(ValueError, match="phones"):
        render_mosquitto_conf(listeners=[(address, 1883)], **TLS)
    conf = render_mosquitto_conf(listeners=[(address, 1883)], allow_wildcard=True, **TLS)
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
        {"acl_file": "/p\nallow_anonymous true"},
        {"tls_dir": "/tls\nrequire_certificate false"},
        {"log_path": "/log\nlistener 1 0.0.0.0"},
        {"user": "root\nallow_anonymous true"},
    ],
)
def test_values_that_would_break_or_inject_config_are_refused(kwargs):
    with pytest.raises(ValueError):
        render_mosquitto_conf(**{"listeners": [("127.0.0.1", 1883)], **TLS, **kwargs})
