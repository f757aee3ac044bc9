"""open_database and migrate_database on real SQLite files: WAL, foreign keys, schema versions, upgrades."""

from __future__ import annotations

import sqlite3

import peewee
import pytest
from playhouse.migrate import SqliteMigrator, migrate

from appliance.store import migrate_database as migrate_database_module
from appliance.store.create_conversation import create_conversation
from appliance.store.describe_conversation import describe_conversation
from appliance.store.find_conversation import find_conversation
from appliance.store.migrate_database import migrate_database
from appliance.store.open_database import open_database
from appliance.store.record_exchange import record_exchange
from appliance.store.store_models import Conversation, Message, SchemaVersion, database

# The versions this release ships, and the number a test's extra step takes.
CURRENT = [version for version, _ in migrate_database_module._MIGRATIONS]
NEXT = CURRENT[-1] + 1

# The v1 schema exactly as release 1 wrote it: an old unit's file must keep working after an upgrade.
_V1_TABLES = (
    'CREATE TABLE "conversation" ("id" VARCHAR(32) NOT NULL PRIMARY KEY, "client_id" VARCHAR(64) NOT NULL, '
    '"title" VARCHAR(200) NOT NULL, "model" VARCHAR(200) NOT NULL, "created_at" DATETIME NOT NULL, '
    '"updated_at" DATETIME NOT NULL)',
    'CREATE INDEX "conversation_client_id" ON "conversation" ("client_id")',
    'CREATE INDEX "conversation_updated_at" ON "conversation" ("updated_at")',
    'CREATE TABLE "message" ("id" INTEGER NOT NULL PRIMARY KEY, "conversation_id" VARCHAR(32) NOT NULL, '
    '"role" VARCHAR(16) NOT NULL, "content" TEXT NOT NULL, "finish_reason" VARCHAR(16), '
    '"tokens" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, FOREIGN KEY ("conversation_id") '
    'REFERENCES "conversation" ("id") ON DELETE CASCADE)',
    'CREATE INDEX "message_conversation_id" ON "message" ("conversation_id")',
)
_OLD_ROWS = (
    "INSERT INTO conversation VALUES ('c0ffee', 'phone-a', 'Old chat', 'smollm', "
    "'2024-05-01 10:00:00.000001', '2024-05-01 10:05:00.000001')",
    "INSERT INTO message VALUES (1, 'c0ffee', 'user', 'Hello?', NULL, 0, '2024-05-01 10:00:00.000001')",
    "INSERT INTO message VALUES (2, 'c0ffee', 'assistant', 'Hi.', 'stop', 2, '2024-05-01 10:00:01.000001')",
)


def _versions() -> list[int]:
    return sorted(row.version for row in SchemaVersion.select())


def _write_old_release_file(path, *statements: str) -> None:
    # sqlite3 directly, in its default rollback-journal mode: the old file knows nothing of this release.
    with sqlite3.connect(path) as connection:
        for statement in (*_V1_TABLES, *_OLD_ROWS, *statements):
            connection.execute(statement)
    connection.close()


def _read_old_chat() -> dict:
    return describe_conversation(find_conversation("phone-a", "c0ffee"), with_messages=True)


def _exchange(client_id: str = "phone-a") -> dict:
    conversation = create_conversation(client_id)
    row = find_conversation(client_id, conversation["id"])
    record_exchange(row, "What is WAL?", "A journal.", finish_reason="stop", completion_tokens=3, model="smollm")
    return describe_conversation(find_conversation(client_id, conversation["id"]), with_messages=True)


def _add_pinned_column(db: peewee.Database) -> None:
    # NOT NULL with a default: SQLite has no ALTER for that, so peewee rebuilds the table (copy, DROP, rename).
    migrate(SqliteMigrator(db).add_column("conversation", "pinned", peewee.BooleanField(default=False)))


# --- a fresh unit -----------------------------------------------------------------------------------


def test_fresh_data_dir_gets_a_wal_database(tmp_path):
    data_dir = tmp_path / "not" / "yet" / "there"

    db = open_database(data_dir)

    assert (data_dir / "iplm.db").is_file()
    assert isinstance(db, peewee.SqliteDatabase) and database.obj is db
    assert db.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
    assert db.execute_sql("PRAGMA busy_timeout").fetchone() == (5000,)
    assert _versions() == CURRENT
    assert set(db.get_tables()) == {
        "schema_version",
        "conversation",
        "message",
        "model",
        "model_file",
        "held_piece",
        "setting",
        "conversation_intent",
    }
    db.close()
    # WAL is a property of the file: any later reader sees it too.
    with sqlite3.connect(data_dir / "iplm.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_opening_again_keeps_the_data_and_runs_nothing_twice(tmp_path):
    db = open_database(tmp_path)
    before = _exchange()
    applied_at = SchemaVersion.get_by_id(1).applied_at
    db.close()

    db = open_database(tmp_path)

    after = describe_conversation(find_conversation("phone-a", before["id"]), with_messages=True)
    assert after == before
    assert [(m["role"], m["content"]) for m in after["messages"]] == [
        ("user", "What is WAL?"),
        ("assistant", "A journal."),
    ]
    assert _versions() == CURRENT and SchemaVersion.get_by_id(1).applied_at == applied_at
    db.close()


def test_foreign_keys_cascade_on_every_connection(db):
    conversation = _exchange()

    # Not delete_conversation (which deletes messages itself): the schema's ON DELETE CASCADE must hold alone.
    Conversation.delete().where(Conversation.id == conversation["id"]).execute()

    assert Message.select().count() == 0


# --- upgrading a file from an older release ---------------------------------------------------------


def test_old_file_without_schema_version_is_adopted(tmp_path):
    _write_old_release_file(tmp_path / "iplm.db")

    db = open_database(tmp_path)

    chat = _read_old_chat()
    assert (chat["title"], chat["model"], chat["updated_at"]) == ("Old chat", "smollm", "2024-05-01T10:05:00.000001Z")
    assert [(m["role"], m["content"], m["finish_reason"]) for m in chat["messages"]] == [
        ("user", "Hello?", None),
        ("assistant", "Hi.", "stop"),
    ]
    assert _versions() == CURRENT
    assert db.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_old_file_gets_only_the_steps_it_lacks(tmp_path, monkeypatch):
    _write_old_release_file(
        tmp_path / "iplm.db",
        'CREATE TABLE "schema_version" ("version" INTEGER NOT NULL PRIMARY KEY, "applied_at" DATETIME NOT NULL)',
        "INSERT INTO schema_version VALUES (1, '2024-05-01 09:00:00')",
    )
    ran = []
    steps = {
        1: lambda db: ran.append(1),
        2: lambda db: (ran.append(2), _add_pinned_column(db)),
        # The message table this release reads has the column step 5 adds.
        5: lambda db: (ran.append(5), migrate_database_module._add_message_thinking(db)),
    }
    monkeypatch.setattr(migrate_database_module, "_MIGRATIONS", tuple(steps.items()))
    db = peewee.SqliteDatabase(str(tmp_path / "iplm.db"), pragmas={"foreign_keys": 1})
    database.initialize(db)

    assert migrate_database(db) == 5

    assert ran == [2, 5]
    assert _versions() == [1, 2, 5]
    assert str(SchemaVersion.get_by_id(1).applied_at) == "2024-05-01 09:00:00"
    assert len(_read_old_chat()["messages"]) == 2
    db.close()


def test_a_new_step_runs_once_and_keeps_every_row(tmp_path, monkeypatch):
    db = open_database(tmp_path)
    clients = ("phone-a", "phone-b")
    chats = [_exchange(client) for client in clients]
    db.close()
    calls = []

    def add_pinned(db):
        calls.append(db)
        _add_pinned_column(db)

    monkeypatch.setattr(
        migrate_database_module, "_MIGRATIONS", migrate_database_module._MIGRATIONS + ((NEXT, add_pinned),)
    )

    db = open_database(tmp_path)

    assert len(calls) == 1 and _versions() == CURRENT + [NEXT]
    assert "pinned" in [column.name for column in db.get_columns("conversation")]
    # The rebuild DROPs the old conversation table: no message may go with it (ON DELETE CASCADE).
    for client, chat in zip(clients, chats, strict=True):
        assert describe_conversation(find_conversation(client, chat["id"]), with_messages=True) == chat
    assert db.execute_sql("SELECT count(*) FROM conversation WHERE pinned = 0").fetchone() == (2,)
    # Foreign keys are back on, and still point at the rebuilt table.
    assert db.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
    assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []
    Conversation.delete().where(Conversation.id == chats[0]["id"]).execute()
    assert Message.select().count() == 2
    db.close()

    db = open_database(tmp_path)

    assert len(calls) == 1 and _versions() == CURRENT + [NEXT]
    assert migrate_database(db) == NEXT and len(calls) == 1
    db.close()


def test_a_failing_step_is_rolled_back_and_retried_next_start(tmp_path, monkeypatch):
    open_database(tmp_path).close()

    def add_then_fail(db):
        _add_pinned_column(db)
        raise RuntimeError("power cut")

    monkeypatch.setattr(
        migrate_database_module, "_MIGRATIONS", migrate_database_module._MIGRATIONS + ((NEXT, add_then_fail),)
    )

    with pytest.raises(RuntimeError, match="power cut"):
        open_database(tmp_path)

    db = database.obj
    assert _versions() == CURRENT
    assert "pinned" not in [column.name for column in db.get_columns("conversation")]
    assert db.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
    db.close()


def test_a_step_that_leaves_dangling_references_is_refused(tmp_path, monkeypatch):
    db = open_database(tmp_path)
    _exchange()
    db.close()

    def drop_conversations(db):
        db.execute_sql("DELETE FROM conversation")  # foreign keys are off during steps: nothing cascades

    monkeypatch.setattr(
        migrate_database_module, "_MIGRATIONS", migrate_database_module._MIGRATIONS + ((NEXT, drop_conversations),)
    )

    with pytest.raises(peewee.IntegrityError, match="pointing at nothing"):
        open_database(tmp_path)

    db = database.obj
    assert _versions() == CURRENT
    assert (Conversation.select().count(), Message.select().count()) == (1, 2)
    db.close()
