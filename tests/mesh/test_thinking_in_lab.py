"""Deep thinking over two units in the namespace lab (`iplm serve` on each, the default model, one worker on
one thread each): a thinking answer's calls run on both units, and a peer lost mid-candidate leaves that
candidate to finish here; the answer still comes, every part of it."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from appliance.thinking.clarify_types import CLARIFY_BUDGET
from tests.mesh.chat_lab import A, B, chat, log

pytestmark = [pytest.mark.netns, pytest.mark.engine, pytest.mark.timeout(600)]

# Parts that run long (lists to write out), so that B is still writing its part when it dies.
QUESTIONS = [
    f"What are all the numbers from {start} to {start + 99}, written out in words, one per line?"
    for start in (1, 101, 201, 301)
]
PROMPT = "\n".join(f"{n}. {question}" for n, question in enumerate(QUESTIONS, 1))


def _unit_of(node: dict) -> str:
    # A candidate's detail names the unit that runs it: "12 words on iplm-1a2b".
    found = re.search(r" on (iplm-[0-9a-f]{4})", node.get("detail", ""))
    return found.group(1) if found else ""


def test_a_peer_lost_mid_candidate_leaves_the_candidate_to_finish_here(chat_units):
    messages = [{"role": "user", "content": PROMPT}]
    for _ in range(CLARIFY_BUDGET + 1):
        body = {"messages": messages, "max_tokens": 300, "temperature": 0, "reasoning_effort": "medium", "stream": True}
        reply = chat(chat_units["lab"], A, body)
        answer, question, graph, killed_on = "", None, None, ""
        for line in iter(reply.stdout.readline, ""):
            chunk = json.loads(line)
            thinking = chunk.get("iplm_thinking")
            if thinking is not None and not killed_on:
                for node in thinking["graph"]["nodes"]:
                    # A candidate running on B with some of its text written: B dies with no goodbye.
                    words = re.match(r"(\d+) words", node.get("detail", ""))
                    running = node["kind"] == "candidate" and node["state"] == "running" and _unit_of(node)
                    if running and words and int(words.group(1)) > 0:
                        os.killpg(chat_units["processes"][B].pid, signal.SIGKILL)
                        killed_on = node["id"]
                        break
            question = chunk.get("iplm_clarification", question)
            graph = chunk.get("iplm_reasoning_graph", graph)
            if chunk.get("choices"):
                answer += chunk["choices"][0]["delta"].get("content", "")
        reply.wait(timeout=300)
        if question is None:
            break
        # The small model asked back (within the budget): the person says the list is what they want.
        messages = [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": "Just the lists."}]
    assert question is None and killed_on, "no candidate ran on B"
    assert re.search(r"(continuing|running) a chat here", log(chat_units, A)), log(chat_units, A)[-3000:]
    assert graph is not None
    candidates = [node for node in graph["nodes"] if node["kind"] == "candidate"]
    assert len(candidates) == len(QUESTIONS) and all(node["state"] == "chosen" for node in candidates)
    assert answer.count("### ") == len(QUESTIONS) and "could not be answered" not in answer
    for question_text in QUESTIONS:
        assert f"### {question_text}" in answer
