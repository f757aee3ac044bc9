"""Fixtures of the mesh tests."""

from tests.mesh.chat_lab import chat_units  # noqa: F401 - the two-unit chat lab, for the tests that ask for it
