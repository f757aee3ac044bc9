"""Read a "chat" job a peer sent: its id, model, the wait it counted on, and the request, checked."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from appliance.engine.engine_types import ChatRequest
from appliance.mesh.work.remote_chat_types import MAX_RESULT_TEXT

JOB_ID = re.compile(r"[0-9a-f]{16}")
# Reply text a failed unit already gave: a reply's worth, at most (the same bound as one result message).
_MAX_PREFIX = MAX_RESULT_TEXT


@dataclass(frozen=True)
class ChatJob:
    job: str
    model: str
    expect_start_s: float
    request: ChatRequest | None  # None: `refusal` says why it could not be read
    refusal: str | None = None


def read_chat_job(payload: dict, sender: str, parse_request: Callable[[dict], ChatRequest]) -> ChatJob | None:
    """The job in `payload`, or None when it has no usable job id (nothing to answer to: dropped).

    parse_request(body) checks the OpenAI body as the portal checks a phone's, raising ValueError with the
    reason; that reason becomes the job's refusal. The request runs under the client key "peer:<sender>".
    """
    job = payload.get("job")
    if not isinstance(job, str) or not JOB_ID.fullmatch(job):
        return None
    model, expect, prefix = payload.get("model"), payload.get("expect_start_s"), payload.get("reply_prefix", "")
    fit_history = payload.get("fit_history", False)
    if not isinstance(model, str) or not model or len(model) > 200:
        return ChatJob(job, "", 0.0, None, "the job names no model")
    if isinstance(expect, bool) or not isinstance(expect, (int, float)) or not 0 <= expect < math.inf:
        return ChatJob(job, model, 0.0, None, "the job's expected wait is not a number of seconds")
    if not isinstance(prefix, str) or len(prefix) > _MAX_PREFIX or not isinstance(fit_history, bool):
        return ChatJob(job, model, float(expect), None, "the job's reply_prefix or fit_history is not usable")
    body = payload.get("request")
    if not isinstance(body, dict) or body.get("model") != model:
        return ChatJob(job, model, float(expect), None, "the job's request is not an object for its model")
    try:
        request = parse_request(body)
    except ValueError as exc:
        return ChatJob(job, model, float(expect), None, f"the request was refused: {exc}"[:300])
    request = dataclasses.replace(request, client_key=f"peer:{sender}", fit_history=fit_history, reply_prefix=prefix)
    return ChatJob(job, model, float(expect), request)
