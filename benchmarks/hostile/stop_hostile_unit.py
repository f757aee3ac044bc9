"""Stop the hostile-input suite's unit and its model sources."""

from __future__ import annotations

import subprocess

from benchmarks.hostile.hostile_types import HostileUnit


def stop_hostile_unit(unit: HostileUnit) -> None:
    """Terminate `iplm serve` (killed if it does not stop within 15 s), then stop the sources."""
    if unit.process.poll() is None:
        unit.process.terminate()
        try:
            unit.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            unit.process.kill()
            unit.process.wait()
    for source in unit.sources:
        source.stop()
