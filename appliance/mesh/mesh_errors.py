"""Errors of the mesh. Each carries a machine-readable `code` and a human `message`."""

from __future__ import annotations

from appliance.errors import UnitError


class MeshError(UnitError):
    """Base of every mesh error."""


class MeshKeyError(MeshError, ValueError):
    """A mesh key text that cannot be used: "bad_prefix", "bad_characters", "bad_length", "bad_checksum"."""


class MeshMessageError(MeshError):
    """A mesh message that is refused.

    Codes: "oversize", "malformed", "bad_mac" (forged, corrupted or from another mesh), "topic_mismatch"
    (replayed onto another topic), "stale", "future", "replay" (counter not above the last accepted).
    """


class BrokerError(MeshError):
    """The broker could not be started or did not become ready."""

    def __init__(self, message: str, code: str = "broker_failed"):
        super().__init__(code, message)
