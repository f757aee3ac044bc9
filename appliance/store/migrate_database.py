"""Schema migrations: numbered steps applied once each, in order, inside a transaction."""

from __future__ import annotations

import peewee
from playhouse.migrate import SqliteMigrator, migrate

from appliance.store.store_models import (
    Conversation,
    ConversationIntent,
    HeldPiece,
    LibraryModel,
    Message,
    ModelFile,
    SchemaVersion,
    Setting,
    database,
)


class _MessageV1(peewee.Model):
    """The message table as step 1 made it (step 5 adds "thinking"): frozen, so a new database is built by
    the same steps as an old one was."""

    id = peewee.AutoField()
    conversation = peewee.ForeignKeyField(Conversation, backref="+", on_delete="CASCADE")
    role = peewee.CharField(max_length=16)
    content = peewee.TextField()
    finish_reason = peewee.CharField(max_length=16, null=True)
    tokens = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField()

    class Meta:
        database = database
        table_name = "message"


def _create_conversation_tables(db: peewee.Database) -> None:
    db.create_tables([Conversation, _MessageV1])


def _create_library_tables(db: peewee.Database) -> None:
    db.create_tables([LibraryModel, ModelFile, HeldPiece])


# Append new steps; never edit or reorder applied ones. Later steps use playhouse.migrate for ALTERs, and
# a step that creates tables from models must freeze those models' columns once a later step alters them.
def _create_setting_table(db: peewee.Database) -> None:
    db.create_tables([Setting])


def _create_intent_table(db: peewee.Database) -> None:
    db.create_tables([ConversationIntent])


def _add_message_thinking(db: peewee.Database) -> None:
    migrate(SqliteMigrator(db).add_column("message", "thinking", Message.thinking))


_MIGRATIONS = (
    (1, _create_conversation_tables),
    (2, _create_library_tables),
    (3, _create_setting_table),
    (4, _create_intent_table),
    (5, _add_message_thinking),
)


def _check_foreign_keys(db: peewee.Database) -> None:
    dangling = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise peewee.IntegrityError(f"a migration left rows pointing at nothing: {dangling[:5]}")


def _apply_steps(db: peewee.Database, steps) -> None:
    for version, step in steps:
        with db.atomic():
            step(db)
            if isinstance(db, peewee.SqliteDatabase):
                _check_foreign_keys(db)  # rolls the step back rather than commit broken references
            SchemaVersion.create(version=version)


def migrate_database(db: peewee.Database) -> int:
    """Apply the migrations this database lacks; return the schema version it is at now."""
    db.create_tables([SchemaVersion])
    applied = {row.version for row in SchemaVersion.select()}
    pending = [(version, step) for version, step in _MIGRATIONS if version not in applied]
    if pending and isinstance(db, peewee.SqliteDatabase):
        # SQLite alters a table by rebuilding it (copy, DROP, rename): with foreign keys on, that DROP
        # cascade-deletes every row pointing at the table (all messages, for "conversation"). The pragma
        # is ignored inside a transaction, so it is switched off around the steps, as SQLite's docs say.
        enforced = db.pragma("foreign_keys")
        db.pragma("foreign_keys", 0)
        try:
            _apply_steps(db, pending)
        finally:
            db.pragma("foreign_keys", enforced)
    else:
        _apply_steps(db, pending)
    return max([v for v, _ in _MIGRATIONS] + list(applied))
