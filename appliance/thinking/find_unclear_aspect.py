"""Rules that spot a prompt a person would be asked about: the half of the clarify decision that needs no model.

Tuned on benchmarks/prompts/clarify_prompts.json (written for iplm), in the categories the clarification
literature uses: an unclear referent ("How tall is he?"), an unclear scope or time ("Who is the
president?"), a word of several senses ("How do I get rid of a bug?"), a missing constraint ("Write a
poem."). The rules read only the newest message; earlier turns may say who "he" is, so with history the
referent rules stay quiet and the intent model's agreement decides.
"""

from __future__ import annotations

import re

from appliance.thinking.clarify_types import UnclearAspect

_WORD = re.compile(r"[A-Za-z0-9']+")
_PRONOUNS = frozenset(("he", "she", "they", "him", "her", "them", "his", "hers", "their", "it"))
_CONTENT_BEFORE_PRONOUN = 2  # "How do I store fresh basil so it lasts": "it" has a noun to point back to
# "this" or "that" naming something the prompt does not show; in a longer prompt "that" mostly joins a
# clause ("a bakery that sells bread") and "this week" is a time.
_DEMONSTRATIVE = re.compile(
    r"\b(this|that|these|those)\b(?!\s+(is|was|way|week|month|year|morning|evening|weekend)\b)", re.IGNORECASE
)
_NOT_DEMONSTRATIVE = re.compile(r"\bso that\b|\bsuch that\b|\bnow that\b", re.IGNORECASE)
_ONE_OF_SEVERAL = re.compile(r"\bthe (other|second|first|last|big|small|new|old) one\b|\bthe other\b", re.IGNORECASE)
# A definite "the X" that names one of many without saying which, and no name follows to say it.
_UNSAID_SCOPE = re.compile(
    r"\b(the (president|city|team|championship|trip|university|weather|population|election|mayor|capital))\b"
    r"|\bhere\b|\blast (week|month|year)\b|\bit open\b",
    re.IGNORECASE,
)
_OPEN_CHOICE = re.compile(r"\b(best|expensive|cheapest|good)\b", re.IGNORECASE)
# Words whose everyday senses are far apart, and words that settle which one is meant.
_SENSES: dict[str, frozenset[str]] = {
    "bug": frozenset(("code", "program", "software", "insect", "garden", "app", "bed")),
    "bat": frozenset(("cricket", "baseball", "cave", "wing", "animal", "ball")),
    "bank": frozenset(("money", "account", "river", "loan", "savings", "stream")),
    "key": frozenset(("lock", "door", "piano", "song", "keyboard", "music", "car")),
    "match": frozenset(("fire", "light", "football", "tennis", "game", "dating", "partner")),
    "plant": frozenset(("water", "garden", "pot", "leaves", "factory", "power", "flower")),
    "pitch": frozenset(("note", "music", "roof", "sales", "football", "singing", "tent")),
    "mouse": frozenset(("computer", "pet", "trap", "cursor", "cage", "usb", "wireless")),
    "crane": frozenset(("bird", "building", "construction", "lift", "fly", "wings")),
    "spring": frozenset(("metal", "coil", "season", "garden", "water", "mattress", "flowers")),
    "bass": frozenset(("fish", "guitar", "music", "fishing", "speaker", "sound")),
    "seal": frozenset(("animal", "zoo", "envelope", "leak", "window", "rubber")),
}
# What each of those words can mean, as the person would tap it.
_READINGS: dict[str, tuple[str, ...]] = {
    "bug": ("an insect", "an error in software"),
    "bat": ("the animal", "a cricket or baseball bat"),
    "bank": ("where money is kept", "the side of a river"),
    "key": ("a key for a lock", "a piano or keyboard key", "the key of a piece of music"),
    "match": ("a match to light a fire", "a game or contest", "a good pairing"),
    "plant": ("a living plant", "a factory or power plant"),
    "pitch": ("how high a note is", "a sports field", "a sales pitch"),
    "mouse": ("the animal", "a computer mouse"),
    "crane": ("the bird", "a construction crane"),
    "spring": ("the season", "a metal coil", "a source of water"),
    "bass": ("the fish", "low sound or a bass guitar"),
    "seal": ("the animal", "sealing something shut"),
}
_SHORT = 8  # words: a longer prompt usually carries its own context
# A request that leaves the person's choices open: a verb asking for something made, and little else.
_MAKING = re.compile(
    r"^(please\s+)?(plan|write|suggest|give me|recommend|translate|make|help me choose|convert|create|draft|design)\b",
    re.IGNORECASE,
)
# What narrows such a request: a subject, a recipient, a purpose, a number ("to complain" does not: whom?).
_CONSTRAINT = re.compile(
    r"\b(about|with|without|under|over|in|into|from|using|of)\b|\bto (my|the|a|an|his|her|their|our)\b"
    r"|\bfor (?!me\b|my\b)\w+|\d",
    re.IGNORECASE,
)
_FEW_WORDS = 7


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _unclear_referent(text: str, words: list[str]) -> UnclearAspect | None:
    lowered = [word.lower() for word in words]
    for index, word in enumerate(lowered):
        if word in _PRONOUNS:
            content = [w for w in lowered[:index] if len(w) > 3 and w not in ("what", "when", "where", "which")]
            if len(content) < _CONTENT_BEFORE_PRONOUN:
                return UnclearAspect("referent", words[index])
            break
    cleaned = _NOT_DEMONSTRATIVE.sub(" ", text)
    demonstrative = _DEMONSTRATIVE.search(cleaned) if len(words) <= _SHORT else None
    if demonstrative:
        return UnclearAspect("referent", demonstrative.group(1))
    several = _ONE_OF_SEVERAL.search(text)
    if several:
        return UnclearAspect("referent", several.group(0))
    return None


def _unclear_scope(text: str, words: list[str]) -> UnclearAspect | None:
    # A name after the first word ("the president of Ghana", "in Lisbon") says which one.
    if any(word[:1].isupper() for word in words[1:]):
        return None
    found = _UNSAID_SCOPE.search(text)
    if found:
        return UnclearAspect("scope_time", found.group(0))
    choice = _OPEN_CHOICE.search(text) if len(words) <= _SHORT else None
    if choice and not _CONSTRAINT.search(text):
        return UnclearAspect("scope_time", choice.group(0))  # "the best phone": best at what?
    return None


def _several_senses(words: list[str]) -> UnclearAspect | None:
    if len(words) > _SHORT:
        return None
    lowered = {word.lower().rstrip("s") for word in words} | {word.lower() for word in words}
    for word, settles in _SENSES.items():
        if word in lowered and not lowered & settles:
            return UnclearAspect("senses", word, _READINGS[word])
    return None


def _missing_constraint(text: str, words: list[str]) -> UnclearAspect | None:
    making = _MAKING.search(text.strip())
    if making and len(words) <= _FEW_WORDS and not _CONSTRAINT.search(text[making.end() :]):
        return UnclearAspect("constraint", making.group(2).lower())
    return None


def find_unclear_aspect(text: str, *, has_history: bool = False) -> UnclearAspect | None:
    """The first aspect of `text` the rules find unclear (its category and the words that made it so), or
    None: the prompt says what it means as far as rules can tell."""
    words = _words(text)
    if not words:
        return None
    found = None if has_history else _unclear_referent(text, words)
    return found or _several_senses(words) or _unclear_scope(text, words) or _missing_constraint(text, words)
