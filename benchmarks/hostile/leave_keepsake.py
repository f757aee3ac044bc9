"""Before the attack: one phone's conversation with one exchange, to find intact afterwards."""

from __future__ import annotations

import httpx

from benchmarks.hostile.hostile_types import CHECK_DEVICE, HostileUnit, Keepsake


def leave_keepsake(unit: HostileUnit) -> Keepsake:
    """A conversation made through the web app's API (its reply streamed and stored), as the unit keeps it."""
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{CHECK_DEVICE}")
    with httpx.Client(base_url=unit.url, timeout=120, transport=transport) as http:
        created = http.post("/api/conversations", json={"title": "before the attack"})
        created.raise_for_status()
        conversation = created.json()["id"]
        with http.stream(
            "POST",
            f"/api/conversations/{conversation}/messages",
            json={"content": "Say hello.", "params": {"max_tokens": 8}},
        ) as reply:
            reply.raise_for_status()
            reply.read()
        kept = http.get(f"/api/conversations/{conversation}").json()
        cookie = http.cookies["iplm_client"]
    messages = tuple((m["role"], m["content"]) for m in kept["messages"])
    if len(messages) != 2:
        raise RuntimeError(f"the keepsake conversation holds {len(messages)} messages, not 2: {kept}")
    return Keepsake(cookie=cookie, conversation_id=str(conversation), messages=messages)
