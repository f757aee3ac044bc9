"""Whether to ask the person before answering, and what: the rules and the intent model together (pure)."""

from __future__ import annotations

import re

from appliance.thinking.check_grounded import check_grounded
from appliance.thinking.clarify_types import (
    CLARIFY_BUDGET,
    MAX_CHOICES,
    MODEL_ASK_SHARE,
    QUESTIONS,
    Clarification,
    UnclearAspect,
)
from appliance.thinking.find_unclear_aspect import find_unclear_aspect
from appliance.thinking.intent_types import Ambiguity, IntentModel

_LETTERS = re.compile(r"[^\W\d_]{2}")
_MOST_CHOICE_CHARS = 80


def _question(found: UnclearAspect) -> str:
    return QUESTIONS[found.category].format(words=found.words)


def _best_ambiguity(intent: IntentModel | None, words: str = "") -> Ambiguity | None:
    """The model's ambiguity about `words` if it saw one, else its most agreed one."""
    if intent is None or not intent.ambiguities:
        return None
    said = re.compile(rf"\b{re.escape(words)}\b", re.IGNORECASE) if words else None
    about = [a for a in intent.ambiguities if said is not None and said.search(a.aspect)]
    return (about or list(intent.ambiguities))[0]


def _sane(reading: str, ambiguity: Ambiguity, text: str) -> bool:
    # A small model's readings are often the aspect again, the whole prompt, numbers or nothing.
    said = reading.strip().lower()
    return (
        bool(_LETTERS.search(said))
        and len(said) <= _MOST_CHOICE_CHARS
        and said not in (ambiguity.aspect.strip().lower(), text.strip().lower().rstrip("?.!"))
    )


def _choices(ambiguity: Ambiguity | None, text: str) -> tuple[str, ...]:
    if ambiguity is None:
        return ()
    readings = tuple(dict.fromkeys(r.text for r in ambiguity.readings if _sane(r.text, ambiguity, text)))
    return readings[:MAX_CHOICES] if len(readings) >= 2 else ()


def decide_to_clarify(
    text: str, intent: IntentModel | None, *, has_history: bool = False, asked: int = 0, rules: bool = True
) -> Clarification | None:
    """The question to ask about `text` (the newest message) before answering, or None to answer now.

    The rules (find_unclear_aspect) decide first; their question takes its choices from the intent
    model's readings when it has them. Without a rule, the intent model asks only where at least
    MODEL_ASK_SHARE of its sampled analyses saw the same ambiguity or disagreed on the goal. After
    `asked` reaches CLARIFY_BUDGET, the unit answers with what it has. rules=False: the model alone (the
    evaluation weighs the two halves).
    """
    if asked >= CLARIFY_BUDGET:
        return None
    found = find_unclear_aspect(text, has_history=has_history) if rules else None
    if found is not None:
        choices = found.readings[:MAX_CHOICES] or _choices(_best_ambiguity(intent, found.words), text)
        return Clarification(found.category, _question(found), choices)
    if intent is None:
        return None
    # The model alone asks only about an aspect most analyses saw, in the prompt's own words, with readings.
    for ambiguity in intent.ambiguities:
        if ambiguity.confidence < MODEL_ASK_SHARE:
            break  # most agreed first: none after this one is either
        choices = _choices(ambiguity, text)
        if ambiguity.aspect == "goal":
            # Goals that disagree are worth a question only when each is about the prompt's own words: a
            # small model's stray goals ("Paris", a name from nowhere) disagree with everything.
            goals = tuple(choice for choice in choices if check_grounded(choice, text))
            if len(goals) >= 2:
                return Clarification("goal", _question(UnclearAspect("goal", "")), goals)
            continue
        if choices and check_grounded(ambiguity.aspect, text):
            return Clarification("aspect", _question(UnclearAspect("aspect", ambiguity.aspect)), choices)
    return None
