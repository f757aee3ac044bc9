"""Hostile-input suite: malformed and hostile requests, cookies, schemas, peer requests and manifests sent at
a running unit; each group one line, and after each the unit must be up, still chat, and have lost nothing.

Run: scripts/dev hostile   (or .venv/bin/python -m benchmarks.hostile.run_hostile_suite [--groups http,peers])

Exit status 0 only when every group had no 5xx, no crash, every input its wanted answer, and the unit whole.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.hostile.check_unit_intact import check_unit_intact
from benchmarks.hostile.hostile_types import GroupReport
from benchmarks.hostile.leave_keepsake import leave_keepsake
from benchmarks.hostile.list_hostile_groups import list_hostile_groups
from benchmarks.hostile.start_hostile_unit import start_hostile_unit
from benchmarks.hostile.stop_hostile_unit import stop_hostile_unit
from benchmarks.hostile.tally_probes import tally_probes


def _format(report: GroupReport) -> str:
    line = (
        f"{report.group}: tried {report.tried}, clean 4xx {report.clean_4xx}, dropped {report.dropped}, "
        f"5xx {report.server_errors}, crashes {report.crashes}, unit up: {'yes' if report.unit_up else 'no'}"
    )
    if report.install_errors:
        line += f" (installs that ended in a clean error: {report.install_errors})"
    return line + "".join(f"\n    NOT OK: {problem}" for problem in report.problems)


def _is_clean(report: GroupReport) -> bool:
    return not (report.server_errors or report.crashes or report.problems) and report.unit_up


def run_hostile_suite(argv: list[str] | None = None) -> int:
    """Start a unit, run the groups (all, or --groups), print a line each; 0 when every line is clean."""
    groups = list_hostile_groups()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(name for name, _ in groups), help="comma-separated, in order")
    parser.add_argument("--keep", action="store_true", help="keep the unit's data dir and log")
    args = parser.parse_args(argv)
    chosen = args.groups.split(",")
    unknown = set(chosen) - {name for name, _ in groups}
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="iplm-hostile-"))
    unit = start_hostile_unit(work)
    clean = True
    try:
        keepsake = leave_keepsake(unit)
        for name, probe in groups:
            if name not in chosen:
                continue
            probes = probe(unit, keepsake)
            problems = check_unit_intact(unit, keepsake)
            report = tally_probes(name, probes, unit.process.poll() is not None, problems)
            print(_format(report), flush=True)
            clean = clean and _is_clean(report)
            if unit.process.poll() is not None:
                break  # nothing left to attack
    finally:
        stop_hostile_unit(unit)
        if clean and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"the unit's data dir and log: {work}", file=sys.stderr)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(run_hostile_suite())
