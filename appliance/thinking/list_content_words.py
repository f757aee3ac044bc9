"""The words of a phrase that carry its meaning, crudely stemmed: what agreement and coverage compare."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
# Words that carry no aspect of their own ("how many people" and "number of people" are one aspect).
# fmt: off
_STOP = frozenset((
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "be", "it", "its", "this",
    "that", "with", "as", "at", "by", "from", "about", "what", "which", "how", "who", "why", "when", "where",
    "i", "me", "my", "you", "your", "do", "does", "can", "many", "much", "number",
))
# fmt: on
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    # Crude, and enough for agreement: "cooking", "cooked" and "cooks" are one word here.
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def list_content_words(text: str) -> frozenset[str]:
    """The stemmed words of `text` less the stop words (all its words when it has only stop words)."""
    words = [word for word in _WORD.findall(text.lower()) if word not in _STOP]
    return frozenset(_stem(word) for word in (words or _WORD.findall(text.lower())))
