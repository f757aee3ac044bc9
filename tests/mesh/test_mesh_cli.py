"""`iplm mesh create | join | add | status` (called as the CLI calls them)."""

import io
import json
import stat
import time
from argparse import Namespace

from appliance.cli.run_mesh_add import run_mesh_add
from appliance.cli.run_mesh_create import run_mesh_create
from appliance.cli.run_mesh_join import run_mesh_join
from appliance.cli.run_mesh_status import run_mesh_status
from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.load_mesh_key import load_mesh_key
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.store.read_setting import read_setting
from appliance.store.store_models import Setting


def test_create_keeps_a_new_key_private_and_prints_it(tmp_path, capsys):
    assert run_mesh_create(Namespace(data_dir=str(tmp_path), force=False)) == 0
    printed = capsys.readouterr().out.split()
    key_file = tmp_path / "mesh_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() in printed
    assert load_mesh_key(tmp_path) == parse_mesh_key(key_file.read_text().strip())
    assert run_mesh_create(Namespace(data_dir=str(tmp_path), force=False)) == 1  # already in a mesh
    assert run_mesh_create(Namespace(data_dir=str(tmp_path), force=True)) == 0
    assert not (tmp_path / "iplm.db").exists() or not Setting.select().where(Setting.value.contains("iplm1-")).exists()


def test_join_checks_the_key_and_stores_it_0600(tmp_path, capsys):
    key = create_mesh_key()
    typo = key[:10] + ("a" if key[10] != "a" else "b") + key[11:]
    assert run_mesh_join(Namespace(data_dir=str(tmp_path), key=typo)) == 2
    assert "not a mesh key" in capsys.readouterr().err and not (tmp_path / "mesh_key").exists()
    assert run_mesh_join(Namespace(data_dir=str(tmp_path), key=f"  {key.upper()}\n")) == 0
    assert derive_mesh_secrets(parse_mesh_key(key)).mesh_id in capsys.readouterr().out
    assert load_mesh_key(tmp_path) == parse_mesh_key(key)
    assert stat.S_IMODE((tmp_path / "mesh_key").stat().st_mode) == 0o600


def test_join_reads_the_key_from_stdin_for_a_dash(tmp_path, monkeypatch, capsys):
    key = create_mesh_key()
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert run_mesh_join(Namespace(data_dir=str(tmp_path), key="-")) == 0
    assert load_mesh_key(tmp_path) == parse_mesh_key(key)


def test_add_keeps_manual_peers_once_each(tmp_path, capsys):
    for text in ("10.1.2.3", "10.1.2.3:1883", "[fd00::1]:2000"):
        assert run_mesh_add(Namespace(data_dir=str(tmp_path), host=text)) == 0
    assert read_setting("mesh.manual_peers") == ["10.1.2.3:1883", "[fd00::1]:2000"]
    assert run_mesh_add(Namespace(data_dir=str(tmp_path), host="10.1.2.3:99999")) == 2


def test_status_says_when_there_is_no_mesh_or_no_agent_and_shows_the_agents_view(tmp_path, capsys):
    args = Namespace(data_dir=str(tmp_path), json=False)
    assert run_mesh_status(args) == 1 and "no mesh" in capsys.readouterr().out
    key = create_mesh_key()
    run_mesh_join(Namespace(data_dir=str(tmp_path), key=key))
    capsys.readouterr()
    assert run_mesh_status(args) == 1 and "not running" in capsys.readouterr().out
    (tmp_path / "mesh").mkdir()
    now = time.time()
    status = {
        "updated_at": now,
        "node": "a" * 16,
        "mesh_id": "m" * 16,
        "drops": {},
        "links": {"10.0.0.2:1883": {"state": "connected", "via": "mdns", "node": "b" * 16}},
        "peers": {
            "b" * 16: {
                "state": "online",
                "via": "10.0.0.2:1883",
                "last_seen": now - 2,
                "since": now,
                "reason": None,
                "presence": {
                    "name": "unit-b",
                    "models": [{"id": "SmolLM2", "state": "installed"}, {"id": "Qwen", "state": "partial"}],
                },
            }
        },
    }
    (tmp_path / "mesh" / "status.json").write_text(json.dumps(status))
    assert run_mesh_status(args) == 0
    out = capsys.readouterr().out
    assert "unit-b" in out and "online" in out and "SmolLM2, Qwen (partial)" in out and "connected" in out
    assert run_mesh_status(Namespace(data_dir=str(tmp_path), json=True)) == 0
    assert json.loads(capsys.readouterr().out) == status
