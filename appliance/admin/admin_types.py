"""Data shapes of the admin capability."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class InstallJobs:
    """Background installs of one unit. start/cancel return the job dict; describe() maps model id → job.

    A job dict: {"model", "state": "running" | "installed" | "failed" | "cancelled", "done_bytes",
    "total_bytes", "rate_bps", "eta_s", "rejected_pieces", "error": {"code", "message"} | None}.
    """

    start: Callable[[str], dict]
    cancel: Callable[[str], dict | None]
    describe: Callable[[], dict[str, dict]]


@dataclass(frozen=True)
class AdminHooks:
    """What the admin routes need from the running unit."""

    data_dir: Path
    node_id: str
    memory_bytes: int
    jobs: InstallJobs
    switch_model: Callable[[str], None]  # start the model's engine, then make it the one serving
    engines: tuple[str, ...] | None = None  # the engines this unit can run (list_runnable_engines); None: unknown


# Setting keys (appliance.store read_setting / write_setting).
PIN_SETTING = "admin_pin"
DEFAULT_MODEL_SETTING = "default_model"
