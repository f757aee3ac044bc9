"""The query intent model: one analysis read from the model's JSON, several merged by measured agreement."""

import json

import pytest

from appliance.thinking.intent_types import MAX_ITEMS, MAX_TEXT, IntentAnalysis, Weighted
from appliance.thinking.merge_intent_analyses import merge_intent_analyses
from appliance.thinking.read_intent_analysis import read_intent_analysis


def _reply(**fields) -> str:
    base = {
        "goal": "find out how tall a person is",
        "constraints": [],
        "needs": [],
        "components": [],
        "terms": [],
        "entities": [],
        "relations": [],
        "ambiguities": [],
    }
    return json.dumps({**base, **fields})


def test_a_whole_analysis_is_read_with_every_field_trimmed():
    analysis = read_intent_analysis(
        _reply(
            goal="  plan   a dinner ",
            constraints=["vegetarian", "under an hour", "vegetarian"],
            needs=["recipes"],
            components=["main course", "dessert"],
            terms=[{"term": "veggie", "concept": "vegetarian diet"}],
            entities=[{"name": "Oslo", "type": "city"}],
            relations=[{"source": "dessert", "relation": "part of", "target": "dinner"}],
            ambiguities=[{"aspect": "how many people", "readings": ["two", "four"]}],
        )
    )
    assert analysis == IntentAnalysis(
        goal="plan a dinner",
        constraints=("vegetarian", "under an hour"),  # a repeat counts once
        needs=("recipes",),
        components=("main course", "dessert"),
        terms=(("veggie", "vegetarian diet"),),
        entities=(("Oslo", "city"),),
        relations=(("dessert", "part of", "dinner"),),
        ambiguities=(("how many people", ("two", "four")),),
    )


@pytest.mark.parametrize(
    "reply",
    ["", "not json", "[]", "null", '"a goal"', "{}", '{"goal": ""}', '{"goal": 7}', "{" * 100000],
)
def test_output_that_is_no_analysis_is_none_not_a_crash(reply):
    assert read_intent_analysis(reply) is None


def test_malformed_fields_are_dropped_one_by_one_and_everything_is_bounded():
    analysis = read_intent_analysis(
        json.dumps(
            {
                "goal": "x" * 1000,
                "constraints": "not a list",
                "needs": [1, None, "ok", {"a": 1}],
                "components": [f"part {i}" for i in range(50)],
                "terms": [{"term": "a"}, "b", {"term": "c", "concept": "d"}],
                "entities": [{"name": "", "type": "city"}],
                "relations": None,
                "ambiguities": [{"aspect": "who", "readings": ["only one"]}, {"aspect": "", "readings": ["a", "b"]}],
            }
        )
    )
    assert analysis is not None and len(analysis.goal) == MAX_TEXT
    assert analysis.constraints == () and analysis.needs == ("ok",)
    assert len(analysis.components) == MAX_ITEMS
    assert analysis.terms == (("c", "d"),) and analysis.entities == () and analysis.relations == ()
    assert analysis.ambiguities == ()  # one reading, or no aspect: no ambiguity


def _analysis(goal="plan a vegetarian dinner", **fields) -> IntentAnalysis:
    return IntentAnalysis(goal=goal, **fields)


def test_confidence_is_the_share_of_analyses_that_agree_whatever_the_wording():
    model = merge_intent_analyses(
        [
            _analysis(constraints=("vegetarian", "cooked in under an hour")),
            _analysis(goal="Plan a vegetarian dinner.", constraints=("under one hour of cooking",)),
            _analysis(goal="plan the vegetarian dinner", constraints=("Vegetarian",)),
            _analysis(goal="plan a vegetarian dinner", constraints=("for four people",)),
        ]
    )
    assert model is not None and model.analyses == 4
    assert model.goal == Weighted("plan a vegetarian dinner", 1.0)
    assert [(c.text, c.confidence) for c in model.constraints] == [
        ("vegetarian", 0.5),
        ("cooked in under an hour", 0.5),
        ("for four people", 0.25),
    ]
    assert model.ambiguities == ()  # every analysis read the same goal and none saw an open question


def test_analyses_that_disagree_on_the_goal_make_it_an_ambiguity():
    model = merge_intent_analyses(
        [
            _analysis(goal="get rid of insects in the house"),
            _analysis(goal="remove insects from a house"),
            _analysis(goal="fix an error in a computer program"),
        ]
    )
    assert model is not None
    assert model.goal.text == "get rid of insects in the house" and model.goal.confidence == pytest.approx(2 / 3)
    (goal,) = model.ambiguities
    assert goal.aspect == "goal" and goal.confidence == pytest.approx(1 / 3)
    assert [r.text for r in goal.readings] == ["get rid of insects in the house", "fix an error in a computer program"]


def test_ambiguities_the_analyses_saw_are_merged_with_each_readings_share():
    model = merge_intent_analyses(
        [
            _analysis(ambiguities=(("number of people", ("two", "four")),)),
            _analysis(ambiguities=(("how many people", ("four", "six")),)),
            _analysis(),
        ]
    )
    assert model is not None
    (people,) = model.ambiguities
    assert people.aspect == "number of people" and people.confidence == pytest.approx(2 / 3)
    assert [(r.text, r.confidence) for r in people.readings] == [("four", 1.0), ("two", 0.5), ("six", 0.5)]


def test_terms_entities_and_relations_take_the_value_most_analyses_gave():
    model = merge_intent_analyses(
        [
            _analysis(
                terms=(("bug", "insect"),),
                entities=(("Oslo", "city"),),
                relations=(("dessert", "part of", "dinner"),),
            ),
            _analysis(terms=(("bug", "software error"),), entities=(("oslo", "city"),)),
            _analysis(terms=(("bug", "insect"),), entities=(("Oslo", "capital"),)),
        ]
    )
    assert model is not None
    (term,) = model.terms
    assert (term.term, term.concept, term.confidence) == ("bug", "insect", pytest.approx(2 / 3))
    (entity,) = model.entities
    assert (entity.name, entity.kind, entity.confidence) == ("Oslo", "city", pytest.approx(2 / 3))
    (relation,) = model.relations
    assert (relation.source, relation.relation, relation.target) == ("dessert", "part of", "dinner")
    assert relation.confidence == pytest.approx(1 / 3)


def test_no_analyses_no_model():
    assert merge_intent_analyses([]) is None


def test_the_schema_passes_the_units_own_bounds_and_becomes_a_grammar():
    from llama_cpp import llama_grammar

    from appliance.portal.check_response_schema import check_response_schema
    from appliance.thinking.intent_types import INTENT_SCHEMA

    check_response_schema(INTENT_SCHEMA, "intent")  # raises for a schema a phone could not send either
    assert "goal" in llama_grammar.json_schema_to_gbnf(json.dumps(INTENT_SCHEMA))
