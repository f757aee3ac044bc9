"""Data shapes of the clarify decision (deep thinking, issue 13): what is unclear, and the question to ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Category = Literal["referent", "scope_time", "senses", "constraint", "goal"]


@dataclass(frozen=True)
class UnclearAspect:
    """What the rules (or the intent model's disagreement) found unclear: its category, and the words of
    the prompt that made it so ("he", "the president", "bug", "write")."""

    category: Category
    words: str
