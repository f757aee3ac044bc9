"""Data shapes of the hostile-input suite (scripts/dev hostile): the unit under attack, probes, reports."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.mesh.mesh_types import MeshSecrets

# Device addresses on loopback: the unit limits chats, sign-ins and storage per address, so the checks
# that the unit is still whole come from an address no hostile group uses.
CHECK_DEVICE = 250
OWNER_DEVICE = 249  # the admin who installs the hostile models; the wrong-PIN guessers use others


@dataclass(frozen=True)
class HostileUnit:
    """A running `iplm serve` in a fresh data dir, in a mesh, with an admin PIN and hostile model sources."""

    url: str
    data_dir: Path
    process: subprocess.Popen
    log: Path  # the unit's stdout and stderr
    pin: str
    secrets: MeshSecrets
    hostile_models: tuple[tuple[str, str], ...]  # (admin-added model id, what its source does wrong)
    sources: tuple[Any, ...]  # the loopback model sources (tests/library/model_source_server.py), to stop
    node_id: str
    mesh_port: int  # its own mosquitto on 127.0.0.1, mutual TLS (iplm serve --mesh-address 127.0.0.1)


@dataclass(frozen=True)
class Probe:
    """One hostile input and what the unit answered: status None means it closed the connection unanswered."""

    label: str
    status: int | None
    expected: bool  # the answer the suite wants: a clean refusal, a drop, a failed install, ...
    note: str = ""
    # An install (admin API or CLI) that ended in an error the user is told, e.g. "source_corrupt": how a
    # hostile source or manifest is refused, counted apart from the HTTP answers.
    install_error: str | None = None


@dataclass(frozen=True)
class Keepsake:
    """A conversation made before the run: afterwards it must still be there, word for word."""

    cookie: str
    conversation_id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)


@dataclass(frozen=True)
class GroupReport:
    group: str
    tried: int
    clean_4xx: int
    dropped: int
    install_errors: int  # installs that ended in a clean error
    server_errors: int  # 5xx
    crashes: int  # the unit's process died
    unit_up: bool  # /healthz, a chat and the keepsake after the group
    problems: tuple[str, ...]  # every probe that did not get what it should have, and every failed check


# A group of hostile inputs: its name and what sends them, one Probe per input (the keepsake: a phone's
# conversation the group may aim at; the suite checks it after every group).
HostileGroup = tuple[str, Callable[[HostileUnit, Keepsake], list[Probe]]]
