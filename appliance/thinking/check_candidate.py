"""Check one candidate answer against what the person wants (pure): measured, never the model's say-so."""

from __future__ import annotations

import re
from collections import Counter

from appliance.thinking.check_grounded import check_grounded
from appliance.thinking.list_content_words import list_content_words
from appliance.thinking.thinking_types import CandidateCheck

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "ten": 10}
_LIMIT = re.compile(
    r"\b(?:in|under|within|at most|no more than|max(?:imum)?(?: of)?)\s+(\d+|" + "|".join(_NUMBER_WORDS) + r")\s+"
    r"(words?|sentences?|lines?|bullet points?|points?|items?)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_REPEATED_SHARE = 0.3  # a reply whose 4-word runs repeat this much is looping, a small model's failure
# How much each check weighs in the score; the checks that do not apply to a prompt leave it out.
_WEIGHTS = {"finished": 0.15, "parts": 0.35, "topic": 0.2, "fresh": 0.2, "clarified": 0.1, "length": 0.1}


def _limit(question: str) -> tuple[int, str] | None:
    found = _LIMIT.search(question)
    if found is None:
        return None
    count = found.group(1).lower()
    return int(count) if count.isdigit() else _NUMBER_WORDS[count], found.group(2).lower().rstrip("s")


def _measure(text: str, unit: str) -> int:
    if unit == "word":
        return len(text.split())
    if unit == "sentence":
        return max(1, len(_SENTENCE_END.findall(text.strip())))
    return len([line for line in text.splitlines() if line.strip()])


def _repeated_share(text: str) -> float:
    words = text.lower().split()
    runs = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    if len(runs) < 8:
        return 0.0
    counts = Counter(runs)
    return sum(count - 1 for count in counts.values()) / len(runs)


def check_candidate(
    text: str,
    *,
    finish_reason: str,
    question: str,
    parts: tuple[str, ...] = (),
    answers: tuple[str, ...] = (),
) -> CandidateCheck:
    """How `text` holds up: it answers something, it finished, it covers every part (half of each part's
    words in it), it stays on the question's words, it does not loop, it keeps to what the person clarified,
    and it keeps to a length the question sets ("in three sentences"). score: the share of the applicable
    checks' weight that passed; 0 for an empty answer."""
    if not list_content_words(text):
        return CandidateCheck(0.0, (), ("says nothing",))
    words = list_content_words(text)
    results: dict[str, tuple[bool, str]] = {}
    results["finished"] = (finish_reason != "length", "finished" if finish_reason != "length" else "cut short")
    if parts:
        covered = sum(check_grounded(part, text) for part in parts)
        results["parts"] = (covered == len(parts), f"covers {covered} of {len(parts)} parts")
    asked = list_content_words(question)
    if asked:
        results["topic"] = (bool(asked & words), "on the question" if asked & words else "off the question")
    looping = _repeated_share(text) >= _REPEATED_SHARE
    results["fresh"] = (not looping, "repeats itself" if looping else "no repetition")
    if answers:
        kept = all(check_grounded(answer, text) for answer in answers)
        results["clarified"] = (kept, "keeps to your answer" if kept else "misses your answer")
    limit = _limit(question)
    if limit is not None:
        most, unit = limit
        size = _measure(text, unit)
        results["length"] = (size <= most, f"{size} {unit}s (at most {most})")
    weight = sum(_WEIGHTS[name] for name in results)
    score = sum(_WEIGHTS[name] for name, (ok, _) in results.items() if ok) / weight
    return CandidateCheck(
        round(score, 3),
        tuple(note for ok, note in results.values() if ok),
        tuple(note for ok, note in results.values() if not ok),
    )
