"""Whether to ask the person before answering, and what: the rules and the intent model together (pure)."""

from __future__ import annotations

from appliance.thinking.clarify_types import (
    CLARIFY_BUDGET,
    MAX_CHOICES,
    MODEL_ASK_SHARE,
    Clarification,
    UnclearAspect,
)
from appliance.thinking.find_unclear_aspect import find_unclear_aspect
from appliance.thinking.intent_types import Ambiguity, IntentModel


def _question(found: UnclearAspect) -> str:
    words = found.words
    if found.category == "referent":
        return f"Who or what do you mean by \u201c{words}\u201d?"
    if found.category == "scope_time":
        return f"Which do you mean by \u201c{words}\u201d: where, when, or which one?"
    if found.category == "senses":
        return f"Which \u201c{words}\u201d do you mean?"
    if found.category == "goal":
        return "What would you like me to do?"
    return "Could you tell me a little more about what you need (who it is for, what about, how long)?"


def _best_ambiguity(intent: IntentModel | None, words: str = "") -> Ambiguity | None:
    """The model's ambiguity about `words` if it saw one, else its most agreed one."""
    if intent is None or not intent.ambiguities:
        return None
    about = [a for a in intent.ambiguities if words and words.lower() in a.aspect.lower()]
    return (about or list(intent.ambiguities))[0]


def _choices(ambiguity: Ambiguity | None) -> tuple[str, ...]:
    if ambiguity is None:
        return ()
    return tuple(reading.text for reading in ambiguity.readings[:MAX_CHOICES])


def decide_to_clarify(
    text: str, intent: IntentModel | None, *, has_history: bool = False, asked: int = 0
) -> Clarification | None:
    """The question to ask about `text` (the newest message) before answering, or None to answer now.

    The rules (find_unclear_aspect) decide first; their question takes its choices from the intent
    model's readings when it has them. Without a rule, the intent model asks only where at least
    MODEL_ASK_SHARE of its sampled analyses saw the same ambiguity or disagreed on the goal. After
    `asked` reaches CLARIFY_BUDGET, the unit answers with what it has.
    """
    if asked >= CLARIFY_BUDGET:
        return None
    found = find_unclear_aspect(text, has_history=has_history)
    if found is not None:
        return Clarification(found.category, _question(found), _choices(_best_ambiguity(intent, found.words)))
    ambiguity = _best_ambiguity(intent)
    if ambiguity is None or ambiguity.confidence < MODEL_ASK_SHARE or len(ambiguity.readings) < 2:
        return None
    if ambiguity.aspect == "goal":
        return Clarification("goal", _question(UnclearAspect("goal", "")), _choices(ambiguity))
    question = f"What do you mean by {ambiguity.aspect}?"
    return Clarification("aspect", question, _choices(ambiguity))
