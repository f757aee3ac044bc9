"""Validation of OpenAI-shaped chat requests: everything a client can get wrong becomes an ApiError."""

from __future__ import annotations

import math

from appliance.engine.engine_types import ROLES, ChatParams, Effort, ThinkingAsk
from appliance.portal.check_response_schema import check_response_schema
from appliance.portal.portal_types import ApiError, ParsedChat
from appliance.thinking.thinking_types import MAX_CALLS, MAX_SECONDS, MIN_CALLS, MIN_SECONDS

_MAX_STOP_SEQUENCES = 4
# Accepted but meaningless for a local engine, or not supported yet: refused only when asked for.
_UNSUPPORTED_WHEN_TRUE = ("logprobs", "tools", "functions", "tool_choice", "function_call", "top_logprobs")


def _number(body: dict, name: str, low: float, high: float, *, integer: bool = False, low_open: bool = False):
    value = body.get(name)
    if value is None:
        return None
    kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not kind_ok:
        raise ApiError(
            400, f"'{name}' must be {'an integer' if integer else 'a number'}.", param=name, code="invalid_type"
        )
    # A JSON integer may have hundreds of digits: compared as it is, never converted to a float (overflow).
    infinite = isinstance(value, float) and not math.isfinite(value)
    if infinite or value < low or value > high or (low_open and value == low):
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        got = str(value) if len(str(value)) <= 24 else f"{str(value)[:12]}... ({len(str(value))} digits)"
        raise ApiError(
            400, f"'{name}' must be {bound} and at most {high:g}; got {got}.", param=name, code="invalid_value"
        )
    return value


def _content_text(content, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(
                    400,
                    f"messages[{index}].content: only text parts are supported on this unit.",
                    param=f"messages[{index}].content",
                    code="invalid_type",
                )
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(
        400,
        f"messages[{index}].content must be a string or a list of text parts.",
        param=f"messages[{index}].content",
        code="invalid_type",
    )


def _messages(body: dict) -> tuple[dict, ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages", code="invalid_value")
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(
                400, f"messages[{index}] must be an object.", param=f"messages[{index}]", code="invalid_type"
            )
        role = message.get("role")
        role = "system" if role == "developer" else role  # OpenAI's newer name for the system role
        if role not in ROLES:
            raise ApiError(
                400,
                f"messages[{index}].role must be one of {', '.join(ROLES)}; got {role!r}.",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
        clean.append({"role": role, "content": _content_text(message.get("content"), index)})
    if not any(m["role"] == "user" and m["content"].strip() for m in clean):
        raise ApiError(
            400, "'messages' needs at least one non-empty user message.", param="messages", code="invalid_value"
        )
    return tuple(clean)


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > _MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(
            400,
            f"'stop' must be a non-empty string or a list of up to {_MAX_STOP_SEQUENCES} of them.",
            param="stop",
            code="invalid_value",
        )
    return tuple(stop)


def _response_format(body: dict) -> tuple[dict | None, bool]:
    fmt = body.get("response_format")
    if fmt is None:
        return None, False
    if not isinstance(fmt, dict):
        raise ApiError(400, "'response_format' must be an object.", param="response_format", code="invalid_type")
    kind = fmt.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        schema = fmt.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise ApiError(
                400,
                "'response_format.schema' must be a JSON schema object.",
                param="response_format.schema",
                code="invalid_type",
            )
        if schema is not None:
            check_response_schema(schema, "response_format.schema")  # before any engine builds a grammar from it
        return schema, schema is None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ApiError(
                400,
                "'response_format.json_schema.schema' must be a JSON schema object.",
                param="response_format.json_schema",
                code="invalid_type",
            )
        check_response_schema(spec["schema"], "response_format.json_schema.schema")
        return spec["schema"], False
    raise ApiError(
        400,
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.",
        param="response_format.type",
        code="invalid_value",
    )


# OpenAI's reasoning efforts: the lower ones answer directly here (a small model gains nothing from less).
_EFFORTS: dict[str, Effort] = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def _thinking(body: dict) -> ThinkingAsk | None:
    asked = body.get("reasoning_effort")
    asked = "none" if asked is None else asked  # null: not asked for, as for every other parameter
    effort = _EFFORTS.get(asked) if isinstance(asked, str) else None
    if effort is None:
        raise ApiError(
            400,
            "'reasoning_effort' must be 'none', 'minimal', 'low', 'medium' or 'high'.",
            param="reasoning_effort",
            code="invalid_value",
        )
    budget = body.get("iplm_thinking")
    if budget is None:
        budget = {}
    if not isinstance(budget, dict) or set(budget) - {"max_calls", "max_seconds"}:
        raise ApiError(
            400,
            "'iplm_thinking' must be an object with 'max_calls' and/or 'max_seconds'.",
            param="iplm_thinking",
            code="invalid_value",
        )
    # The person's override of the unit's budget: held to the thinking service's bounds, refused outside them
    # (whether or not this request thinks: a bad value is a mistake either way).
    max_calls = _number(budget, "max_calls", MIN_CALLS, MAX_CALLS, integer=True)
    max_seconds = _number(budget, "max_seconds", MIN_SECONDS, MAX_SECONDS)
    if effort == "low":
        return None
    return ThinkingAsk(
        effort=effort,
        max_calls=max_calls,
        max_seconds=None if max_seconds is None else float(max_seconds),
    )


def parse_chat_request(body, *, models: tuple[str, ...], n_ctx: int) -> ParsedChat:
    """Validate an OpenAI chat-completions body against this unit's models and context size."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    model = body.get("model", models[0])
    if not isinstance(model, str):
        raise ApiError(400, "'model' must be a string.", param="model", code="invalid_type")
    if model not in models:
        raise ApiError(
            404,
            f"The model '{model}' does not exist on this unit. Available: {', '.join(models)}.",
            param="model",
            code="model_not_found",
        )
    for name in _UNSUPPORTED_WHEN_TRUE:
        if body.get(name):
            raise ApiError(400, f"'{name}' is not supported by this unit.", param=name, code="unsupported_parameter")
    if _number(body, "n", 1, 1, integer=True) not in (None, 1):
        raise ApiError(400, "'n' must be 1.", param="n", code="invalid_value")
    stream = body.get("stream")
    stream = False if stream is None else stream
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean.", param="stream", code="invalid_type")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ApiError(400, "'stream_options' must be an object.", param="stream_options", code="invalid_type")
    # max_completion_tokens is OpenAI's newer name; either is accepted.
    max_tokens = _number(body, "max_completion_tokens", 1, n_ctx, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, n_ctx, integer=True)
    split = body.get("iplm_split", True)
    if not isinstance(split, bool):
        raise ApiError(400, "'iplm_split' must be a boolean.", param="iplm_split", code="invalid_type")
    schema, json_object = _response_format(body)
    params = ChatParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1, low_open=True),
        stop=_stop(body),
        seed=_number(body, "seed", -(2**63), 2**63 - 1, integer=True),
        json_schema=schema,
        json_object=json_object,
    )
    return ParsedChat(
        model=model,
        messages=_messages(body),
        params=params,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        split=split,
        thinking=_thinking(body),
    )
