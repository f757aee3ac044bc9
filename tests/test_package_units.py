"""The package's systemd units, read as shipped (image/package): what must stay in step between them."""

from __future__ import annotations

from pathlib import Path

_UNITS = Path(__file__).resolve().parent.parent / "image" / "package" / "lib" / "systemd" / "system"


def _read_lines(name: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in (_UNITS / name).read_text().splitlines() if line.startswith(f"{key}=")]


def test_the_mesh_link_applies_the_network_exactly_as_boot_does():
    # The link's config needs the mesh key, which may come after boot: it reruns iplm-network's own apply, and
    # a different command line there would apply a different network.
    assert _read_lines("iplm-mesh-link.service", "ExecStartPre") == _read_lines("iplm-network.service", "ExecStart")


def test_the_mesh_link_runs_only_on_a_mesh_point_in_a_mesh():
    conditions = _read_lines("iplm-mesh-link.service", "ConditionPathExists")
    assert conditions == ["/run/iplm/mesh-point", "/var/lib/iplm/mesh_key"]
    assert _read_lines("iplm-mesh-link.path", "PathExists") == ["/var/lib/iplm/mesh_key"]
    assert "-i ${IPLM_MESH_POINT}" in _read_lines("iplm-mesh-link.service", "ExecStart")[0]
