"""Whole chats spread over two units in the namespace lab (`iplm serve` on each, the default model, one
worker on one thread each): a busy unit sends chats to the idle one; a peer killed mid-reply leaves a
reply that goes on here, nothing lost and nothing twice; a client that leaves stops the work on the peer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from tests.mesh.chat_lab import LONG, A, B, chat, hold_a_busy, log, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.engine, pytest.mark.timeout(600)]


def _deltas(process: subprocess.Popen) -> list[str]:
    out, _ = process.communicate(timeout=300)
    chunks = [json.loads(line) for line in out.splitlines() if line]
    return [c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices")]


def test_a_busy_unit_sends_the_chat_to_the_idle_one(chat_units):
    busy = hold_a_busy(chat_units)
    reply = chat(chat_units["lab"], A, {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 24})
    out, _ = reply.communicate(timeout=300)
    answer = json.loads(out)
    assert answer["choices"][0]["message"]["content"].strip()
    assert re.fullmatch(r"iplm-[0-9a-f]{4}", answer["iplm_unit"])  # the client is told which unit answered
    sent = re.search(rf"chat [0-9a-f]{{16}} sent to {chat_units['b_node']}", log(chat_units, A))
    assert sent, log(chat_units, A)[-3000:]
    assert re.search(rf"chat [0-9a-f]{{16}} for {chat_units['a_node']} ended: (stop|length)", log(chat_units, B))
    busy.communicate(timeout=300)


def test_a_peer_killed_mid_reply_leaves_the_reply_to_go_on_here(chat_units):
    busy = hold_a_busy(chat_units)
    body = {"messages": [{"role": "user", "content": "Count from one to forty in words."}], "max_tokens": 300,
            "temperature": 0, "seed": 3, "stream": True}  # fmt: skip
    reply = chat(chat_units["lab"], A, body)
    # B runs it; as soon as the client has the first of it, B dies (no goodbye: its broker and agent go too).
    lines = iter(reply.stdout.readline, "")
    first = next(line for line in lines if _content(json.loads(line)))
    assert re.search(r"running chat [0-9a-f]{16} for", log(chat_units, B))
    os.killpg(chat_units["processes"][B].pid, signal.SIGKILL)
    rest = [_content(json.loads(line)) for line in lines if line.strip()]
    reply.wait(timeout=300)
    busy.communicate(timeout=300)
    whole = _content(json.loads(first)) + "".join(rest)
    assert re.search(r"continuing a chat here: the peer is gone", log(chat_units, A)), log(chat_units, A)[-3000:]
    # The same model, greedy, alone on A now: the reply it gives whole is the one the client got in two parts.
    again = chat(chat_units["lab"], A, {**body, "stream": False})
    out, _ = again.communicate(timeout=300)
    assert whole == json.loads(out)["choices"][0]["message"]["content"]
    assert json.loads(out)["iplm_unit"] == ""  # this unit answered


def _content(chunk: dict) -> str:
    return chunk["choices"][0]["delta"].get("content", "") if chunk.get("choices") else ""


def test_a_client_that_leaves_stops_the_work_on_the_peer(chat_units):
    busy = hold_a_busy(chat_units)
    body = {"messages": [{"role": "user", "content": LONG}], "max_tokens": 900, "stream": True,
            "leave_after": 2}  # fmt: skip
    reply = chat(chat_units["lab"], A, body)
    reply.communicate(timeout=300)
    ended = wait_for(
        lambda: re.search(r"chat [0-9a-f]{16} for \w+ ended: (\w+)", log(chat_units, B)), 60, "B ending the chat"
    )
    assert ended.group(1) == "cancelled", log(chat_units, B)[-3000:] + log(chat_units, A)[-3000:]
    busy.communicate(timeout=300)
