"""The router: what it splits, along which lines, and what it always leaves whole."""

import json
from pathlib import Path

import pytest

from appliance.split.route_prompt import LONG_TEXT_CHARS, route_prompt
from appliance.split.split_types import MAX_PIECES

PROMPTS = json.loads((Path(__file__).parents[2] / "benchmarks/prompts/split_prompts.json").read_text("utf-8"))


@pytest.mark.parametrize("entry", PROMPTS["prompts"], ids=lambda entry: entry["id"])
def test_the_benchmark_set_is_routed_as_labelled(entry):
    route = route_prompt(entry["prompt"])
    assert (route.kind != "whole") == (entry["label"] == "split"), route.reason
    if entry["kind"] == "long_text":
        assert route.kind == "map_reduce"
    elif entry["label"] == "split":
        assert route.kind == "sections"


def test_the_set_has_at_least_thirty_of_each():
    labels = [entry["label"] for entry in PROMPTS["prompts"]]
    assert labels.count("split") >= 30 and labels.count("whole") >= 30
    assert len({entry["id"] for entry in PROMPTS["prompts"]}) == len(labels)


def test_a_numbered_list_of_questions_becomes_its_questions():
    route = route_prompt("1. Why is the sea salty?\n2. What causes thunder?\n3) How do magnets work?")
    assert route.kind == "sections"
    assert route.parts == ("Why is the sea salty?", "What causes thunder?", "How do magnets work?")


def test_one_instruction_over_subjects_keeps_the_instruction():
    route = route_prompt("Write a short paragraph about each of: the Moon, Mars, and Jupiter.")
    assert route.kind == "sections"
    assert route.parts == ("the Moon", "Mars", "Jupiter")
    assert route.instruction == "Write a short paragraph about each of:"


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a Python function that:\n1. reads a file\n2. counts words\n3. prints the top ten",
        "Solve step by step:\n1) A pen costs 2.\n2) Maria buys 12.\nHow much does she pay?",
        "What is 12 * 7? What is 3 + 4?",
        "Why? I mean, why is the sky blue?",
        "Is it safe? Like, can dogs eat grapes?",
        "What is Paris? How big is it?",
        "Who was Napoleon? Where was he born?",
        "Write a story about a cat, a dog and a parrot.",
        "Tell me more.",
        "",
        "Pack these for me:\n- a tent\n- a stove\nand then tell me what is missing.",
    ],
)
def test_what_belongs_together_runs_whole(prompt):
    assert route_prompt(prompt).kind == "whole"


def test_with_history_even_the_first_question_may_not_lean_on_it():
    # With nothing before it, "they" in the first question points nowhere a piece would lose.
    prompt = "What did they eat in Rome? How do volcanoes form?"
    assert route_prompt(prompt).kind == "sections"
    assert route_prompt(prompt, has_history=True).kind == "whole"
    assert route_prompt("How do volcanoes form? What do whales eat?", has_history=True).kind == "sections"


def test_more_questions_than_pieces_run_whole():
    questions = "\n".join(f"{n}. What is the number {n} known for?" for n in range(1, MAX_PIECES + 2))
    assert route_prompt(questions).kind == "whole"


def test_a_long_text_is_cut_at_paragraph_ends_into_few_parts():
    paragraphs = [f"Paragraph {n} says something about the harbour and its boats. " * 6 for n in range(12)]
    text = "Summarise the text below.\n\n" + "\n\n".join(p.strip() for p in paragraphs)
    assert len(text) > LONG_TEXT_CHARS
    route = route_prompt(text)
    assert route.kind == "map_reduce"
    assert route.instruction == "Summarise the text below."
    assert 2 <= len(route.parts) <= MAX_PIECES
    # Nothing lost, nothing doubled, order kept.
    assert "\n\n".join(route.parts) == "\n\n".join(p.strip() for p in paragraphs)


def test_a_long_text_with_its_question_at_the_end_is_cut_too():
    body = "\n\n".join(f"Day {n}. We walked along the coast and watched the birds for hours. " * 5 for n in range(10))
    route = route_prompt(body + "\n\nWhat did we see on the walks?")
    assert route.kind == "map_reduce" and route.instruction == "What did we see on the walks?"


def test_long_pasted_code_is_never_cut():
    code = "```python\n" + "\n\n".join(f"def f{n}(x):\n    return x + {n}" for n in range(200)) + "\n```"
    assert route_prompt("Explain this code.\n\n" + code).kind == "whole"
