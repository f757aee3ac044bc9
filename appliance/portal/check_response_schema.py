"""Refuse response_format JSON schemas that would cost an engine more than any chat needs, before one sees them.

llama.cpp turns a schema into a grammar (llama_cpp.llama_grammar.json_schema_to_gbnf, then its C++ parser) by
writing every bounded repeat out in full: a 144-byte schema with minItems 10^9 asks for about 18 GB, 10^7 makes
a 180 MB grammar. A grammar the C++ parser refuses (an optional repeat nested ~1000 deep, an escape it does not
know such as \\d) leaves llama-cpp-python without a sampler, and the worker dies by SIGSEGV; a stray ']' in a
pattern sends the converter into an endless loop; a '"' in a property name or an enum value escapes its quotes
and writes raw grammar. So the portal bounds what drives the cost and refuses what the converter or the parser
cannot take, naming the JSON path of the keyword (400 invalid_schema).

The limits are generous for what a unit is for, structured answers from a small model whose whole reply is a
few thousand tokens, and far below what hurts: the largest schema they let through makes a grammar of a few MB.
"""

from __future__ import annotations

import json
import math
import re

from appliance.portal.portal_types import ApiError

# A real structured-output schema is a few KB; 32 KiB holds hundreds of described properties.
_MAX_SCHEMA_BYTES = 32 * 1024
# Every JSON value in the document: bounds each walk below before it starts.
_MAX_NODES = 5000
# Nesting of the JSON document itself (const values and enums included): the converter's walks are recursive,
# and Python's recursion limit is about 1000 frames.
_MAX_JSON_DEPTH = 64
# Subschemas inside subschemas, $refs followed: OpenAI allows 10; a small model's answer is flatter still.
_MAX_SCHEMA_DEPTH = 16
# Subschemas visited with every $ref written out: a $def used by a $def used by ... grows exponentially, and
# the converter expands allOf that way.
_MAX_EXPANDED_SCHEMAS = 5000
# Entries of one properties (or $defs...) object: the converter chains optional properties with one Python frame
# each, and in quadratic time.
_MAX_PROPERTIES = 256
# Property and $defs names become grammar rule names, repeated in every rule beneath them.
_MAX_NAME_CHARS = 128
# Enum values: a list of countries or languages fits.
_MAX_ENUM_VALUES = 500
# One enum value or const, as JSON text.
_MAX_LITERAL_CHARS = 1024
# minItems/maxItems, minLength/maxLength, ... and {n,m} in patterns: llama.cpp's parser itself refuses more
# than 1000 nested optional repeats (then the worker crashes, see above), and no reply of a small model holds
# 1000 items, or 1000 characters in a field whose length it is asked to bound.
_MAX_COUNT = 1000
# An email or a date pattern is under 100 characters.
_MAX_PATTERN_CHARS = 512
# Optional repeats (m - n of each {n,m}) in one pattern, together, with a repeated group's own weighing as often as
# it repeats: llama.cpp refuses a group that holds 2000 rules or more, and its sampler follows every way a nested
# repeat can match so far, which multiplies: measured with SmolLM2 on 24 tokens, ((a{0,10}){0,10}){0,10} never
# finished, ((a{0,8}){0,8}){0,8} (weight 584) took 4.6 s and (a{0,50}){0,50} (2550) 2.6 s, while
# ((a{0,4}){0,4}){0,4} (84) and (a{0,16}){0,16} (272) took what a plain string does.
_MAX_PATTERN_OPTIONAL = 500
# Estimated grammar text (each repeat written out, times the rule name it repeats, and every rule's own names):
# real schemas make a few KB; this keeps what a schema may ask of the converter and the parser to a few MB.
_MAX_GRAMMAR_CHARS = 2_000_000

_COUNT_PAIRS = (
    ("minItems", "maxItems"),
    ("minLength", "maxLength"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
# Where JSON Schema keeps subschemas: more places than llama.cpp's converter reads (MLC's reads others).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
# Names that become rule names and quoted grammar literals.
_NAMED_MAPS = ("properties", "$defs", "definitions")
# Quotes break out of the converter's grammar literals; control characters become escapes (\b, \f) that
# llama.cpp's grammar parser does not read.
_UNQUOTABLE = re.compile(r'["\x00-\x1f]')
# Pattern escapes the converter turns into plain characters, or passes on to a grammar parser that reads them.
_PATTERN_ESCAPES = frozenset("[](){}|*+?" + 'tnr\\"-')
# Inside [...] the converter passes every escape on as written: only those llama.cpp's parser reads.
_CLASS_ESCAPES = frozenset('tnr\\"-[]')
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
# Rough sizes in the converter's output: a rule's name plus its separators, and the names a subschema's own rules
# repeat (its rule, a key-value rule, a rest rule...).
_RULE_OVERHEAD_CHARS = 32
_RULES_PER_SCHEMA = 4
_CHAR_RULE_CHARS = 8  # one repeat of a string's "char" rule


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}"
    shown = key if len(key) <= 40 else key[:40] + "..."
    return f"{path}[{json.dumps(shown)}]"


def _refuse(path: str, reason: str) -> ApiError:
    return ApiError(400, f"{path}: {reason}", param=path, code="invalid_schema")


def _check_document(schema: dict, path: str) -> None:
    """Bound the document before anything walks it recursively: values, nesting, bytes."""
    pending: list[tuple[object, str, int]] = [(schema, path, 1)]
    seen = 1
    while pending:
        value, where, depth = pending.pop()
        if depth > _MAX_JSON_DEPTH:
            raise _refuse(where, f"the schema nests deeper than {_MAX_JSON_DEPTH} levels.")
        children: list[tuple[object, str | int]] = []
        if isinstance(value, dict):
            children = [(child, key) for key, child in value.items()]
        elif isinstance(value, list):
            children = [(child, index) for index, child in enumerate(value)]
        seen += len(children)
        if seen > _MAX_NODES:
            raise _refuse(path, f"the schema holds more than {_MAX_NODES} values; this unit takes smaller ones.")
        pending.extend((child, _join(where, key), depth + 1) for child, key in children)
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > _MAX_SCHEMA_BYTES:
        raise _refuse(path, f"the schema is {size} bytes; this unit takes at most {_MAX_SCHEMA_BYTES}.")


def _read_count(node: dict, keyword: str, path: str) -> int:
    value = node.get(keyword)
    if value is None:
        return 0
    where = _join(path, keyword)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(where, f"{keyword} must be a whole number; got {json.dumps(value)}.")
    if value < 0 or value > _MAX_COUNT:
        raise _refuse(
            where,
            f"{keyword} is {value}; this unit allows 0 to {_MAX_COUNT} (its grammar engine writes every repeat out).",
        )
    return value


def _check_counts(node: dict, path: str) -> tuple[int, int]:
    """Validate the repeat counts and numeric bounds; what the repeats cost, as (characters, rule names)."""
    chars, names = 0, 0
    for low_keyword, high_keyword in _COUNT_PAIRS:
        low, high = _read_count(node, low_keyword, path), _read_count(node, high_keyword, path)
        if high_keyword in node and low > high:
            raise _refuse(_join(path, low_keyword), f"{low_keyword} {low} is more than {high_keyword} {high}.")
        if low_keyword == "minLength":
            chars += max(low, high) * _CHAR_RULE_CHARS
        else:
            names += max(low, high)
    for keyword in _NUMBER_KEYWORDS:
        value = node.get(keyword)
        finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if keyword in node and not finite:
            raise _refuse(_join(path, keyword), f"{keyword} must be a finite number; got {json.dumps(value)}.")
    return chars, names


def _describe_escape(escape: str) -> str:
    hints = {"d": "[0-9]", "w": "[a-zA-Z0-9_]", "s": "[ \\t\\n\\r]", ".": "[.]", "/": "/"}
    hint = hints.get(escape)
    if escape in "xuU":
        return f"the escape \\{escape} is not supported in patterns on this unit; write the character itself."
    if hint is not None:
        return f"the escape \\{escape} is not supported in patterns on this unit; write {hint} instead."
    return (
        f"the escape \\{escape} is not supported in patterns on this unit; write the character in a class, [{escape}]."
    )


def _read_quantifier(text: str, pattern_path: str) -> tuple[int, int | None]:
    # As the converter reads {n}, {n,} and {n,m}: int() of each part, spaces stripped.
    parts = [part.strip() for part in text.split(",")]
    high: int | None
    try:
        if len(parts) == 1:
            low = high = int(parts[0])
        elif len(parts) == 2:
            low = int(parts[0]) if parts[0] else 0
            high = int(parts[1]) if parts[1] else None
        else:
            raise ValueError(text)
    except ValueError:
        raise _refuse(pattern_path, f"{{{text}}} is not a repeat count; write \\{{ for a literal brace.") from None
    if high == 0:
        raise _refuse(pattern_path, f"{{{text}}} repeats zero times; leave the item out.")
    if low < 0 or low > _MAX_COUNT or (high is not None and (high < low or high > _MAX_COUNT)):
        raise _refuse(pattern_path, f"the repeat {{{text}}} is out of range; this unit allows 0 to {_MAX_COUNT}.")
    return low, high


def _scan_class(body: str, start: int, pattern_path: str) -> int:
    """Check the [...] at `start`; the index just after it."""
    index = start + 1
    if body[index : index + 1] == "^":
        index += 1
    first = index
    while index < len(body) and body[index] != "]":
        if body[index] == "\\":
            escape = body[index + 1 : index + 2]
            if not escape:
                raise _refuse(pattern_path, "a '[' is never closed.")
            if escape not in _CLASS_ESCAPES:
                raise _refuse(pattern_path, _describe_escape(escape))
            index += 2
        else:
            index += 1
    if index >= len(body):
        raise _refuse(pattern_path, "a '[' is never closed.")
    if index == first:
        raise _refuse(pattern_path, "an empty class [] matches nothing.")
    return index + 1


def _check_pattern(pattern: object, path: str) -> tuple[int, int]:
    """Validate a pattern as llama.cpp's converter will read it; what its grammar costs, as (characters, rule
    names written): each repeat writes out its item, a literal run (the converter repeats a run of escapes
    whole) or a rule's name."""
    if not isinstance(pattern, str):
        raise _refuse(path, "a pattern must be a string.")
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise _refuse(path, f"the pattern is {len(pattern)} characters; this unit takes at most {_MAX_PATTERN_CHARS}.")
    if re.search(r"[\x00-\x1f]", pattern):
        raise _refuse(path, "the pattern holds a control character; write \\n, \\t or \\r.")
    anchored = len(pattern) >= 2 and pattern.startswith("^") and pattern.endswith("$")
    body = pattern[1:-1] if anchored else pattern
    index, chars, names, run = 0, len(body), 0, 0
    # The optional weight of the pattern and of each group open around this point; and of the group just closed,
    # which a repeat that follows multiplies.
    weights, closed = [0], 0
    # What came last: "start" (of the pattern, a group or an alternative), "atom" or "repeat". llama.cpp's parser
    # refuses a repeat of nothing, of a repeat (a**), and a repeated group with an empty alternative ((a|)*).
    last = "start"
    while index < len(body):
        char = body[index]
        if char == "\\":
            escape = body[index + 1 : index + 2]
            if escape not in _PATTERN_ESCAPES:
                raise _refuse(path, _describe_escape(escape) if escape else "the pattern ends with a lone '\\'.")
            index, last, run, closed = index + 2, "atom", run + 2, 0
        elif char == "[":
            index, last, run, closed = _scan_class(body, index, path), "atom", 0, 0
        elif char == "(":
            if body[index + 1 : index + 2] == "?":
                raise _refuse(path, "(?...) groups (lookaround, named or non-capturing) are not supported here.")
            index, last, run, closed = index + 1, "start", 0, 0
            weights.append(0)
        elif char in "|)":
            if last == "start":
                raise _refuse(path, f"an empty group or alternative before position {index}; write (x)? instead.")
            if char == ")" and len(weights) == 1:
                raise _refuse(path, f"the ')' at position {index} closes no group.")
            closed = 0
            if char == ")":
                closed = weights.pop()
                weights[-1] += closed
            index, last, run = index + 1, "start" if char == "|" else "atom", 0
        elif char in "*+?{":
            if last != "atom":
                raise _refuse(
                    path, f"the '{char}' at position {index} repeats nothing, or a repeat (a** or a lazy *?)."
                )
            if char == "{":
                end = body.find("}", index)
                if end < 0:
                    raise _refuse(path, "a '{' is never closed; write \\{ for a literal brace.")
                low, high = _read_quantifier(body[index + 1 : end], path)
                count = max(low, high or 0) + 1
                chars, names = (chars + count * (run + 2), names) if run else (chars, names + count)
                # Written out `high` times (or `low`, then a loop); a group's weight counts in each copy.
                span, copies = (high - low, high) if high is not None else (1, max(low, 1))
                index = end + 1
            else:
                span, copies = 0, 1  # *, + and ? are loops and options of one copy: measured, they cost nothing
                index += 1
            weights[-1] += span + copies * closed - closed  # the group itself was counted once when it closed
            last, run, closed = "repeat", 0, 0
        elif char in "]}":
            # The converter loops forever on these.
            raise _refuse(path, f"a stray '{char}' at position {index}; write \\{char}.")
        else:
            index, last, run, closed = index + 1, "atom", 0 if char == "." else run + 1, 0
    if len(weights) > 1:
        raise _refuse(path, "a '(' is never closed.")
    if body and last == "start":
        raise _refuse(path, "the pattern ends with an empty alternative.")
    if weights[0] > _MAX_PATTERN_OPTIONAL:
        raise _refuse(
            path,
            f"the pattern's optional repeats add up to {weights[0]} (each counted as often as the repeats around "
            f"it); this unit allows {_MAX_PATTERN_OPTIONAL}: nest fewer repeats, or give smaller counts.",
        )
    return chars, names


def _check_name(name: str, path: str) -> None:
    if len(name) > _MAX_NAME_CHARS:
        raise _refuse(path, f"the name is {len(name)} characters; this unit takes at most {_MAX_NAME_CHARS}.")
    if _UNQUOTABLE.search(name):
        raise _refuse(path, "names may not hold '\"' or control characters on this unit.")


def _find_unquotable(value: object) -> str | None:
    """The first string in a JSON value (keys included) that the converter cannot quote."""
    if isinstance(value, str):
        return value if _UNQUOTABLE.search(value) else None
    if isinstance(value, dict):
        found = next((key for key in value if _UNQUOTABLE.search(key)), None)
        return found if found is not None else next(filter(None, map(_find_unquotable, value.values())), None)
    if isinstance(value, list):
        return next(filter(None, map(_find_unquotable, value)), None)
    return None


def _check_literal(value: object, path: str) -> int:
    """Validate an enum value or a const; the grammar characters it costs."""
    text = json.dumps(value)
    if len(text) > _MAX_LITERAL_CHARS:
        raise _refuse(
            path, f"the value is {len(text)} characters as JSON; this unit takes at most {_MAX_LITERAL_CHARS}."
        )
    if _find_unquotable(value) is not None:
        raise _refuse(path, "enum and const strings may not hold '\"' or control characters on this unit.")
    return 2 * len(text)


def _check_keywords(node: dict, path: str) -> tuple[int, int]:
    """Validate one subschema's own keywords; what its grammar costs, as (characters, rule names written)."""
    chars, names = _check_counts(node, path)
    names += _RULES_PER_SCHEMA
    if "pattern" in node:
        pattern_chars, pattern_names = _check_pattern(node["pattern"], _join(path, "pattern"))
        chars, names = chars + pattern_chars, names + pattern_names
    for keyword in _SCHEMA_MAPS:
        members = node.get(keyword)
        if not isinstance(members, dict):
            continue
        where = _join(path, keyword)
        if len(members) > _MAX_PROPERTIES:
            raise _refuse(where, f"{len(members)} entries; this unit takes at most {_MAX_PROPERTIES} in one object.")
        for key in members:
            if keyword == "patternProperties":
                pattern_chars, pattern_names = _check_pattern(key, _join(where, key))
                chars, names = chars + pattern_chars, names + pattern_names
            elif keyword in _NAMED_MAPS:
                _check_name(key, _join(where, key))
    if "enum" in node:
        values = node["enum"]
        where = _join(path, "enum")
        if not isinstance(values, list):
            raise _refuse(where, "enum must be a list.")
        if len(values) > _MAX_ENUM_VALUES:
            raise _refuse(where, f"{len(values)} values; this unit takes at most {_MAX_ENUM_VALUES}.")
        chars += sum(_check_literal(value, _join(where, index)) for index, value in enumerate(values))
    if "const" in node:
        chars += _check_literal(node["const"], _join(path, "const"))
    return chars, names


def _resolve_ref(root: dict, root_path: str, ref: object, path: str) -> tuple[dict, str]:
    """The subschema a $ref names, and its path; read as the converter reads it (no ~0/~1, no %-decoding)."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise _refuse(path, "a $ref must point inside this schema ('#/$defs/...'); this unit fetches nothing.")
    shown = ref if len(ref) <= 80 else ref[:80] + "..."
    target: object = root
    where = root_path
    for part in ref.split("#")[-1].split("/")[1:]:
        if not isinstance(target, dict) or part not in target:
            raise _refuse(path, f"$ref {json.dumps(shown)} points at nothing in this schema.")
        target, where = target[part], _join(where, part)
    if not isinstance(target, dict):
        raise _refuse(path, f"$ref {json.dumps(shown)} does not point at a schema object.")
    return target, where


def _list_subschemas(node: dict, path: str) -> list[tuple[object, str, str]]:
    """The subschemas written inside `node`: (subschema, path, the name step it adds)."""
    found: list[tuple[object, str, str]] = []
    for keyword in _SCHEMA_MAPS:
        members = node.get(keyword)
        if isinstance(members, dict):
            found += [(child, _join(_join(path, keyword), key), key) for key, child in members.items()]
    for keyword in _SCHEMA_LISTS:
        members = node.get(keyword)
        if isinstance(members, list):
            found += [
                (child, _join(_join(path, keyword), index), f"{keyword}{index}") for index, child in enumerate(members)
            ]
    found += [(node[keyword], _join(path, keyword), keyword) for keyword in _SCHEMA_VALUES if keyword in node]
    return found


def _walk(
    document: tuple[dict, str],
    node: object,
    path: str,
    depth: int,
    name_chars: int,
    ancestors: frozenset[int],
    room: tuple[int, int],
    checked: dict[int, tuple[int, int]],
) -> tuple[int, int]:
    """Check a subschema and every one beneath it, $refs followed (against `document`: the schema and its path),
    within `room` (subschemas, grammar characters) left; what it used of each. `checked` keeps each node's own
    cost: a $def used many times is read once."""
    if not isinstance(node, dict):
        return 0, 0  # true/false schemas, and malformed ones the engine refuses cheaply
    schemas_left, chars_left = room
    if schemas_left < 1:
        raise _refuse(path, f"with its $refs written out the schema has more than {_MAX_EXPANDED_SCHEMAS} subschemas.")
    if depth > _MAX_SCHEMA_DEPTH:
        raise _refuse(path, f"subschemas nest deeper than {_MAX_SCHEMA_DEPTH} levels ($refs followed).")
    if id(node) not in checked:
        checked[id(node)] = _check_keywords(node, path)
    chars, names = checked[id(node)]
    used = chars + names * (name_chars + _RULE_OVERHEAD_CHARS)
    if used > chars_left:
        raise _refuse(
            path,
            f"the schema would make a grammar of more than {_MAX_GRAMMAR_CHARS // 1_000_000} MB here (repeats and "
            f"long names nested deep); use smaller repeat counts, shorter names or fewer levels.",
        )
    children = _list_subschemas(node, path)
    if "$ref" in node:
        target, target_path = _resolve_ref(*document, node["$ref"], _join(path, "$ref"))
        if id(target) in ancestors or target is node:
            raise _refuse(
                _join(path, "$ref"), "the $ref leads back to a schema that holds it; cycles are not supported."
            )
        children.append((target, target_path, target_path.rsplit(".", 1)[-1]))
    inside, schemas = ancestors | {id(node)}, 1
    for child, child_path, step in children:
        child_schemas, child_chars = _walk(
            document,
            child,
            child_path,
            depth + 1,
            name_chars + len(step) + 1,
            inside,
            (schemas_left - schemas, chars_left - used),
            checked,
        )
        schemas, used = schemas + child_schemas, used + child_chars
    return schemas, used


def check_response_schema(schema: dict, path: str) -> None:
    """Raise a 400 invalid_schema ApiError, naming the keyword's path under `path`, for a response_format schema
    that would cost an engine more than this unit lets a chat cost, or that its grammar engine cannot take."""
    _check_document(schema, path)
    _walk((schema, path), schema, path, 1, 0, frozenset(), (_MAX_EXPANDED_SCHEMAS, _MAX_GRAMMAR_CHARS), {})
