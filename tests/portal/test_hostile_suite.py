"""The hostile-input suite (scripts/dev hostile) against a real `iplm serve` with the real default model:
every group gets clean refusals only, no 5xx, no crash, and the unit stays whole after each."""

from __future__ import annotations

import pytest

from benchmarks.hostile.check_unit_intact import check_unit_intact
from benchmarks.hostile.leave_keepsake import leave_keepsake
from benchmarks.hostile.list_hostile_groups import list_hostile_groups
from benchmarks.hostile.start_hostile_unit import start_hostile_unit
from benchmarks.hostile.stop_hostile_unit import stop_hostile_unit
from benchmarks.hostile.tally_probes import tally_probes

pytestmark = [pytest.mark.engine, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def unit_and_keepsake(tmp_path_factory):
    unit = start_hostile_unit(tmp_path_factory.mktemp("hostile"))
    try:
        yield unit, leave_keepsake(unit)
    finally:
        stop_hostile_unit(unit)


# In the suite's order: later groups rely on earlier ones (the peers ask for pieces the failed installs left;
# admin locks sign-in, so it comes last).
@pytest.mark.parametrize("group", list_hostile_groups(), ids=[name for name, _ in list_hostile_groups()])
def test_every_hostile_input_is_refused_cleanly_and_the_unit_stays_whole(unit_and_keepsake, group):
    unit, keepsake = unit_and_keepsake
    name, probe = group
    probes = probe(unit, keepsake)
    report = tally_probes(name, probes, unit.process.poll() is not None, check_unit_intact(unit, keepsake))
    assert report.tried > 0
    assert report.server_errors == 0 and report.crashes == 0, report.problems
    assert report.problems == () and report.unit_up, report.problems
    # Besides refusals, a group may hold a control that must succeed (the right PIN, a valid signed request).
    succeeded = sum(1 for p in probes if p.install_error is None and p.status is not None and p.status < 400)
    assert report.clean_4xx + report.dropped + report.install_errors + succeeded == report.tried
