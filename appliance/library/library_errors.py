"""Errors of the model library: a bad manifest or model directory, a failing source, a failed install.

Each carries a machine-readable `code` (for the admin API and the CLI) and a human `message`.
"""

from __future__ import annotations

from appliance.errors import UnitError


class LibraryError(UnitError):
    """Base of every model library error."""


class ManifestError(LibraryError):
    """A manifest, a manifest path or a model directory is invalid ("root_mismatch": the root hash differs)."""

    def __init__(self, message: str, code: str = "manifest_invalid"):
        super().__init__(code, message)


class SourceError(LibraryError):
    """A model source (HTTP mirror, directory, peer) failed to deliver."""

    def __init__(self, message: str, code: str = "source_failed"):
        super().__init__(code, message)


class InstallError(LibraryError):
    """A model install failed."""

    def __init__(self, message: str, code: str = "install_failed"):
        super().__init__(code, message)


class RangeError(LibraryError):
    """A byte range outside a model file, or longer than a unit reads at once; `file_size` is the file's size."""

    def __init__(self, message: str, file_size: int):
        super().__init__("range_invalid", message)
        self.file_size = file_size
