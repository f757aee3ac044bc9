"""The planner: the rules' pieces, and the model's plan kept only when it passes the checks."""

import json

from appliance.split.plan_pieces import PLAN_SCHEMA, plan_pieces
from appliance.split.route_prompt import route_prompt

SUBJECTS = "Describe each of these cities in two sentences: Lisbon, Oslo, Kyoto."
QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?"


def test_questions_are_asked_as_they_were_written():
    plan = plan_pieces(route_prompt(QUESTIONS), QUESTIONS)
    assert [(p.title, p.prompt) for p in plan.pieces] == [
        ("Why is the sea salty?", "Why is the sea salty?"),
        ("What causes thunder?", "What causes thunder?"),
    ]
    assert plan.planner == "rules" and plan.kind == "sections"


def test_each_subject_gets_the_instruction_for_itself_alone():
    plan = plan_pieces(route_prompt(SUBJECTS), SUBJECTS)
    assert [p.title for p in plan.pieces] == ["Lisbon", "Oslo", "Kyoto"]
    assert plan.pieces[1].prompt == "Describe the following cities in two sentences: Oslo"
    assert all("each" not in p.prompt.lower() for p in plan.pieces)


def test_map_reduce_pieces_carry_their_part_and_the_merge_asks_again():
    sentence = "the committee met and argued about the budget at length. "
    body = "\n\n".join(f"Part text {n}: {sentence * 5}" for n in range(9))
    text = "List the main points of this text:\n\n" + body
    route = route_prompt(text)
    plan = plan_pieces(route, text)
    assert plan.kind == "map_reduce" and len(plan.pieces) == len(route.parts)
    for piece, part in zip(plan.pieces, route.parts, strict=True):
        assert piece.prompt.startswith("List the main points of this text:") and piece.prompt.endswith(part)
    assert plan.reduce_prompt.startswith("List the main points of this text:")


def _model(reply):
    asked = []

    def ask(prompt, schema):
        asked.append((prompt, schema))
        return reply

    return ask, asked


def test_a_good_model_plan_is_used():
    reply = json.dumps(
        {
            "pieces": [
                {"title": "Salty sea", "prompt": "Why is the sea salty?"},
                {"title": "Thunder", "prompt": "What causes thunder in a storm?"},
            ]
        }
    )
    ask, asked = _model(reply)
    plan = plan_pieces(route_prompt(QUESTIONS), QUESTIONS, ask)
    assert plan.planner == "model"
    assert [p.title for p in plan.pieces] == ["Salty sea", "Thunder"]
    assert asked[0][1] is PLAN_SCHEMA and QUESTIONS in asked[0][0]


def test_bad_model_plans_fall_back_to_the_rules():
    off_topic = {
        "pieces": [{"title": "a", "prompt": "Tell me a joke"}, {"title": "b", "prompt": "What causes thunder?"}]
    }
    for reply in (
        "",
        "not json",
        "[]",
        json.dumps({"pieces": "two"}),
        json.dumps({"pieces": [{"title": "one", "prompt": "Why is the sea salty?"}]}),  # one piece lost
        json.dumps(off_topic),  # a piece that lost its subject
        json.dumps({"pieces": [{"title": 1, "prompt": "x"}, {"title": "b", "prompt": ""}]}),
    ):
        ask, _ = _model(reply)
        plan = plan_pieces(route_prompt(QUESTIONS), QUESTIONS, ask)
        assert plan.planner.startswith("rules"), reply
        assert [p.prompt for p in plan.pieces] == ["Why is the sea salty?", "What causes thunder?"]


def test_a_failing_model_leaves_the_rules_cut():
    def broken(prompt, schema):
        raise RuntimeError("the engine fell over")

    plan = plan_pieces(route_prompt(QUESTIONS), QUESTIONS, broken)
    assert plan.planner.startswith("rules") and len(plan.pieces) == 2
