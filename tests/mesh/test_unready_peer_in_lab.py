"""A peer that does not serve the chat's model ready is never chosen (namespace lab, two `iplm serve`):
neither for a whole chat while this unit is busy, nor as a place for a prompt's pieces. B serves another
model here, as a unit does while the chat's model is still installing on it (its presence names the
model it serves; it serves none of the one asked)."""

from __future__ import annotations

import json
import os
import re

import pytest

from appliance.engine.locate_default_model import locate_default_model
from tests.mesh.chat_lab import A, chat, hold_a_busy, log, start_chat_units

pytestmark = [pytest.mark.netns, pytest.mark.engine, pytest.mark.timeout(600)]

QUESTIONS = "1. Why is the sea salty?\n2. What causes thunder?\n3. How do magnets work?"


@pytest.fixture
def units(tmp_path):
    other = tmp_path / "another-model.gguf"  # the same weights under another model's name
    os.symlink(locate_default_model(), other)
    with start_chat_units(tmp_path, "--model", str(other)) as started:
        yield started


def test_a_peer_without_the_model_is_never_chosen(units):
    busy = hold_a_busy(units, max_tokens=600)
    # A is busy and B idle, but B cannot run this model: the chat waits for A.
    out, _ = chat(
        units["lab"], A, {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
    ).communicate(timeout=300)
    answer = json.loads(out)
    assert answer["iplm_unit"] == "" and answer["choices"][0]["message"]["content"].strip()
    # Nor is B counted as a place for pieces: with A's one worker alone in reach, the questions run whole.
    out, _ = chat(
        units["lab"], A, {"messages": [{"role": "user", "content": QUESTIONS}], "max_tokens": 48}
    ).communicate(timeout=300)
    answer = json.loads(out)
    assert "iplm_pieces" not in answer and answer["iplm_unit"] == ""
    assert not re.search(r"chat [0-9a-f]{16} sent to", log(units, A)), log(units, A)[-3000:]
    assert not re.search(r"running chat", log(units, 1))
    busy.communicate(timeout=300)
