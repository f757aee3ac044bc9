"""An intent model stored as JSON and read back; a broken or foreign row is no model, never a crash."""

import json

import pytest

from appliance.thinking.decode_intent_model import decode_intent_model
from appliance.thinking.encode_intent_model import encode_intent_model
from appliance.thinking.intent_types import IntentAnalysis
from appliance.thinking.merge_intent_analyses import merge_intent_analyses


def _model():
    return merge_intent_analyses(
        [
            IntentAnalysis(
                "plan a vegetarian dinner",
                constraints=("vegetarian",),
                terms=(("veggie", "vegetarian"),),
                entities=(("Oslo", "city"),),
                relations=(("dessert", "part of", "dinner"),),
                ambiguities=(("how many people", ("two", "four")),),
            ),
            IntentAnalysis("cook a dinner for friends"),
            IntentAnalysis("plan a dinner"),
        ]
    )


def test_a_model_comes_back_as_it_was_stored():
    model = _model()
    assert model is not None and decode_intent_model(encode_intent_model(model)) == model


def test_a_model_of_analyses_that_agree_on_nothing_comes_back_whole():
    # Each analysis gives as much as the schema allows, and no two agree: the merged lists are longest.
    analyses = [
        IntentAnalysis(
            f"goal{n}",
            constraints=tuple(f"constraint{n}x{i}" for i in range(6)),
            ambiguities=tuple((f"aspect{n}x{i}", tuple(f"reading{n}x{i}x{r}" for r in range(4))) for i in range(4)),
        )
        for n in range(3)
    ]
    model = merge_intent_analyses(analyses)
    assert model is not None and len(model.ambiguities) == 13 and len(model.constraints) == 18
    assert decode_intent_model(encode_intent_model(model)) == model


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format=99),
        lambda d: d.update(analyses=0),
        lambda d: d.update(analyses=True),
        lambda d: d["goal"].update(confidence=1.5),
        lambda d: d["goal"].update(confidence=float("nan")),
        lambda d: d["goal"].update(text=""),
        lambda d: d["goal"].update(text="x" * 1000),
        lambda d: d.update(constraints="vegetarian"),
        lambda d: d.update(constraints=[{"text": "a", "confidence": 0.5}] * 1000),
        lambda d: d["relations"][0].pop("target"),
        lambda d: d.pop("ambiguities"),
    ],
)
def test_a_row_that_is_not_what_encode_wrote_is_no_model(change):
    data = json.loads(encode_intent_model(_model()))
    change(data)
    assert decode_intent_model(json.dumps(data)) is None


@pytest.mark.parametrize("text", ["", "not json", "[]", "null", "{" * 100000])
def test_garbage_is_no_model(text):
    assert decode_intent_model(text) is None
