"""The pure parts of the thinking layer: reading cut-off JSON, the budget, checking a candidate, refining the
intent with the person's answer, knowing the unit's own questions again in a stateless history."""

from __future__ import annotations

import pytest

from appliance.thinking.check_candidate import check_candidate
from appliance.thinking.clarify_types import CLARIFY_BUDGET, QUESTIONS
from appliance.thinking.count_asked_clarifications import count_asked_clarifications
from appliance.thinking.intent_types import MAX_ITEMS, Ambiguity, IntentAnalysis, Weighted
from appliance.thinking.merge_intent_analyses import merge_intent_analyses
from appliance.thinking.plan_thinking_budget import plan_thinking_budget
from appliance.thinking.read_intent_analysis import read_intent_analysis
from appliance.thinking.read_truncated_json import read_truncated_json
from appliance.thinking.refine_intent_model import refine_intent_model
from appliance.thinking.thinking_types import MAX_CALLS, MAX_SECONDS


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"goal": "a", "needs": ["x", "y', {"goal": "a", "needs": ["x"]}),
        ('{"goal": "a", "ne', {"goal": "a"}),
        ('{"goal": "a", "needs": ["x"], ', {"goal": "a", "needs": ["x"]}),
        ('{"goal": "say \\"hi\\" back", "x": [{"a": "b"}, {"a"', {"goal": 'say "hi" back', "x": [{"a": "b"}, {}]}),
        ('{"goal": "a"}', {"goal": "a"}),
        ("[1, 2", []),  # a cut point is after a string or a bracket: a number may have been cut mid-way
        ("", None),
        ("no json at all", None),
        ('{"a": "b"}}}', {"a": "b"}),
    ],
)
def test_cut_off_json_is_read_as_far_as_it_closes(text, value):
    assert read_truncated_json(text) == value


def test_deeper_than_any_reply_is_read_no_further_and_no_slower():
    value, depth = read_truncated_json("[" * 100_000), 0
    while value:
        value, depth = value[0], depth + 1
    assert depth < 32


def test_an_analysis_cut_off_at_max_tokens_still_gives_its_goal_and_ambiguities():
    reply = '{"goal": "remove a bug", "ambiguities": [{"aspect": "bug", "readings": ["insect", "error"]}], "compo'
    analysis = read_intent_analysis(reply)
    assert analysis == IntentAnalysis("remove a bug", ambiguities=(("bug", ("insect", "error")),))


def test_the_budget_follows_the_effort_the_engine_and_the_persons_override():
    assert plan_thinking_budget("low", engine_kind="llama.cpp", width=4) is None
    medium = plan_thinking_budget("medium", engine_kind="llama.cpp", width=4)
    high = plan_thinking_budget("high", engine_kind="llama.cpp", width=4)
    gpu = plan_thinking_budget("medium", engine_kind="mlc", width=4)
    assert medium is not None and high is not None and gpu is not None
    assert (medium.analyses, medium.candidates) == (3, 2) and (high.analyses, high.candidates) == (5, 3)
    assert gpu.max_seconds < medium.max_seconds < high.max_seconds
    narrow = plan_thinking_budget("medium", engine_kind="llama.cpp", width=1)
    assert narrow is not None and narrow.max_seconds > medium.max_seconds  # calls that wait their turn
    one = plan_thinking_budget("high", engine_kind="llama.cpp", width=4, max_calls=1)
    assert one is not None and (one.analyses, one.candidates, one.max_calls) == (0, 1, 1)
    many = plan_thinking_budget("medium", engine_kind="llama.cpp", width=4, max_calls=10**6, max_seconds=10**9)
    assert many is not None and many.max_calls == MAX_CALLS and many.max_seconds == MAX_SECONDS
    assert many.analyses + many.candidates <= many.max_calls


def test_a_candidate_is_scored_by_what_can_be_measured():
    question = "What is the capital of France and what is its currency? Answer in two sentences."
    good = check_candidate(
        "The capital of France is Paris. Its currency is the euro.",
        finish_reason="stop",
        question=question,
        parts=("capital of France", "currency"),
    )
    assert good.score == 1.0 and not good.failed
    half = check_candidate(
        "The capital of France is Paris, a city on the Seine. It has many museums. It is lovely.",
        finish_reason="length",
        question=question,
        parts=("capital of France", "currency"),
    )
    assert 0 < half.score < good.score
    assert {"cut short", "covers 1 of 2 parts", "3 sentences (at most 2)"} <= set(half.failed)
    looping = check_candidate("the capital the capital of France " * 20, finish_reason="stop", question=question)
    assert "repeats itself" in looping.failed and looping.score < good.score
    assert check_candidate("   ", finish_reason="stop", question=question).score == 0.0
    kept = check_candidate(
        "Insects leave if you seal cracks.", finish_reason="stop", question="bug?", answers=("insects",)
    )
    missed = check_candidate("Restart the program.", finish_reason="stop", question="bug?", answers=("insects",))
    assert "keeps to your answer" in kept.passed and "misses your answer" in missed.failed


def _bug_model():
    readings = (("bug", ("an insect", "an error in software")),)
    return merge_intent_analyses([IntentAnalysis("remove a bug", ambiguities=readings)] * 2)


def test_an_answer_that_names_a_reading_settles_that_ambiguity():
    refined = refine_intent_model(_bug_model(), "An insect, in the kitchen")
    assert not refined.ambiguities
    assert refined.constraints[0] == Weighted("bug: an insect", 1.0)


def test_free_text_settles_the_most_agreed_ambiguity_and_becomes_a_constraint():
    model = _bug_model()
    other = Ambiguity("which kitchen", (Weighted("mine", 1.0), Weighted("a shop's", 1.0)), 0.5)
    model = type(model)(**{**model.__dict__, "ambiguities": (*model.ambiguities, other)})
    refined = refine_intent_model(model, "the ones that bite")
    assert refined.ambiguities == (other,)
    assert refined.constraints[0] == Weighted("the ones that bite", 1.0)
    assert refine_intent_model(model, "   ") == model


def test_refined_constraints_stay_within_what_a_kept_model_may_hold():
    model = _bug_model()
    for index in range(3 * MAX_ITEMS):
        model = refine_intent_model(model, f"detail number {index}")
    assert len(model.constraints) <= MAX_ITEMS * model.analyses
    assert model.constraints[0].text == f"detail number {3 * MAX_ITEMS - 1}"


def _history(*texts):
    return [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(texts)]


def test_the_units_own_questions_are_known_again_in_a_stateless_history():
    he = QUESTIONS["referent"].format(words="he")
    goal = QUESTIONS["goal"]
    assert count_asked_clarifications(_history("How tall is he?", he, "Obama")) == 1
    assert count_asked_clarifications(_history("How tall is he?", he, "Obama", goal, "his height")) == 2
    # Never more than the budget, however long the history of questions.
    long = _history("q", *[text for _ in range(5) for text in (goal, "a")])
    assert count_asked_clarifications(long) == CLARIFY_BUDGET
    # An answer, a question of someone else's wording, or a question it did not end with: none.
    assert count_asked_clarifications(_history("How tall is he?", "He is 1.85 m.", "thanks")) == 0
    assert count_asked_clarifications(_history("How tall is he?", "Who is he?", "Obama")) == 0
    assert count_asked_clarifications(_history("How tall is he?", he)) == 0
    assert count_asked_clarifications(_history("hi")) == 0
    huge = QUESTIONS["aspect"].format(words="x" * 10_000)
    assert count_asked_clarifications(_history("q", huge, "a")) == 0
