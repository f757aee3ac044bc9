"""The rules half of the clarify decision: what in a prompt a person would be asked about."""

import json
from pathlib import Path

import pytest

from appliance.thinking.find_unclear_aspect import find_unclear_aspect

PROMPTS = Path(__file__).resolve().parents[2] / "benchmarks/prompts/clarify_prompts.json"


@pytest.mark.parametrize(
    "prompt, category, words",
    [
        ("How tall is he?", "referent", "he"),
        ("Can you fix this for me?", "referent", "this"),
        ("Why did the second one fail?", "referent", "the second one"),
        ("Who is the president?", "scope_time", "the president"),
        ("What is the best phone?", "scope_time", "best"),
        ("How do I get rid of a bug?", "senses", "bug"),
        ("Tell me about the bank.", "senses", "bank"),
        ("Write a poem.", "constraint", "write"),
        ("Write a letter to complain.", "constraint", "write"),
    ],
)
def test_each_kind_of_unclear_prompt_is_found_with_the_words_that_make_it_so(prompt, category, words):
    found = find_unclear_aspect(prompt)
    assert found is not None and (found.category, found.words) == (category, words)


@pytest.mark.parametrize(
    "prompt",
    [
        "How do I store fresh basil so it lasts a week?",  # "it" has basil to point back to
        "How do I boil an egg so that the yolk stays runny?",  # "so that" joins, it points at nothing
        "Who is the president of Ghana?",  # a name says which
        "How do I fix a bug in my Python program?",  # the context settles the sense
        "Tell me about the bank of a river.",
        "Write a poem about the sea.",
        "Convert 5 miles to kilometres.",
        "Write a short email to my landlord about the leaking tap this week.",
        "",
    ],
)
def test_a_prompt_that_says_what_it_means_is_left_alone(prompt):
    assert find_unclear_aspect(prompt) is None


def test_earlier_turns_may_say_who_he_is():
    assert find_unclear_aspect("How tall is he?", has_history=True) is None
    # A word of several senses stays unclear whatever came before: the intent model decides there.
    assert find_unclear_aspect("How do I get rid of a bug?", has_history=True) is not None


def test_on_the_evaluation_set_the_rules_ask_when_they_should_and_rarely_when_not():
    # The bar for the unit as a whole (at least 70% of ambiguous prompts, at most 20% of clear
    # ones); the rules were tuned on this set, so this guards them against regressions, no more.
    prompts = json.loads(PROMPTS.read_text("utf-8"))["prompts"]
    ambiguous = [p["prompt"] for p in prompts if p["label"] == "ambiguous"]
    clear = [p["prompt"] for p in prompts if p["label"] == "clear"]
    asked = sum(find_unclear_aspect(p) is not None for p in ambiguous) / len(ambiguous)
    wrongly = sum(find_unclear_aspect(p) is not None for p in clear) / len(clear)
    assert asked >= 0.7 and wrongly <= 0.2
