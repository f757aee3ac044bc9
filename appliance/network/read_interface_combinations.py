"""Read each radio's interface modes and valid interface combinations from `iw list` output."""

from __future__ import annotations

import re

from appliance.network.network_types import InterfaceCombination, RadioCapabilities

_WIPHY = re.compile(r"^Wiphy\s+(\S+)")
_LIMIT = re.compile(r"#\{\s*([^}]*?)\s*\}\s*<=\s*(\d+)")
_TOTAL = re.compile(r"\btotal\s*<=\s*(\d+)")
_CHANNELS = re.compile(r"#channels\s*<=\s*(\d+)")
_MODES_SECTION = "supported interface modes:"
_COMBINATIONS_SECTION = "valid interface combinations:"


def _parse_combination(text: str) -> InterfaceCombination | None:
    limits = tuple(
        (frozenset(name.strip() for name in names.split(",") if name.strip()), int(count))
        for names, count in _LIMIT.findall(text)
    )
    total, channels = _TOTAL.search(text), _CHANNELS.search(text)
    if not limits or total is None:
        return None  # not a combination line: ignore rather than guess
    return InterfaceCombination(
        limits=limits, total=int(total.group(1)), channels=int(channels.group(1)) if channels else 1
    )


def _collect_radio(phy: str, modes: list[str], bullets: list[str]) -> RadioCapabilities:
    combinations = tuple(found for found in map(_parse_combination, bullets) if found is not None)
    return RadioCapabilities(phy=phy, modes=frozenset(modes), combinations=combinations)


def read_interface_combinations(iw_list_output: str) -> tuple[RadioCapabilities, ...]:
    """Every radio in `iw list` output: its phy name, supported interface modes, valid combinations."""
    radios: list[RadioCapabilities] = []
    phy: str | None = None
    section: str | None = None
    modes: list[str] = []
    bullets: list[str] = []
    for line in iw_list_output.splitlines():
        found = _WIPHY.match(line)
        if found:
            if phy is not None:
                radios.append(_collect_radio(phy, modes, bullets))
            phy, section, modes, bullets = found.group(1), None, [], []
            continue
        if phy is None or not line.strip():
            continue
        depth = len(line) - len(line.lstrip("\t"))
        text = line.strip()
        if depth <= 1:
            # A property of the radio (one tab): a new section starts, or a one-line property ends one.
            section = text.lower()
        elif section == _MODES_SECTION and text.startswith("* "):
            modes.append(text[2:].strip())
        elif section == _COMBINATIONS_SECTION:
            if text.startswith("* "):
                bullets.append(text[2:])
            elif bullets:
                bullets[-1] += " " + text  # a combination wraps onto indented lines
    if phy is not None:
        radios.append(_collect_radio(phy, modes, bullets))
    return tuple(radios)
