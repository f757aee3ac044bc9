"""Write the broker's password file: the mesh's derived username and password, hashed as mosquitto does."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from appliance.mesh.mesh_types import MeshSecrets
from appliance.write_file_atomically import write_file_atomically

# mosquitto 2.0's "$7$" format (what `mosquitto_passwd` writes by default):
#   username:$7$<iterations>$<base64 12-byte salt>$<base64 PBKDF2-HMAC-SHA512, 64 bytes>
# 101 iterations is mosquitto_passwd's default; the password is 256 random bits, so the count
# protects nothing and costs every CONNECT.
_ITERATIONS = 101
_SALT_BYTES = 12


def _render_password_line(username: str, password: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _ITERATIONS)
    salt64 = base64.b64encode(salt).decode("ascii")
    hash64 = base64.b64encode(digest).decode("ascii")
    return f"{username}:$7${_ITERATIONS}${salt64}${hash64}\n"


def write_broker_credentials(path: Path | str, secrets: MeshSecrets, *, owner: str | None = None) -> Path:
    """Write (atomically, mode 0600) the password file that admits only the mesh's broker user.

    `owner`: the account mosquitto runs as, when that is not us (root writing for "mosquitto").
    The running broker rereads the file on SIGHUP (Broker.reload).
    """
    path = Path(path)
    line = _render_password_line(secrets.broker_username, secrets.broker_password, os.urandom(_SALT_BYTES))
    write_file_atomically(path, line, mode=0o600, owner=owner)
    return path
