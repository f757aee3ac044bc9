"""The clarify decision: the rules first, the intent model's measured disagreement second, within a budget."""

from appliance.thinking.clarify_types import CLARIFY_BUDGET, Clarification
from appliance.thinking.decide_to_clarify import decide_to_clarify
from appliance.thinking.intent_types import IntentAnalysis
from appliance.thinking.merge_intent_analyses import merge_intent_analyses


def _intent(*analyses: IntentAnalysis):
    return merge_intent_analyses(list(analyses))


BUG_READINGS = (("bug", ("an insect in the house", "an error in a program")),)


def test_a_rule_asks_and_the_model_gives_the_choices():
    intent = _intent(
        IntentAnalysis("get rid of a bug", ambiguities=BUG_READINGS),
        IntentAnalysis("remove a bug", ambiguities=BUG_READINGS),
    )
    assert decide_to_clarify("How do I get rid of a bug?", intent) == Clarification(
        "senses", "Which \u201cbug\u201d do you mean?", ("an insect in the house", "an error in a program")
    )


def test_without_a_model_the_question_comes_with_free_text_only():
    asked = decide_to_clarify("Who is the president?", None)
    assert asked is not None and asked.category == "scope_time" and asked.choices == ()


def test_a_clear_prompt_with_analyses_that_agree_is_answered_at_once():
    intent = _intent(IntentAnalysis("the boiling point of water"), IntentAnalysis("boiling point of water"))
    assert decide_to_clarify("What is the boiling point of water at sea level in degrees Celsius?", intent) is None


def test_the_model_asks_alone_only_when_most_analyses_saw_the_same_open_aspect():
    seen = (("which season", ("summer", "winter")),)
    once = _intent(
        IntentAnalysis("a packing list", ambiguities=seen), IntentAnalysis("a packing list"), IntentAnalysis("a list")
    )
    assert decide_to_clarify("What should I pack for a week of hiking in the Alps?", once) is None
    twice = _intent(*[IntentAnalysis("a packing list", ambiguities=seen)] * 2, IntentAnalysis("a packing list"))
    asked = decide_to_clarify("What should I pack for a week of hiking in the Alps?", twice)
    assert asked == Clarification("aspect", "What do you mean by which season?", ("summer", "winter"))


def test_analyses_split_on_the_goal_ask_what_is_wanted():
    intent = _intent(
        IntentAnalysis("a history of the Roman empire"),
        IntentAnalysis("the fall of Rome as a film"),
    )
    asked = decide_to_clarify("Tell me about the fall of Rome as told in the films and the histories.", intent)
    assert asked is not None and asked.category == "goal"
    assert asked.choices == ("a history of the Roman empire", "the fall of Rome as a film")


def test_no_more_questions_than_the_budget():
    assert decide_to_clarify("How tall is he?", None, asked=CLARIFY_BUDGET - 1) is not None
    assert decide_to_clarify("How tall is he?", None, asked=CLARIFY_BUDGET) is None
