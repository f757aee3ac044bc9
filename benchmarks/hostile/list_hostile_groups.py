"""The hostile-input suite's groups, in the order they run."""

from __future__ import annotations

from benchmarks.hostile.hostile_types import HostileGroup
from benchmarks.hostile.probe_hostile_admin import probe_hostile_admin
from benchmarks.hostile.probe_hostile_cookies import probe_hostile_cookies
from benchmarks.hostile.probe_hostile_http import probe_hostile_http
from benchmarks.hostile.probe_hostile_manifests import probe_hostile_manifests
from benchmarks.hostile.probe_hostile_mesh import probe_hostile_mesh
from benchmarks.hostile.probe_hostile_peers import probe_hostile_peers
from benchmarks.hostile.probe_hostile_schemas import probe_hostile_schemas


def list_hostile_groups() -> tuple[HostileGroup, ...]:
    """(name, probe function) for each group. "admin" runs last: it locks admin sign-in for good."""
    return (
        ("http", probe_hostile_http),
        ("cookies", probe_hostile_cookies),
        ("schemas", probe_hostile_schemas),
        # Before "peers": the failed installs leave verified pieces, which the peers' Range abuse asks for.
        ("manifests", probe_hostile_manifests),
        ("peers", probe_hostile_peers),
        ("mesh", probe_hostile_mesh),
        ("admin", probe_hostile_admin),
    )
