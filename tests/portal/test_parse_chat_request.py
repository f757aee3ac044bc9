"""parse_chat_request alone (no server): what a valid body becomes, and how each mistake is reported."""

from __future__ import annotations

import pytest

from appliance.engine.engine_types import ChatParams, ThinkingAsk
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError

MODELS = ("smollm2-135m", "qwen2.5-0.5b")
N_CTX = 2048
USER = {"role": "user", "content": "Hello?"}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def _parse(**body):
    return parse_chat_request({"messages": [USER], **body}, models=MODELS, n_ctx=N_CTX)


def _refusal(body, *, status: int = 400) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body, models=MODELS, n_ctx=N_CTX)
    assert caught.value.status == status
    assert caught.value.to_json()["error"]["type"] == "invalid_request_error"
    return caught.value


def _refused(*, status: int = 400, **body) -> tuple[str | None, str | None]:
    error = _refusal({"messages": [USER], **body}, status=status)
    return error.param, error.code


# --- what a valid request becomes ---------------------------------------------------------------------


def test_minimal_request_gets_the_defaults():
    parsed = parse_chat_request({"messages": [USER]}, models=MODELS, n_ctx=N_CTX)

    assert parsed.model == "smollm2-135m"  # the unit's first model
    assert parsed.messages == ({"role": "user", "content": "Hello?"},)
    assert parsed.params == ChatParams()  # every parameter left to the engine's defaults
    assert (parsed.stream, parsed.include_usage) == (False, False)


def test_every_parameter_is_carried():
    parsed = _parse(
        model="qwen2.5-0.5b",
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=64,
        temperature=0,
        top_p=1,
        stop="\n\n",
        seed=-7,
        n=1,
        logprobs=False,
        tools=[],
    )

    assert parsed.model == "qwen2.5-0.5b"
    assert parsed.params == ChatParams(max_tokens=64, temperature=0, top_p=1, stop=("\n\n",), seed=-7)
    assert (parsed.stream, parsed.include_usage) == (True, True)


def test_messages_keep_only_role_and_content():
    messages = [
        {"role": "system", "content": "Be brief.", "name": "setup"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]

    parsed = _parse(messages=messages)

    assert parsed.messages == tuple({"role": m["role"], "content": m["content"]} for m in messages)


def test_text_parts_are_joined():
    content = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world."}]

    assert _parse(messages=[{"role": "user", "content": content}]).messages[0]["content"] == "Hello, world."


def test_developer_role_is_the_system_role():
    parsed = _parse(messages=[{"role": "developer", "content": "Answer in French."}, USER])

    assert [m["role"] for m in parsed.messages] == ["system", "user"]


def test_include_usage_only_when_true():
    assert _parse(stream=True, stream_options={"include_usage": False}).include_usage is False
    assert _parse(stream=True, stream_options=None).include_usage is False
    assert _parse(stream=True, stream_options={"include_usage": True}).include_usage is True


# --- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "param", "code"),
    [
        (None, "messages", "invalid_value"),
        ([], "messages", "invalid_value"),
        ("Hello?", "messages", "invalid_value"),
        ([USER, "Hello?"], "messages[1]", "invalid_type"),
        ([{"role": "tool", "content": "42"}, USER], "messages[0].role", "invalid_value"),
        ([{"content": "no role"}], "messages[0].role", "invalid_value"),
        ([{"role": "user", "content": 42}], "messages[0].content", "invalid_type"),
        ([{"role": "user"}], "messages[0].content", "invalid_type"),
        ([{"role": "system", "content": "Only a system prompt."}], "messages", "invalid_value"),
        ([{"role": "user", "content": " \n\t"}], "messages", "invalid_value"),
    ],
)
def test_bad_messages(messages, param, code):
    assert _refused(messages=messages) == (param, code)


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "text", "text": 42},
        "plain string part",
    ],
)
def test_non_text_parts_are_refused(part):
    content = [{"type": "text", "text": "What is in this picture?"}, part]

    error = _refusal({"messages": [USER, {"role": "user", "content": content}]})

    assert (error.param, error.code) == ("messages[1].content", "invalid_type")
    assert "only text parts" in error.message


# --- model, n, stream -----------------------------------------------------------------------------


def test_unknown_model_is_404():
    error = _refusal({"messages": [USER], "model": "gpt-4o"}, status=404)

    assert (error.param, error.code) == ("model", "model_not_found")
    assert "smollm2-135m, qwen2.5-0.5b" in error.message


def test_model_must_be_a_string():
    assert _refused(model=7) == ("model", "invalid_type")


@pytest.mark.parametrize(
    ("n", "code"), [(2, "invalid_value"), (0, "invalid_value"), (1.0, "invalid_type"), (True, "invalid_type")]
)
def test_n_must_be_1(n, code):
    assert _refused(n=n) == ("n", code)


@pytest.mark.parametrize("stream", ["true", 1, 0])
def test_stream_must_be_a_boolean(stream):
    assert _refused(stream=stream) == ("stream", "invalid_type")


def test_stream_options_must_be_an_object():
    assert _refused(stream=True, stream_options=["include_usage"]) == ("stream_options", "invalid_type")


def test_body_must_be_an_object():
    for body in (None, [], "messages", 3):
        error = _refusal(body)
        assert (error.param, error.code) == (None, "invalid_json")


# --- numbers --------------------------------------------------------------------------------------


def test_max_completion_tokens_is_preferred_over_max_tokens():
    assert _parse(max_completion_tokens=32, max_tokens=999).params.max_tokens == 32
    assert _parse(max_tokens=999).params.max_tokens == 999
    assert _parse(max_completion_tokens=None, max_tokens=16).params.max_tokens == 16


def test_max_completion_tokens_is_checked_even_with_max_tokens():
    assert _refused(max_completion_tokens=0, max_tokens=16) == ("max_completion_tokens", "invalid_value")


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_range_is_the_context(name):
    assert _parse(**{name: N_CTX}).params.max_tokens == N_CTX
    assert _parse(**{name: 1}).params.max_tokens == 1
    assert _refused(**{name: N_CTX + 1}) == (name, "invalid_value")
    assert _refused(**{name: 0}) == (name, "invalid_value")
    assert _refused(**{name: 16.0}) == (name, "invalid_type")
    assert _refused(**{name: "16"}) == (name, "invalid_type")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", True),
        ("temperature", False),
        ("top_p", True),
        ("max_tokens", True),
        ("max_completion_tokens", True),
        ("seed", True),
        ("seed", False),
        ("n", True),
    ],
)
def test_booleans_are_not_numbers(name, value):
    assert _refused(**{name: value}) == (name, "invalid_type")


def test_temperature_range():
    assert _parse(temperature=0).params.temperature == 0
    assert _parse(temperature=2).params.temperature == 2
    assert _parse(temperature=0.7).params.temperature == 0.7
    assert _refused(temperature=2.01) == ("temperature", "invalid_value")
    assert _refused(temperature=-0.1) == ("temperature", "invalid_value")
    assert _refused(temperature="hot") == ("temperature", "invalid_type")


def test_top_p_excludes_zero():
    assert _parse(top_p=1).params.top_p == 1
    assert _parse(top_p=0.01).params.top_p == 0.01
    assert _refused(top_p=0) == ("top_p", "invalid_value")
    assert _refused(top_p=1.5) == ("top_p", "invalid_value")


def test_seed_is_a_64_bit_integer():
    assert _parse(seed=2**63 - 1).params.seed == 2**63 - 1
    assert _parse(seed=-(2**63)).params.seed == -(2**63)
    assert _parse(seed=0).params.seed == 0
    assert _refused(seed=2**63) == ("seed", "invalid_value")
    assert _refused(seed=-(2**63) - 1) == ("seed", "invalid_value")
    assert _refused(seed=1.5) == ("seed", "invalid_type")


def test_the_message_says_the_bounds():
    error = _refusal({"messages": [USER], "temperature": 3})

    assert error.message == "'temperature' must be at least 0 and at most 2; got 3."


# --- stop -----------------------------------------------------------------------------------------


def test_stop_as_string_or_list():
    assert _parse(stop="END").params.stop == ("END",)
    assert _parse(stop=["\n\n", "END", "###", "Q:"]).params.stop == ("\n\n", "END", "###", "Q:")
    assert _parse(stop=None).params.stop == ()
    assert _parse(stop=[]).params.stop == ()


@pytest.mark.parametrize("stop", ["", [""], ["a", 1], ["a", "b", "c", "d", "e"], {"a": 1}, 5, True])
def test_bad_stop(stop):
    assert _refused(stop=stop) == ("stop", "invalid_value")


# --- response_format ------------------------------------------------------------------------------


def test_text_format_is_plain():
    assert _parse(response_format={"type": "text"}).params == ChatParams()


def test_json_object_without_schema():
    params = _parse(response_format={"type": "json_object"}).params

    assert (params.json_object, params.json_schema) == (True, None)


def test_json_object_with_schema():
    params = _parse(response_format={"type": "json_object", "schema": SCHEMA}).params

    assert (params.json_object, params.json_schema) == (False, SCHEMA)


def test_json_schema():
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": SCHEMA}}

    params = _parse(response_format=response_format).params

    assert (params.json_object, params.json_schema) == (False, SCHEMA)


@pytest.mark.parametrize(
    ("response_format", "param", "code"),
    [
        ("json_object", "response_format", "invalid_type"),
        ({"type": "xml"}, "response_format.type", "invalid_value"),
        ({}, "response_format.type", "invalid_value"),
        ({"type": "json_object", "schema": '{"type": "object"}'}, "response_format.schema", "invalid_type"),
        ({"type": "json_schema"}, "response_format.json_schema", "invalid_type"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema", "invalid_type"),
        ({"type": "json_schema", "json_schema": {"schema": []}}, "response_format.json_schema", "invalid_type"),
    ],
)
def test_bad_response_format(response_format, param, code):
    assert _refused(response_format=response_format) == (param, code)


# --- unsupported features -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "auto"),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
        ("logprobs", True),
        ("top_logprobs", 3),
    ],
)
def test_unsupported_features_are_refused_when_asked_for(name, value):
    error = _refusal({"messages": [USER], name: value})

    assert (error.param, error.code) == (name, "unsupported_parameter")
    assert error.message == f"'{name}' is not supported by this unit."


@pytest.mark.parametrize(
    ("name", "value"), [("tools", []), ("logprobs", False), ("tool_choice", None), ("top_logprobs", 0)]
)
def test_unsupported_features_left_off_are_accepted(name, value):
    assert _parse(**{name: value}).params == ChatParams()


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "temperature", "top_p", "seed"])
def test_an_integer_of_hundreds_of_digits_is_out_of_range_not_an_overflow(name):
    # JSON integers have no size limit; converted to a float, 10**400 would raise OverflowError (a 500).
    error = _refusal({"messages": [USER], name: 10**400})

    assert (error.status, error.param, error.code) == (400, name, "invalid_value")
    assert "(401 digits)" in error.message


def test_reasoning_effort_asks_to_think_and_its_budget_is_held_to_bounds():
    assert _parse().thinking is None
    for effort in ("none", "minimal", "low", None):
        assert _parse(reasoning_effort=effort).thinking is None
    assert _parse(reasoning_effort="medium").thinking == ThinkingAsk(effort="medium")
    thinking = _parse(reasoning_effort="high", iplm_thinking={"max_calls": 4, "max_seconds": 30}).thinking
    assert thinking == ThinkingAsk(effort="high", max_calls=4, max_seconds=30.0)
    for bad in ("HIGH", "", 3, ["high"], {"effort": "high"}):
        assert _refused(reasoning_effort=bad) == ("reasoning_effort", "invalid_value")
    for bad in ("fast", [], {"depth": 2}):
        assert _refused(reasoning_effort="medium", iplm_thinking=bad) == ("iplm_thinking", "invalid_value")
    assert _refused(reasoning_effort="medium", iplm_thinking={"max_calls": 0}) == ("max_calls", "invalid_value")
    assert _refused(reasoning_effort="medium", iplm_thinking={"max_calls": 2.5}) == ("max_calls", "invalid_type")
    assert _refused(reasoning_effort="medium", iplm_thinking={"max_seconds": 4}) == ("max_seconds", "invalid_value")
    # A bad budget is a mistake even where nothing thinks.
    assert _refused(iplm_thinking={"max_calls": 0}) == ("max_calls", "invalid_value")
