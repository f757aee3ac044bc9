"""Schema migrations: numbered steps applied once each, in order, inside a transaction."""
from __future__ import annotations

import peewee

from appliance.store.store_models import Conversation, Message, SchemaVersion


def _create_conversation_tables(db: peewee.Database) -> None:
    db.create_tables([Conversation, Message])


# Append new steps; never edit or reorder applied ones. Later steps use playhouse.migrate for ALTERs.
_MIGRATIONS = ((1, _create_conversation_tables),)


def migrate_database(db: peewee.Database) -> int:
    """Apply the migrations this database lacks; return the schema version it is at now."""
    db.create_tables([SchemaVersion])
    applied = {row.version for row in SchemaVersion.select()}
    for version, step in _MIGRATIONS:
        if version in applied:
            continue
        with db.atomic():
            step(db)
            SchemaVersion.create(version=version)
    return max([v for v, _ in _MIGRATIONS] + list(applied))
