"""After each group: the unit is up, still chats, and lost nothing."""

from __future__ import annotations

import httpx

from benchmarks.hostile.hostile_types import CHECK_DEVICE, HostileUnit, Keepsake


def check_unit_intact(unit: HostileUnit, keepsake: Keepsake) -> list[str]:
    """What is wrong, if anything: the process gone, /healthz not 200, a short chat not answered, or the
    keepsake conversation changed. An empty list: the unit is whole."""
    if unit.process.poll() is not None:
        return [f"iplm serve exited ({unit.process.returncode})"]
    problems = []
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{CHECK_DEVICE}")
    with httpx.Client(base_url=unit.url, timeout=120, transport=transport) as http:
        try:
            health = http.get("/healthz")
            if health.status_code != 200:
                problems.append(f"/healthz answered {health.status_code}")
            chat = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4},
            )
            if chat.status_code != 200 or not isinstance(chat.json()["choices"][0]["message"]["content"], str):
                problems.append(f"a normal chat answered {chat.status_code}: {chat.text[:200]}")
            kept = http.get(
                f"/api/conversations/{keepsake.conversation_id}", headers={"Cookie": f"iplm_client={keepsake.cookie}"}
            )
            messages = tuple((m["role"], m["content"]) for m in kept.json().get("messages", ()))
            if kept.status_code != 200 or messages != keepsake.messages:
                problems.append(f"the keepsake conversation changed: {kept.status_code} {kept.text[:200]}")
        except httpx.TransportError as exc:
            problems.append(f"the unit did not answer: {exc.__class__.__name__}: {exc}")
    return problems
