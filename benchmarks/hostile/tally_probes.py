"""Count one group's probes into its report line."""

from __future__ import annotations

from benchmarks.hostile.hostile_types import GroupReport, Probe


def tally_probes(group: str, probes: list[Probe], crashed: bool, problems: list[str]) -> GroupReport:
    """The group's report: refusals, drops and install errors counted; every probe that did not get its
    wanted answer, and every failed check after the group (`problems`), listed."""
    missed = [
        f"{p.label}: got {p.status if p.status is not None else 'no answer'} {p.note}".strip()
        for p in probes
        if not p.expected
    ]
    return GroupReport(
        group=group,
        tried=len(probes),
        clean_4xx=sum(1 for p in probes if p.install_error is None and p.status is not None and 400 <= p.status < 500),
        dropped=sum(1 for p in probes if p.install_error is None and p.status is None),
        install_errors=sum(1 for p in probes if p.install_error is not None and p.expected),
        server_errors=sum(1 for p in probes if p.status is not None and p.status >= 500),
        crashes=int(crashed),
        unit_up=not problems,
        problems=tuple(missed + problems),
    )
