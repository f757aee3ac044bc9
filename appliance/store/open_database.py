"""Open (and migrate) the unit's database file."""

from __future__ import annotations

from pathlib import Path

import peewee

from appliance.store.migrate_database import migrate_database
from appliance.store.store_models import database

_PRAGMAS = {
    "journal_mode": "wal",  # readers (page loads) never wait for the writer (a finished reply)
    "foreign_keys": 1,
    # WAL + normal is crash-safe for the database; an unflushed last commit may be lost on power cut.
    "synchronous": "normal",
    "busy_timeout": 5000,
}


def open_database(data_dir: str | Path) -> peewee.SqliteDatabase:
    """Open `<data_dir>/iplm.db`, bind the models to it and bring its schema up to date."""
    path = Path(data_dir) / "iplm.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = peewee.SqliteDatabase(str(path), pragmas=_PRAGMAS, check_same_thread=False)
    database.initialize(db)
    db.connect(reuse_if_open=True)
    migrate_database(db)
    return db
