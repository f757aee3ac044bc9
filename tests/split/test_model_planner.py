"""The model planner with the real default model: its reply is JSON of the plan's schema (the engine's
grammar holds it there), and whatever the small model writes, the plan has one piece per question."""

import json

import pytest

from appliance.engine.locate_default_model import locate_default_model
from appliance.split.ask_model_for_json import ask_model_for_json
from appliance.split.plan_pieces import PLAN_SCHEMA, plan_pieces
from appliance.split.route_prompt import route_prompt

pytestmark = pytest.mark.engine
QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?\n3. How do magnets work?"


@pytest.fixture(scope="module")
def engine():
    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine

    opened = open_llama_cpp_engine(str(locate_default_model()), model_id="t", n_ctx=1024, n_threads=2)
    yield opened
    opened.close()


def test_the_model_answers_the_planner_in_the_plans_schema(engine):
    reply = json.loads(ask_model_for_json(engine, f"Cut into separate requests:\n{QUESTIONS}", PLAN_SCHEMA))
    assert isinstance(reply["pieces"], list) and 2 <= len(reply["pieces"]) <= 6
    assert all(isinstance(p["title"], str) and isinstance(p["prompt"], str) for p in reply["pieces"])


def test_the_plan_has_a_piece_for_each_question_whoever_cut_it(engine):
    plan = plan_pieces(
        route_prompt(QUESTIONS), QUESTIONS, lambda text, schema: ask_model_for_json(engine, text, schema)
    )
    assert len(plan.pieces) == 3 and plan.planner in ("model", "rules (the model's plan failed its checks)")
    if plan.planner == "model":
        for piece, word in zip(plan.pieces, ("salty", "thunder", "magnets"), strict=True):
            assert word in piece.prompt.lower()
