"""Whether a phrase a model wrote is about the prompt's own words: a small model often writes of something
it brought in itself (its instructions' words, another subject, nothing at all)."""

from __future__ import annotations

from appliance.thinking.list_content_words import list_content_words


def check_grounded(phrase: str, text: str) -> bool:
    """True when at least half of the phrase's content words are words of `text`."""
    words = list_content_words(phrase)
    return bool(words) and len(words & list_content_words(text)) * 2 >= len(words)
