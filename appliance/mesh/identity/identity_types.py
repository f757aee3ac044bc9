"""Data shapes of unit identities: the mesh's certificate authority and one unit's certificate and key.

Every unit derives the same CA from the mesh key (a private key and a self-signed certificate, both
deterministic), and signs a certificate for its own random key with it: CN = its node id. The broker
and HTTP piece service use these for mutual TLS and signed answers. The mesh key stays the root of
trust: whoever holds it can mint certificates (a stolen unit is evicted by giving the mesh a new key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# A board without a battery clock boots in 1970 and a drifted one may be years off: certificates are
# valid for all of that, so TLS never fails on the date (freshness is the messages' counters' job).
VALID_FROM_YEAR = 1970
VALID_UNTIL_YEAR = 9999
IDENTITY_DIR = "mesh/tls"  # under the data dir
# Its files, as mosquitto.conf names them.
CA_FILE = "ca.crt"
CERTIFICATE_FILE = "unit.crt"
KEY_FILE = "unit.key"


@dataclass(frozen=True)
class MeshAuthority:
    """The mesh's CA: the same on every unit holding the mesh key."""

    mesh_id: str
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class UnitIdentity:
    """This unit's certificate (signed by the mesh CA) and key, as files for mosquitto and TLS clients."""

    node_id: str
    ca_path: Path
    certificate_path: Path
    key_path: Path  # mode 0600
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
