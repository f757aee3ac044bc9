"""Start a new conversation for a phone."""

from __future__ import annotations

import secrets

from appliance.store.describe_conversation import describe_conversation
from appliance.store.store_models import Conversation


def create_conversation(client_id: str, *, title: str = "", model: str = "") -> dict:
    """Create and return an empty conversation owned by `client_id`."""
    row = Conversation.create(id=secrets.token_hex(16), client_id=client_id, title=title, model=model)
    return describe_conversation(row)
