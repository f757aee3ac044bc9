"""A portal whose engine cannot run here: real worker processes that die by a real SIGILL at every chat."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from appliance.admin.admin_types import AdminHooks, InstallJobs
from appliance.admin.install_job_types import InstallJob
from appliance.admin.set_admin_pin import set_admin_pin
from appliance.engine.pool.start_engine_pool import start_engine_pool
from appliance.portal.create_app import create_app
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.store.open_database import open_database

PIN = "43214321"
NODE = "00000000000000aa"


@contextlib.contextmanager
def open_broken_engine_unit(data_dir: Path, *, memory_bytes: int = 0) -> Iterator[Flask]:
    """The app of a CPU-only unit (llama.cpp only; `memory_bytes` of memory, 0: unknown), admin PIN: PIN."""
    database = open_database(data_dir)
    set_admin_pin(PIN)
    engine = start_engine_pool(
        {
            "factory": "tests.engine.fake_engines:open_illegal_instruction_engine",
            "kind": "llama.cpp",
            "kwargs": {"model_id": "m"},
        },
        ready_timeout=60,
    )
    jobs = InstallJobs(start=InstallJob, cancel=lambda model: None, describe=dict)
    hooks = AdminHooks(
        data_dir=data_dir,
        node_id=NODE,
        memory_bytes=memory_bytes,
        jobs=jobs,
        switch_model=lambda model: None,
        engines=("llama.cpp",),
    )
    unit = UnitInfo(node_id=NODE, name="iplm-00aa", defaults=ChatDefaults(), device={})
    try:
        yield create_app(lambda: engine, unit, hooks)
    finally:
        engine.close()
        database.close()
