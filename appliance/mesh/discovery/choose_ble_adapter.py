"""Which Bluetooth adapter the mesh agent scans and advertises on, from `iplm serve --ble-adapter`."""

from __future__ import annotations

import re
from pathlib import Path

_ADAPTER = re.compile(r"hci[0-9]{1,3}")
_SYSFS = Path("/sys/class/bluetooth")


def choose_ble_adapter(wanted: str, sysfs: Path = _SYSFS) -> str | None:
    """The adapter for `wanted`: "off" → None; "auto" → the lowest-numbered hciN the kernel has (None
    without one); a name such as "hci1" → itself, present or not (BlueZ's refusal then says it is missing).

    Raises ValueError for anything else: the name ends up in a D-Bus object path.
    """
    if wanted == "off":
        return None
    if wanted != "auto":
        if not _ADAPTER.fullmatch(wanted):
            raise ValueError(f"{wanted!r} is not a Bluetooth adapter (hci0, hci1, ...), auto or off")
        return wanted
    try:
        # sysfs also lists connections (hci0:12): only the adapters' own entries.
        names = [entry.name for entry in sysfs.iterdir() if _ADAPTER.fullmatch(entry.name)]
    except OSError:  # no Bluetooth in the kernel at all
        return None
    return min(names, key=lambda name: int(name[3:]), default=None)
