"""The clarify decision: the rules first, the intent model's measured disagreement second, within a budget."""

from appliance.thinking.clarify_types import CLARIFY_BUDGET, Clarification
from appliance.thinking.decide_to_clarify import decide_to_clarify
from appliance.thinking.intent_types import IntentAnalysis
from appliance.thinking.merge_intent_analyses import merge_intent_analyses


def _intent(*analyses: IntentAnalysis):
    return merge_intent_analyses(list(analyses))


BUG_READINGS = (("bug", ("an insect in the house", "an error in a program")),)


def test_a_word_of_several_senses_offers_the_senses_the_rules_know():
    intent = _intent(
        IntentAnalysis("get rid of a bug", ambiguities=BUG_READINGS),
        IntentAnalysis("remove a bug", ambiguities=BUG_READINGS),
    )
    expected = Clarification("senses", "Which \u201cbug\u201d do you mean?", ("an insect", "an error in software"))
    assert decide_to_clarify("How do I get rid of a bug?", intent) == expected
    assert decide_to_clarify("How do I get rid of a bug?", None) == expected


def test_a_rule_asks_and_the_model_gives_the_choices_that_make_sense():
    readings = (("he", ("Barack Obama", "Michael Jordan", "he", "1.85", "")),)
    intent = _intent(IntentAnalysis("a height", ambiguities=readings), IntentAnalysis("a height", ambiguities=readings))
    asked = decide_to_clarify("How tall is he?", intent)
    # The aspect again, a number and nothing are no reading a person would tap.
    assert asked == Clarification(
        "referent", "Who or what do you mean by \u201che\u201d?", ("Barack Obama", "Michael Jordan")
    )
    junk = (("he", ("185", "he", "how tall is he")),)
    only_junk = _intent(IntentAnalysis("a height", ambiguities=junk), IntentAnalysis("a height", ambiguities=junk))
    asked = decide_to_clarify("How tall is he?", only_junk)
    assert asked is not None and asked.choices == ()  # free text only


def test_without_a_model_the_question_comes_with_free_text_only():
    asked = decide_to_clarify("Who is the president?", None)
    assert asked is not None and asked.category == "scope_time" and asked.choices == ()


def test_a_clear_prompt_with_analyses_that_agree_is_answered_at_once():
    intent = _intent(IntentAnalysis("the boiling point of water"), IntentAnalysis("boiling point of water"))
    assert decide_to_clarify("What is the boiling point of water at sea level in degrees Celsius?", intent) is None


def test_the_model_asks_alone_only_when_most_analyses_saw_the_same_open_aspect():
    seen = (("which week", ("a week in summer", "a week in winter")),)
    once = _intent(
        IntentAnalysis("a packing list", ambiguities=seen), IntentAnalysis("a packing list"), IntentAnalysis("a list")
    )
    assert decide_to_clarify("What should I pack for a week of hiking in the Alps?", once) is None
    twice = _intent(*[IntentAnalysis("a packing list", ambiguities=seen)] * 2, IntentAnalysis("a packing list"))
    asked = decide_to_clarify("What should I pack for a week of hiking in the Alps?", twice)
    assert asked == Clarification("aspect", "What do you mean by which week?", ("a week in summer", "a week in winter"))


def test_the_model_alone_asks_only_about_the_prompts_own_words():
    # A small model often flags something it brought in itself (its instructions' words, another subject).
    elsewhere = (("one phrase", ("one sentence", "one word")),)
    intent = _intent(*[IntentAnalysis("a packing list", ambiguities=elsewhere)] * 3)
    assert decide_to_clarify("What should I pack for a week of hiking in the Alps?", intent) is None


def test_analyses_split_on_the_goal_ask_what_is_wanted():
    prompt = "Tell me about the fall of Rome as told in the films and the histories."
    intent = _intent(IntentAnalysis("what the histories say"), IntentAnalysis("what the films show"))
    asked = decide_to_clarify(prompt, intent)
    assert asked is not None and asked.category == "goal"
    assert asked.choices == ("what the histories say", "what the films show")
    # Goals from nowhere (a small model's) disagree with everything: no question about them.
    stray = _intent(IntentAnalysis("Lemuria"), IntentAnalysis("Gamma"), IntentAnalysis("the films"))
    assert decide_to_clarify(prompt, stray) is None


def test_no_more_questions_than_the_budget():
    assert decide_to_clarify("How tall is he?", None, asked=CLARIFY_BUDGET - 1) is not None
    assert decide_to_clarify("How tall is he?", None, asked=CLARIFY_BUDGET) is None
