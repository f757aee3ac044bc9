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


# How many clarifying questions one prompt may get before the unit answers with what it has.
CLARIFY_BUDGET = 2
# An ambiguity the rules did not see is asked about only when at least this share of the sampled analyses
# saw it (or disagreed on the goal): a small model flags something in most prompts, clear ones included.
MODEL_ASK_SHARE = 0.5
MAX_CHOICES = 4


@dataclass(frozen=True)
class Clarification:
    """One question back to the person: one-tap choices (the likely readings, most agreed first; may be
    empty) and free text always allowed."""

    category: Category
    question: str
    choices: tuple[str, ...] = ()
