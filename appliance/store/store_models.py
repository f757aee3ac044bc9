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
    # A reply that thought first (deep thinking): JSON of its reasoning graph and, when it asked back, the
    # clarifying question and its choices. NULL for every other message.
    thinking = peewee.TextField(null=True)

    class Meta:
        table_name = "message"


# A message's bytes, as storage budgets count them: its text, and the reasoning graph kept with a reply that
# thought first.
MESSAGE_BYTES = peewee.fn.LENGTH(Message.content.cast("BLOB")) + peewee.fn.COALESCE(
    peewee.fn.LENGTH(Message.thinking.cast("BLOB")), 0
)


class LibraryModel(_Model):
    """A model this unit knows beyond the whitelist (admin-added), is installing, or has installed."""

    id = peewee.CharField(primary_key=True, max_length=200)
    format = peewee.CharField(max_length=16)
    engine = peewee.CharField(max_length=16)
    # "available" (admin-added, not installed) | "partial" | "installed"
    state = peewee.CharField(max_length=16, index=True)
    root_hash = peewee.CharField(max_length=64, null=True)
    # How the root hash came to be trusted: "whitelist" | "first-install" | "admin"
    pinned_by = peewee.CharField(max_length=16, null=True)
    manifest = peewee.TextField(null=True)  # canonical JSON (render_manifest) once known
    source = peewee.TextField(null=True)  # JSON of the ModelSource installed from
    source_revision = peewee.CharField(max_length=64, null=True)  # the commit the source served, if it said
    total_bytes = peewee.BigIntegerField(default=0)
    piece_size = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=now_utc)
    updated_at = peewee.DateTimeField(default=now_utc)
    installed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "model"


class ModelFile(_Model):
    model = peewee.ForeignKeyField(LibraryModel, backref="files", on_delete="CASCADE")
    path = peewee.CharField(max_length=1024)
    size = peewee.BigIntegerField()
    sha256 = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "model_file"
        indexes = ((("model", "path"), True),)


class HeldPiece(_Model):
    """A verified piece written to disk, per unit: this unit's own, and (later) what peers report."""

    node_id = peewee.CharField(max_length=32)
    model = peewee.ForeignKeyField(LibraryModel, backref="pieces", on_delete="CASCADE")
    path = peewee.CharField(max_length=1024)
    piece = peewee.IntegerField()
    sha256 = peewee.CharField(max_length=64)

    class Meta:
        table_name = "held_piece"
        primary_key = peewee.CompositeKey("node_id", "model", "path", "piece")


class Setting(_Model):
    """Unit-wide settings an admin changes (default model, admin PIN hash...), as JSON values."""

    key = peewee.CharField(primary_key=True, max_length=64)
    value = peewee.TextField()
    updated_at = peewee.DateTimeField(default=now_utc)

    class Meta:
        table_name = "setting"


class ConversationIntent(_Model):
    """A conversation's query intent model (deep thinking), carried across its turns: the JSON
    encode_intent_model writes, and how many clarifying questions the current prompt has had."""

    conversation = peewee.ForeignKeyField(
        Conversation, primary_key=True, backref="intent", on_delete="CASCADE", column_name="conversation_id"
    )
    intent = peewee.TextField()
    asked = peewee.IntegerField(default=0)
    updated_at = peewee.DateTimeField(default=now_utc)

    class Meta:
        table_name = "conversation_intent"
