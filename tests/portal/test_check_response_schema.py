"""check_response_schema alone: real schemas pass, each bomb is refused at its keyword's path, and what passes
is a grammar llama.cpp's own converter and parser take (checked against the installed llama.cpp)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance.portal.check_response_schema import check_response_schema
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError

S = "response_format.json_schema.schema"


def _nest(levels: int, leaf: dict | None = None) -> dict:
    schema = leaf or {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def _refusal(schema: dict) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_response_schema(schema, S)
    assert (caught.value.status, caught.value.code) == (400, "invalid_schema")
    assert caught.value.message.startswith(f"{caught.value.param}: ")
    return caught.value


# Real uses, and each limit at its edge: all of them must pass, and compile in llama.cpp.
PASSING = [
    {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": "string"},
        },
        "required": ["steps", "final_answer"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 80},
            "date": {"type": "string", "format": "date"},
            "email": {"type": "string", "pattern": "^[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9.-]{1,128}[.][a-zA-Z]{2,24}$"},
            "participants": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 20},
            "mood": {"enum": ["happy", "sad", None, 3]},
            "kind": {"const": "event"},
            "score": {"type": "number", "minimum": 0, "maximum": 10},
        },
        "required": ["name", "date"],
    },
    {
        "$defs": {
            "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}
        },
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
    },
    {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "integer"}, {"type": "null"}]},
    {"type": "object", "properties": {"é \\ name/with~odd-chars": {"type": "string"}, "": {"type": "boolean"}}},
    # At the limits.
    {"type": "string", "maxLength": 1000},
    {"type": "string", "minLength": 1000, "maxLength": 1000},
    {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 1000},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 1000},
    {"type": "string", "pattern": "^([a-z]{0,500})?$"},
    {"type": "string", "pattern": '^(\\(|[\\]\\[])?x{1000}(a|b|[^c])*\\t\\\\\\-\\"".$'},
    {"type": "string", "pattern": "^" + "(a?)" * 100 + "$"},
    {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 500} for i in range(256)}},
    {"enum": [f"value {i}" for i in range(500)]},
    {"enum": ["x" * 1000]},
    {"type": "object", "properties": {"k" * 128: {"type": "string"}}},
    _nest(15),
]


@pytest.mark.parametrize("schema", PASSING)
def test_real_schemas_and_the_limits_themselves_pass(schema):
    check_response_schema(schema, S)


@pytest.mark.parametrize(
    ("schema", "param", "words"),
    [
        ({"type": "array", "minItems": 10**9}, f"{S}.minItems", "allows 0 to 1000"),
        ({"type": "array", "maxItems": 1001}, f"{S}.maxItems", "allows 0 to 1000"),
        ({"type": "string", "maxLength": 1001}, f"{S}.maxLength", "allows 0 to 1000"),
        ({"type": "object", "minProperties": 5000}, f"{S}.minProperties", "allows 0 to 1000"),
        ({"type": "array", "minItems": 1e9}, f"{S}.minItems", "whole number"),
        ({"type": "array", "minItems": True}, f"{S}.minItems", "whole number"),
        ({"type": "array", "minItems": -1}, f"{S}.minItems", "allows 0 to 1000"),
        ({"type": "array", "minItems": 5, "maxItems": 2}, f"{S}.minItems", "more than maxItems"),
        ({"type": "number", "maximum": float("inf")}, f"{S}.maximum", "finite"),
        (_nest(17), S + ".items" * 16, "deeper than 16"),
        (_nest(100), S + ".items" * 64, "deeper than 64"),
        ({"type": "object", "description": "x" * 40_000}, S, "at most 32768"),
        ({"const": list(range(6000))}, S, "more than 5000 values"),
        ({"type": "object", "properties": {f"p{i}": {} for i in range(257)}}, f"{S}.properties", "at most 256"),
        ({"type": "object", "properties": {"k" * 129: {}}}, f"{S}.properties.{'k' * 129}", "at most 128"),
        ({"enum": list(range(501))}, f"{S}.enum", "at most 500"),
        ({"enum": ["x" * 1100]}, f"{S}.enum[0]", "at most 1024"),
        ({"enum": ["ok", 'a" | [0-9] #']}, f"{S}.enum[1]", "'\"'"),
        ({"const": {"nested": ["tab\there"]}}, f"{S}.const", "control characters"),
        ({"type": "object", "properties": {'a"b': {}}}, f'{S}.properties["a\\"b"]', "'\"'"),
        ({"type": "string", "pattern": "^a{1000000}$"}, f"{S}.pattern", "allows 0 to 1000"),
        ({"type": "string", "pattern": "^[a-z]{0,501}$"}, f"{S}.pattern", "optional repeats add up to 501"),
        ({"type": "string", "pattern": "^a{0,300}b{0,300}$"}, f"{S}.pattern", "optional repeats add up to 600"),
        ({"type": "string", "pattern": "^a{x}$"}, f"{S}.pattern", "not a repeat count"),
        ({"type": "string", "pattern": "^a{0}$"}, f"{S}.pattern", "zero times"),
        ({"type": "string", "pattern": "^a{3,2}$"}, f"{S}.pattern", "out of range"),
        ({"type": "string", "pattern": "^\\d+$"}, f"{S}.pattern", "write [0-9]"),
        ({"type": "string", "pattern": "^a\\.b$"}, f"{S}.pattern", "write [.]"),
        ({"type": "string", "pattern": "^[\\w]$"}, f"{S}.pattern", "\\w"),
        ({"type": "string", "pattern": "^\\u00e9$"}, f"{S}.pattern", "the character itself"),
        ({"type": "string", "pattern": "^a\\$"}, f"{S}.pattern", "lone"),
        ({"type": "string", "pattern": "^a]$"}, f"{S}.pattern", "stray ']'"),
        ({"type": "string", "pattern": "^a}$"}, f"{S}.pattern", "stray '}'"),
        ({"type": "string", "pattern": "^[]a$"}, f"{S}.pattern", "empty class"),
        ({"type": "string", "pattern": "^[abc$"}, f"{S}.pattern", "never closed"),
        ({"type": "string", "pattern": "^(a|)*$"}, f"{S}.pattern", "empty group or alternative"),
        ({"type": "string", "pattern": "^()*$"}, f"{S}.pattern", "empty group or alternative"),
        ({"type": "string", "pattern": "^a**$"}, f"{S}.pattern", "repeats nothing, or a repeat"),
        ({"type": "string", "pattern": "^*a$"}, f"{S}.pattern", "repeats nothing"),
        ({"type": "string", "pattern": "^(?=a)$"}, f"{S}.pattern", "(?...)"),
        ({"type": "string", "pattern": "^(a$"}, f"{S}.pattern", "never closed"),
        ({"type": "string", "pattern": "^a)$"}, f"{S}.pattern", "closes no group"),
        ({"type": "string", "pattern": "^a\nb$"}, f"{S}.pattern", "control character"),
        ({"type": "string", "pattern": "^" + "a" * 600 + "$"}, f"{S}.pattern", "at most 512"),
        ({"patternProperties": {"^\\d$": {}}}, f'{S}.patternProperties["^\\\\d$"]', "\\d"),
        ({"$ref": "https://example.com/schema.json"}, f"{S}.$ref", "fetches nothing"),
        ({"$ref": "#/$defs/missing"}, f"{S}.$ref", "points at nothing"),
        ({"$defs": {"a": []}, "$ref": "#/$defs/a"}, f"{S}.$ref", "not point at a schema"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, f"{S}.$defs.a.$ref", "cycles"),
        (
            {"$defs": {"node": {"properties": {"kids": {"items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"},
            f"{S}.$defs.node.properties.kids.items.$ref",
            "cycles",
        ),
    ],
)
def test_each_bomb_is_refused_at_its_keyword(schema, param, words):
    error = _refusal(schema)
    assert error.param == param
    assert words in error.message


def test_refs_that_fan_out_are_refused_without_writing_them_out():
    defs: dict = {"d0": {"type": "string"}}
    for level in range(1, 31):  # 2**30 subschemas once written out
        defs[f"d{level}"] = {"anyOf": [{"$ref": f"#/$defs/d{level - 1}"}, {"$ref": f"#/$defs/d{level - 1}"}]}
    error = _refusal({"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d30"}}})
    assert "more than 5000 subschemas" in error.message or "deeper than 16" in error.message


def test_a_grammar_of_long_names_times_repeats_is_refused():
    # 1.7 KB of schema that llama.cpp's converter turns into 2.6 MB of grammar: an object item's rule is named after
    # its path, and every repeat writes that name out.
    items = {"type": "object", "properties": {"a": {"type": "string"}}}
    schema = {
        "type": "object",
        "properties": {"n" * 120 + str(i): {"type": "array", "items": items, "maxItems": 1000} for i in range(3)},
    }
    for level in range(6):
        schema = {"type": "object", "properties": {"m" * 120 + str(level): schema}}
    error = _refusal(schema)
    assert "grammar of more than 2 MB" in error.message


def test_both_response_formats_check_their_schema():
    bomb = {"type": "array", "minItems": 10**9}
    for response_format, param in [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": bomb}}, f"{S}.minItems"),
        ({"type": "json_object", "schema": bomb}, "response_format.schema.minItems"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_chat_request(
                {"messages": [{"role": "user", "content": "hi"}], "response_format": response_format},
                models=("m",),
                n_ctx=2048,
            )
        assert (caught.value.code, caught.value.param) == ("invalid_schema", param)


# Runs in a child process: a grammar llama.cpp refuses would crash it (no sampler), not the test run.
_COMPILE_ALL = """
import json, sys, threading
import llama_cpp
from llama_cpp.llama_grammar import json_schema_to_gbnf
from appliance.engine.locate_default_model import locate_default_model
vocab = llama_cpp.Llama(model_path=str(locate_default_model()), vocab_only=True, verbose=False)._model.vocab
failed = []
def compile_all():
    for index, schema in enumerate(json.load(sys.stdin)):
        grammar = json_schema_to_gbnf(json.dumps(schema))
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        else:
            failed.append(index)
worker = threading.Thread(target=compile_all)  # the stack an engine worker's chat thread has
worker.start()
worker.join()
print(json.dumps(failed))
"""


@pytest.mark.engine
def test_what_passes_is_a_grammar_llama_cpp_takes():
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_ALL], input=json.dumps(PASSING), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    "pattern",
    [
        "^((a{0,50}){0,50}){0,50}$",  # found by the hostile suite: the worker never finished a 24-token reply
        "^((a{0,8}){0,8}){0,8}$",  # 4.6 s for 24 tokens of SmolLM2
        "^(a{0,50}){0,50}$",
        "^([a-z]{0,50}[0-9]{0,50}){0,10}$",
        "^a{0,501}$",
    ],
)
def test_nested_repeats_are_weighed_as_often_as_they_repeat(pattern):
    error = _refusal({"type": "string", "pattern": pattern})
    assert error.param.endswith(".pattern") and "optional repeats" in error.message


@pytest.mark.parametrize(
    "pattern",
    ["^((a{0,4}){0,4}){0,4}$", "^(a{0,16}){0,16}$", "^([0-9]{3}-)?[0-9]{4}$", "^(a+)+$", "^a{0,500}$"],
)
def test_nested_repeats_that_cost_what_a_plain_string_does_pass(pattern):
    check_response_schema({"type": "string", "pattern": pattern}, "schema")
