"""Data shapes of the admin capability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from appliance.admin.install_job_types import InstallJob


@dataclass(frozen=True)
class InstallJobs:
    """Background installs of one unit (start_install_jobs). start(model, trust_mesh=False) returns its job
    (LibraryError "install_running" when one runs); cancel(model) its job, None when none runs; describe()
    maps model id to job."""

    start: Callable[..., InstallJob]
    cancel: Callable[[str], InstallJob | None]
    describe: Callable[[], dict[str, InstallJob]]


@dataclass(frozen=True)
class AdminHooks:
    """What the admin routes need from the running unit."""

    data_dir: Path
    node_id: str
    memory_bytes: int
    jobs: InstallJobs
    switch_model: Callable[[str], None]  # start the model's engine, then make it the one serving
    engines: tuple[str, ...] | None = None  # the engines this unit can run (list_runnable_engines); None: unknown
    # The phones' networks (the access point's subnet): admin is not reachable from there unless allowed.
    phone_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    admin_from_phones: bool = False
    # The admin stored a mesh key: start the unit's mesh with it (or restart it on a new key), in the
    # background. None: the key waits for the next start of `iplm serve`.
    use_mesh_key: Callable[[], None] | None = None


# Setting keys (appliance.store read_setting / write_setting).
PIN_SETTING = "admin_pin"
DEFAULT_MODEL_SETTING = "default_model"
