"""The job message that sends a whole chat to a peer: the request as an OpenAI body, as a phone sends it."""

from __future__ import annotations

from appliance.engine.engine_types import ChatRequest
from appliance.mesh.work.work_types import ChatCost


def encode_chat_job(job: str, cost: ChatCost, request: ChatRequest, expect_start_s: float) -> dict:
    """The payload of a "chat" job. The peer checks `request` with the same rules as a phone's request
    (read_chat_job), so nothing a peer sends gets further than a phone's would; `cost` and `expect_start_s`
    are what the sender weighed, which the peer counts again (accept_chat_job)."""
    model = cost.model
    params = request.params
    body: dict = {"model": model, "messages": [dict(message) for message in request.messages]}
    for name, value in (
        ("max_tokens", params.max_tokens),
        ("temperature", params.temperature),
        ("top_p", params.top_p),
        ("seed", params.seed),
    ):
        if value is not None:
            body[name] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if params.json_schema is not None:
        schema = {"name": "reply", "schema": params.json_schema}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif params.json_object:
        body["response_format"] = {"type": "json_object"}
    return {
        "type": "chat",
        "job": job,
        "model": model,
        "request": body,
        "fit_history": request.fit_history,
        "reply_prefix": request.reply_prefix,
        "expect_start_s": round(float(expect_start_s), 3),
        # The asking client's key, as the sender hid it (start_chat_work): the peer's pool queues each fairly.
        "client": request.client_key[:64],
        "prompt_tokens": cost.prompt_tokens,
        "reply_tokens": cost.reply_tokens,
    }
