"""Recognise a platform's connectivity probe from a request's host and path."""

from __future__ import annotations

from appliance.portal.captive_types import PROBE_RULES, ProbeRule


def match_captive_probe(host: str, path: str, rules: tuple[ProbeRule, ...] = PROBE_RULES) -> ProbeRule | None:
    """The rule for a probe to `host` (a lower-case name, no port) at `path`, or None when it is not a probe."""
    # Most specific first: this host at this path, then a probe path on any host (ROMs and proxies rename the
    # host), then any other path on a probe host (the first rule naming the host answers).
    for rule in rules:
        if host in rule.hosts and path in rule.paths:
            return rule
    for rule in rules:
        if rule.paths_on_any_host and path in rule.paths:
            return rule
    for rule in rules:
        if host in rule.hosts:
            return rule
    return None
