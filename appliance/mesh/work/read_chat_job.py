"""Read a "chat" job a peer sent: its id, model, the wait it counted on, and the request, checked."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from appliance.engine.engine_types import ChatRequest
from appliance.mesh.work.remote_chat_types import MAX_RESULT_TEXT
from appliance.mesh.work.work_types import ChatCost

JOB_ID = re.compile(r"[0-9a-f]{16}")
# Reply text a failed unit already gave: a reply's worth, at most (the same bound as one result message).
_MAX_PREFIX = MAX_RESULT_TEXT
_MAX_TOKENS = 1_000_000
_CLIENT = re.compile(r"[0-9A-Za-z:._-]{0,64}")


@dataclass(frozen=True)
class ChatJob:
    job: str
    cost: ChatCost  # as the sender weighed it
    expect_start_s: float
    request: ChatRequest | None  # None: `refusal` says why it could not be read
    refusal: str | None = None


def _tokens(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TOKENS else None


def read_chat_job(payload: dict, sender: str, parse_request: Callable[[dict], ChatRequest]) -> ChatJob | None:
    """The job in `payload`, or None when it has no usable job id (nothing to answer to: dropped).

    parse_request(body) checks the OpenAI body as the portal checks a phone's, raising ValueError with the
    reason; that reason becomes the job's refusal. The chat runs under the client key
    "peer:<sender>:<client>": the pool queues each of the sender's clients fairly beside this unit's own.
    """
    job = payload.get("job")
    if not isinstance(job, str) or not JOB_ID.fullmatch(job):
        return None
    model, expect, prefix = payload.get("model"), payload.get("expect_start_s"), payload.get("reply_prefix", "")
    fit_history, client = payload.get("fit_history", False), payload.get("client", "")
    prompt_tokens, reply_tokens = _tokens(payload.get("prompt_tokens")), _tokens(payload.get("reply_tokens"))
    if not isinstance(model, str) or not model or len(model) > 200:
        return ChatJob(job, ChatCost("", 0), 0.0, None, "the job names no model")
    if prompt_tokens is None or reply_tokens is None:
        return ChatJob(job, ChatCost(model, 0), 0.0, None, "the job's token counts are not counts")
    cost = ChatCost(model, prompt_tokens, reply_tokens)
    if isinstance(expect, bool) or not isinstance(expect, (int, float)) or not 0 <= expect < math.inf:
        return ChatJob(job, cost, 0.0, None, "the job's expected wait is not a number of seconds")
    if not isinstance(prefix, str) or len(prefix) > _MAX_PREFIX or not isinstance(fit_history, bool):
        return ChatJob(job, cost, float(expect), None, "the job's reply_prefix or fit_history is not usable")
    if not isinstance(client, str) or not _CLIENT.fullmatch(client):
        return ChatJob(job, cost, float(expect), None, "the job's client is not a client key")
    body = payload.get("request")
    if not isinstance(body, dict) or body.get("model") != model:
        return ChatJob(job, cost, float(expect), None, "the job's request is not an object for its model")
    try:
        request = parse_request(body)
    except ValueError as exc:
        return ChatJob(job, cost, float(expect), None, f"the request was refused: {exc}"[:300])
    key = f"peer:{sender}:{client}"
    request = dataclasses.replace(request, client_key=key, fit_history=fit_history, reply_prefix=prefix)
    return ChatJob(job, cost, float(expect), request)
