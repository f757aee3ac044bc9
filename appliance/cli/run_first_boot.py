"""`iplm first-boot`: what a flashed unit does once, before anything else starts (iplm-firstboot.service).

The unit makes its identity (node id), names itself after it (`iplm-XXXX`, as its Wi-Fi), and makes a
random admin PIN. The owner has no keyboard or monitor, so the PIN goes to the console and the serial line
(the journal too), and to a text file on the boot partition, which any computer reads when the card is
put in (FAT on the UEFI images). Whoever holds the card holds the unit anyway; `iplm admin reset-pin`
replaces the PIN, and the admin page changes it.
"""

from __future__ import annotations

import os
import pwd
import socket
import sys
from pathlib import Path

from appliance.admin.ensure_admin_pin import ensure_admin_pin
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.resolve_data_dir import resolve_data_dir
from appliance.write_file_atomically import write_file_atomically

DONE_MARKER = "first-boot-done"  # in the data dir; iplm-firstboot.service runs while it is missing


def _hand_over(data_dir: Path, owner: pwd.struct_passwd) -> None:
    # First boot runs as root; iplm serve (its own user) must own everything it made.
    for path in [data_dir, *data_dir.rglob("*")]:
        os.lchown(path, owner.pw_uid, owner.pw_gid)


def _set_hostname(name: str, etc: Path) -> None:
    write_file_atomically(etc / "hostname", name + "\n")
    hosts = etc / "hosts"
    lines = hosts.read_text(encoding="utf-8").splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
    # Debian's convention: the host's own name on 127.0.1.1, so tools that look it up get an answer offline.
    lines = [line for line in lines if not line.startswith("127.0.1.1")] + [f"127.0.1.1\t{name}"]
    write_file_atomically(hosts, "\n".join(lines) + "\n")
    try:
        socket.sethostname(name)
    except PermissionError:
        print(f"iplm first-boot: could not set the running hostname to {name} (not root)", file=sys.stderr)


def _write_pin_file(path: Path, pin: str, name: str) -> bool:
    if not path.parent.is_dir():
        return False
    text = (
        f"iplm unit {name}\r\n\r\n"
        f"Admin PIN: {pin}\r\n\r\n"
        "Join the unit's Wi-Fi, open http://198.18.0.1/admin (or http://<unit>/admin on Ethernet) and sign in\r\n"
        "with this PIN. Change it there, then delete this file. A lost PIN: `iplm admin reset-pin` on the unit.\r\n"
    )
    write_file_atomically(path, text, mode=0o600)  # CRLF: read on any computer the card goes into
    return True


def run_first_boot(args) -> int:
    """Create the node id, the hostname and the admin PIN (shown once); idempotent: a made PIN is never replaced."""
    try:
        owner = pwd.getpwnam(args.owner) if args.owner else None
    except KeyError:
        print(f"iplm first-boot: no user {args.owner!r} (the package makes it)", file=sys.stderr)
        return 1
    data_dir = resolve_data_dir(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    node_id = load_node_id(data_dir)
    name = f"iplm-{node_id[-4:]}"
    database = open_database(data_dir)
    try:
        pin = ensure_admin_pin()
    finally:
        database.close()
    if args.set_hostname:
        _set_hostname(name, Path(args.etc_dir))
    if pin is not None:
        where = ["the console"]
        if args.pin_file and _write_pin_file(Path(args.pin_file), pin, name):
            where.append(args.pin_file)
        banner = f"iplm: unit {name}: the admin PIN is {pin} (also in {', '.join(where[1:]) or 'no file'})"
        print(banner, flush=True)
    else:
        print(f"iplm: unit {name}: the admin PIN was made before; `iplm admin reset-pin` makes a new one")
    write_file_atomically(data_dir / DONE_MARKER, node_id + "\n")
    if owner is not None:
        _hand_over(data_dir, owner)
    return 0
