"""Store fixtures: each test gets its own database file (open_database binds a process-wide proxy)."""

from __future__ import annotations

import pytest

from appliance.store.open_database import open_database


@pytest.fixture(name="db")
def _open_test_database(tmp_path):
    db = open_database(tmp_path / "data")
    yield db
    db.close()
