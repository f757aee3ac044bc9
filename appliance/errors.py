"""The one error shape of the appliance: a machine-readable `code` (for APIs and the CLI) and a human `message`.

Each capability raises its own subclass (EngineError, LibraryError, MeshError, NetworkError), so a caller
catches one capability's failures, or every one of them as UnitError.
"""

from __future__ import annotations


class UnitError(Exception):
    """Base of every error the appliance raises on purpose."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
