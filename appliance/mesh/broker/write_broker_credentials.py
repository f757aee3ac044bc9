"""Write the broker's password file: the mesh's derived username and password, hashed as mosquitto does."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path

from appliance.mesh.mesh_types import MeshSecrets

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600 from the start: the hash never exists world-readable, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
        if owner is not None:
            shutil.chown(tmp, user=owner)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
