"""The planner: the router's parts made into self-contained pieces, by the rules or by the model.

The rules' pieces are exact (a question as asked; an instruction with one subject in place of the list).
The model planner asks the unit's model for the pieces as JSON (a schema the engine enforces) and keeps
its plan only when it passes the same checks as a person would make: as many pieces as the router found,
each about its own part. A board model can rephrase a piece that leans on the others; a 135M model mostly
copies or garbles, so the rules are the default (benchmarks/bench_split.py measures both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from appliance.split.split_types import Piece, Route, SplitPlan

_MAX_TITLE_CHARS = 80
_MAX_PIECE_PROMPT_CHARS = 240
# Words that say "for every one of the list" in an instruction; a piece has one subject, not a list.
_EACH_WORDS = re.compile(r"\s*\b(for each of|each of|for each|the following|each)\b\s*", re.IGNORECASE)
_THESE = re.compile(r"\bthese\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]{3,}")
_COMMON = frozenset(
    ("the", "and", "for", "what", "how", "why", "who", "when", "where", "which", "with", "does", "are", "was")
)

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "pieces": {
            "type": "array",
            "minItems": 2,
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": _MAX_TITLE_CHARS},
                    "prompt": {"type": "string", "maxLength": _MAX_PIECE_PROMPT_CHARS},
                },
                "required": ["title", "prompt"],
            },
        }
    },
    "required": ["pieces"],
}
_PLANNER_PROMPT = (
    "Cut the request below into {n} separate requests, one for each of its parts, so that each can be "
    "answered alone. Give each a short title. Answer in JSON.\n\nRequest:\n{text}"
)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TITLE_CHARS else text[: _MAX_TITLE_CHARS - 1].rstrip() + "…"


def _ask_for_subject(instruction: str, subject: str) -> str:
    # "Describe each of these cities in two sentences:" + "Oslo" -> "Describe the following cities in two
    # sentences: Oslo"
    cleaned = _EACH_WORDS.sub(" ", instruction.rstrip(": ")).strip(" ,")
    cleaned = _THESE.sub("the following", cleaned)
    return f"{cleaned}: {subject}"


def _plan_with_rules(route: Route) -> tuple[Piece, ...]:
    if route.kind == "map_reduce":
        n = len(route.parts)
        return tuple(
            Piece(
                f"Part {i + 1} of {n}",
                f"{route.instruction}\n\n(This is part {i + 1} of {n} of a longer text. Answer briefly, from "
                f"this part only.)\n\n{part}",
            )
            for i, part in enumerate(route.parts)
        )
    if route.instruction:
        return tuple(Piece(_shorten(part), _ask_for_subject(route.instruction, part)) for part in route.parts)
    return tuple(Piece(_shorten(part), part) for part in route.parts)


def _words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _COMMON}


def _check_model_plan(reply: str, route: Route) -> tuple[Piece, ...] | None:
    """The model's pieces, or None when they are not the router's parts: each piece must carry most of the
    words of its own part (a piece that lost its subject answers something else)."""
    try:
        pieces = json.loads(reply)["pieces"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(pieces, list) or len(pieces) != len(route.parts):
        return None
    planned = []
    for piece, part in zip(pieces, route.parts, strict=True):
        if not isinstance(piece, dict):
            return None
        title, prompt = piece.get("title"), piece.get("prompt")
        if not isinstance(title, str) or not isinstance(prompt, str) or not prompt.strip():
            return None
        wanted = _words(part)
        if wanted and len(wanted & _words(prompt)) * 2 < len(wanted):
            return None
        planned.append(Piece(_shorten(title) or _shorten(part), prompt.strip()[:_MAX_PIECE_PROMPT_CHARS]))
    return tuple(planned)


def plan_pieces(route: Route, text: str, ask_model: Callable[[str, dict], str] | None = None) -> SplitPlan:
    """The pieces of a prompt the router split. ask_model(prompt, schema) -> the model's JSON reply: given,
    the model cuts sections and the rules' cut stands in wherever its plan fails the checks."""
    rules = _plan_with_rules(route)
    reduce_prompt = ""
    if route.kind == "map_reduce":
        reduce_prompt = (
            f"{route.instruction}\n\nThe text was long, so it was read in {len(route.parts)} parts. "
            "Notes on each part follow; answer from them as if you had read the whole text."
        )
    if ask_model is None or route.kind != "sections":
        return SplitPlan(route.kind, rules, reduce_prompt)
    try:
        reply = ask_model(_PLANNER_PROMPT.format(n=len(route.parts), text=text), PLAN_SCHEMA)
    except Exception:  # the model planner is a refinement; the rules' cut always stands
        reply = ""
    planned = _check_model_plan(reply, route)
    if planned is None:
        return SplitPlan(route.kind, rules, reduce_prompt, planner="rules (the model's plan failed its checks)")
    return SplitPlan(route.kind, planned, reduce_prompt, planner="model")
