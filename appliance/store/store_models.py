"""Peewee models. The database is bound at start-up by open_database (one file per data dir)."""
from __future__ import annotations

import datetime as _dt

import peewee

database = peewee.DatabaseProxy()


def now_utc() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class _Model(peewee.Model):
    class Meta:
        database = database


class SchemaVersion(_Model):
    """One row per applied migration, so upgrades only run what is new."""

    version = peewee.IntegerField(primary_key=True)
    applied_at = peewee.DateTimeField(default=now_utc)

    class Meta:
        table_name = "schema_version"


class Conversation(_Model):
    # Random hex id; client_id is a hash of the phone's cookie, never the cookie itself.
    id = peewee.CharField(primary_key=True, max_length=32)
    client_id = peewee.CharField(max_length=64, index=True)
    title = peewee.CharField(max_length=200, default="")
    model = peewee.CharField(max_length=200, default="")
    created_at = peewee.DateTimeField(default=now_utc)
    updated_at = peewee.DateTimeField(default=now_utc, index=True)

    class Meta:
        table_name = "conversation"


class Message(_Model):
    id = peewee.AutoField()
    conversation = peewee.ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    role = peewee.CharField(max_length=16)
    content = peewee.TextField()
    finish_reason = peewee.CharField(max_length=16, null=True)
    tokens = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=now_utc)

    class Meta:
        table_name = "message"
