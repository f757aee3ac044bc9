"""The router: is a prompt worth cutting into pieces, and along which lines.

Rules, not the model: they run in microseconds, before anything is queued, and a wrong "whole" only costs
the speed-up, while a wrong split costs the answer. So they split only what is plainly several things:
a list of questions, one instruction over a list of subjects, a text too long for one unit to read at
once. Code, maths and one flowing text always run whole, even when they come as a numbered list (the
requirements of one program, the steps of one problem).
"""

from __future__ import annotations

import re

from appliance.split.split_types import MAX_PIECES, Route

# Longer than this (characters, about 600 tokens) and in paragraphs: read in parts, in parallel.
LONG_TEXT_CHARS = 2400
# A part of a long text: at least about this many characters (parts end at paragraph ends); fewer, larger
# parts where fewer units can read one at once (a part that waits for a unit costs more than a larger one).
PART_CHARS = 1200
_MAX_INSTRUCTION_CHARS = 300

# Code pasted in: always whole, however long.
_CODE_PASTED = re.compile(r"```|\bdef \w+\(|[{};]\s*$", re.MULTILINE)
# A short request about code (words that in a long report mean a dress code or a school class).
_CODE_WORDS = re.compile(
    r"\b(python|javascript|typescript|bash|sql|html|css|java|c\+\+|rust|golang|regex|json|yaml|"
    r"function|method|class|script|program|code|compile|bug|api)\b",
    re.IGNORECASE,
)
_MATHS = re.compile(
    r"\b(solve|simplify|calculate|compute|equation|integral|derivative|factori[sz]e|prove|step by step)\b|"
    r"\d\s*[-+*/×÷^=]\s*\d|[a-z]\s*\^\s*\d|\b[a-z]\s*[=<>]\s*\d|\d\s*[a-z]\s*[-+=]",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+(.+?)\s*$")
_INLINE_NUMBER = re.compile(r"(?:^|\s)(\d{1,2})[.)]\s+")
_QUESTION_WORD = re.compile(
    r"^(what|what's|whats|who|whom|whose|when|where|why|how|which|is|are|was|were|do|does|did|can|could|"
    r"should|would|will|shall|may|must|has|have|had)\b",
    re.IGNORECASE,
)
# A question that starts by pointing back at another one is not self-contained ("it" is left out: "is it
# bad to..." points nowhere).
_LEANS_BACK = re.compile(
    r"^\W*(?:\w+\W+){0,2}(this|that|these|those|they|them|their|theirs|its|he|she|his|her|him)\b", re.IGNORECASE
)
# A second sentence that says the first one again, in other words.
_REPHRASES = re.compile(r"^\W*(i mean|like|that is|in other words|or rather)\b", re.IGNORECASE)
_VAGUE = re.compile(r"\b(it|this|that)\b", re.IGNORECASE)
_MIN_QUESTION_WORDS = 3
_SHORT_QUESTION_WORDS = 5
_EACH = re.compile(r"\beach\b|\bthe following\b|\bthese\b", re.IGNORECASE)
_ITEM_SEPARATOR = re.compile(r"\s*;\s*|\s*,\s*(?:and\s+|or\s+)?|\s+and\s+")
_MAX_SUBJECT_WORDS = 6


def _is_question(text: str) -> bool:
    return text.rstrip().endswith("?") or bool(_QUESTION_WORD.match(text.strip()))


def _self_contained(questions: list[str], first_too: bool) -> bool:
    # Each question needs enough words to stand alone, and none may lean on an earlier one.
    for index, question in enumerate(questions):
        words = len(question.split())
        if words < _MIN_QUESTION_WORDS or (words == _MIN_QUESTION_WORDS and _VAGUE.search(question)):
            return False  # "Why?", "Is it safe?": a question about something said elsewhere
        if (index > 0 or first_too) and (_LEANS_BACK.match(question) or _REPHRASES.match(question)):
            return False
        if (index > 0 or first_too) and words <= _SHORT_QUESTION_WORDS and re.search(r"\bit\b", question, re.I):
            return False  # "How big is it?"
    return True


def _cut_long_text(text: str, most_parts: int) -> Route | None:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(text) < LONG_TEXT_CHARS or len(paragraphs) < 3:
        return None
    # What is asked of the text: a short first paragraph ("Summarise this:"), else a short last one.
    if len(paragraphs[0]) <= _MAX_INSTRUCTION_CHARS:
        instruction, paragraphs = paragraphs[0], paragraphs[1:]
    elif len(paragraphs[-1]) <= _MAX_INSTRUCTION_CHARS and paragraphs[-1].endswith(("?", ".", ":")):
        instruction, paragraphs = paragraphs[-1], paragraphs[:-1]
    else:
        return None  # a long text with nothing asked of it: nothing to answer part by part
    body = sum(len(p) for p in paragraphs)
    target = max(PART_CHARS, -(-body // max(2, min(most_parts, MAX_PIECES))))
    parts: list[str] = []
    for paragraph in paragraphs:
        if parts and len(parts[-1]) < target and len(parts[-1]) + len(paragraph) <= target * 3 // 2:
            parts[-1] = f"{parts[-1]}\n\n{paragraph}"
        else:
            parts.append(paragraph)
    if len(parts) < 2:
        return None
    return Route("map_reduce", f"a long text in {len(parts)} parts", tuple(parts), instruction)


def _split_items(listing: str) -> list[str]:
    items = [item.strip(" .") for item in _ITEM_SEPARATOR.split(listing.strip().rstrip("."))]
    return [item for item in items if item]


def _route_list(intro: str, items: list[str], first_too: bool) -> Route | None:
    if len(items) < 2 or len(items) > MAX_PIECES:
        return None
    if all(_is_question(item) for item in items):
        if _self_contained(items, first_too):
            return Route("sections", f"{len(items)} separate questions", tuple(items))
        return None
    # An instruction over a list of short subjects ("... each of these cities:").
    if intro.endswith(":") and _EACH.search(intro) and all(len(item.split()) <= _MAX_SUBJECT_WORDS for item in items):
        return Route("sections", f"one request over {len(items)} subjects", tuple(items), intro)
    return None


def _route_lines(text: str, first_too: bool) -> Route | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    items = [match.group(1) for line in lines if (match := _LIST_ITEM.match(line))]
    if len(items) >= 2:
        intro_lines = [line for line in lines if not _LIST_ITEM.match(line)]
        if len(intro_lines) > 1 or (intro_lines and lines[0] != intro_lines[0]):
            return None  # text between or after the items: one request with a list inside
        return _route_list(intro_lines[0] if intro_lines else "", items, first_too)
    numbers = [int(n) for n in _INLINE_NUMBER.findall(text)]
    if len(lines) == 1 and len(numbers) >= 2 and numbers == list(range(1, len(numbers) + 1)):
        chunks = _INLINE_NUMBER.split(text)
        intro, items = chunks[0].strip(), [chunk.strip() for chunk in chunks[2::2]]
        return _route_list(intro, items, first_too)
    if len(lines) >= 2:
        intro = lines[0] if lines[0].endswith(":") else ""
        questions = lines[1:] if intro else lines
        return _route_list(intro, questions, first_too) if all(_is_question(q) for q in questions) else None
    return None


def _route_sentences(text: str, first_too: bool) -> Route | None:
    sentences = [s.strip() for s in re.split(r"(?<=[?.!])\s+", text.strip()) if s.strip()]
    if len(sentences) < 2 or not all(s.endswith("?") for s in sentences):
        return None
    return _route_list("", sentences, first_too)


def _route_subjects(text: str) -> Route | None:
    if "\n" in text.strip() or text.count(":") != 1:
        return None
    intro, listing = text.split(":")
    return _route_list(intro.strip() + ":", _split_items(listing), False)


def route_prompt(text: str, *, has_history: bool = False, most_parts: int = MAX_PIECES) -> Route:
    """How the prompt `text` (the person's newest message) is best answered. has_history: earlier turns
    exist, so even the first question may lean on them. most_parts: how many parts a long text should be
    read in, at most (the chats that can run at once in reach)."""
    text = text.strip()
    if not text:
        return Route("whole", "empty")
    if _CODE_PASTED.search(text):
        return Route("whole", "code")
    long_text = _cut_long_text(text, most_parts)
    if long_text is not None:
        return long_text
    if _CODE_WORDS.search(text):
        return Route("whole", "code")
    if _MATHS.search(text):
        return Route("whole", "maths")
    for route in (_route_lines(text, has_history), _route_sentences(text, has_history), _route_subjects(text)):
        if route is not None:
            return route
    return Route("whole", "one request")
