"""The engine worker processes this test process started and that still run."""

from __future__ import annotations

import os
from pathlib import Path


def list_live_workers() -> list[int]:
    """Their pids: children of this process, not zombies, running run_engine_worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"run_engine_worker" in cmdline:
            pids.append(int(entry.name))
    return pids
