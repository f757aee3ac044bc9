"""Data shapes of the clarify decision (deep thinking, issue 13): what is unclear, and the question to ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The rules' four categories; "goal": the analyses disagree on what is wanted; "aspect": they agree that one
# aspect is open.
Category = Literal["referent", "scope_time", "senses", "constraint", "goal", "aspect"]


@dataclass(frozen=True)
class UnclearAspect:
    """What the rules (or the intent model's disagreement) found unclear: its category, and the words of
    the prompt that made it so ("he", "the president", "bug", "write")."""

    category: Category
    words: str
    # The readings the rules know for these words (a word's senses), offered as choices before the model's.
    readings: tuple[str, ...] = ()


# How many clarifying questions one prompt may get before the unit answers with what it has.
CLARIFY_BUDGET = 2
# An ambiguity the rules did not see is asked about only when at least this share of the sampled analyses
# saw it (or disagreed on the goal): a small model flags something in most prompts, clear ones included.
MODEL_ASK_SHARE = 0.5
MAX_CHOICES = 4

# The clarifying question per category ({words}: the prompt's words the rules found unclear, or the model's
# aspect). Fixed wording: the API is stateless, so a question of the unit's is known again in a history by
# it (count_asked_clarifications).
QUESTIONS: dict[str, str] = {
    "referent": "Who or what do you mean by \u201c{words}\u201d?",
    "scope_time": "Which do you mean by \u201c{words}\u201d: where, when, or which one?",
    "senses": "Which \u201c{words}\u201d do you mean?",
    "goal": "What would you like me to do?",
    "constraint": "Could you tell me a little more about what you need (who it is for, what about, how long)?",
    "aspect": "What do you mean by {words}?",
}


@dataclass(frozen=True)
class Clarification:
    """One question back to the person: one-tap choices (the likely readings, most agreed first; may be
    empty) and free text always allowed."""

    category: Category
    question: str
    choices: tuple[str, ...] = ()
