"""The deep-thinking evaluation set (issue 13) is what the issue asks for: labelled, balanced, well formed."""

import collections
import json
from pathlib import Path

PROMPTS = Path(__file__).resolve().parents[2] / "benchmarks/prompts/clarify_prompts.json"
CATEGORIES = {"referent", "scope_time", "senses", "constraint"}


def _load() -> list[dict]:
    return json.loads(PROMPTS.read_text("utf-8"))["prompts"]


def test_ids_are_unique_and_every_prompt_is_labelled():
    prompts = _load()
    assert len({p["id"] for p in prompts}) == len(prompts)
    assert {p["label"] for p in prompts} == {"ambiguous", "clear"}
    assert all(p["prompt"].strip() == p["prompt"] and p["prompt"] for p in prompts)


def test_forty_ambiguous_prompts_ten_in_each_category_each_with_its_readings():
    ambiguous = [p for p in _load() if p["label"] == "ambiguous"]
    assert len(ambiguous) >= 40
    counts = collections.Counter(p["category"] for p in ambiguous)
    assert set(counts) == CATEGORIES and min(counts.values()) >= 10
    assert all(len(p["readings"]) >= 2 for p in ambiguous)


def test_forty_clear_prompts_some_in_several_parts_each_part_with_words_to_find():
    clear = [p for p in _load() if p["label"] == "clear"]
    assert len(clear) >= 40
    multi = [p for p in clear if p["category"] == "multi_part"]
    assert len(multi) >= 10
    assert all(len(p["parts"]) >= 2 and all(words for words in p["parts"]) for p in multi)
    assert all("parts" not in p for p in clear if p["category"] != "multi_part")
