"""Split answers over two units in the namespace lab (`iplm serve` on each, the default model, one worker on
one thread each): the pieces of one prompt run on both units and the answer holds every piece exactly once;
a peer killed mid-piece leaves that piece to finish here; a phone that leaves stops the pieces on the peer."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from tests.mesh.chat_lab import A, B, chat, log, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.engine, pytest.mark.timeout(600)]

QUESTIONS = [
    "What are the numbers from one to thirty, written out in words?",
    "Which colours are in a rainbow, in order?",
    "What are the days of the week, in order?",
    "What are the months of the year, in order?",
]
PROMPT = "\n".join(f"{n}. {question}" for n, question in enumerate(QUESTIONS, 1))


def _body(**extra) -> dict:
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 400, "temperature": 0, **extra}


def _stitched_once(answer: str, texts: list[str]) -> None:
    # Every piece's heading once, in order, each followed by that piece's own whole reply.
    positions = [answer.index(f"### {question}\n\n") for question in QUESTIONS]
    assert positions == sorted(positions)
    for question, text in zip(QUESTIONS, texts, strict=True):
        assert answer.count(f"### {question}") == 1
        assert text.strip() and answer.count(f"### {question}\n\n{text.strip()}") == 1


def test_the_pieces_of_one_prompt_run_on_both_units_each_once(chat_units):
    reply = chat(chat_units["lab"], A, _body())
    out, _ = reply.communicate(timeout=300)
    answer = json.loads(out)
    pieces = answer["iplm_pieces"]
    assert [piece["title"] for piece in pieces] == QUESTIONS
    _stitched_once(answer["choices"][0]["message"]["content"], [piece["text"] for piece in pieces])
    where = {piece["unit"] for piece in pieces}
    assert "" in where and any(re.fullmatch(r"iplm-[0-9a-f]{4}", unit) for unit in where), pieces
    assert re.search(r"a prompt split in 4 pieces \(sections", log(chat_units, A))


def test_a_peer_killed_mid_piece_leaves_the_piece_to_finish_here(chat_units):
    reply = chat(chat_units["lab"], A, _body(stream=True))
    texts, where = ["", "", "", ""], ["", "", "", ""]
    answer, killed = "", False
    for line in iter(reply.stdout.readline, ""):
        chunk = json.loads(line)
        piece = chunk.get("iplm_piece")
        if piece is not None:
            index = piece["index"]
            if piece.get("finish_reason") == "restarted":
                texts[index] = ""
            texts[index] += piece["text"]
            where[index] = piece.get("unit", where[index])  # named on the piece's first event
            # B answers a piece: as soon as the first of its text is here, B dies with no goodbye.
            if not killed and piece["text"] and where[index] and not piece.get("finish_reason"):
                os.killpg(chat_units["processes"][B].pid, signal.SIGKILL)
                killed = True
        elif chunk.get("choices"):
            answer += chunk["choices"][0]["delta"].get("content", "")
    reply.wait(timeout=300)
    assert killed, "no piece ran on B"
    assert re.search(r"(continuing|running) a chat here", log(chat_units, A)), log(chat_units, A)[-3000:]
    _stitched_once(answer, texts)
    assert "could not be answered" not in answer


# Pieces that run to their share of max_tokens (225 tokens each, several seconds on one core): the phone's
# leaving reaches B before its piece could end by itself.
LONG_QUESTIONS = [
    f"What are all the numbers from {start} to {start + 199}, written out in words, one per line?"
    for start in (1, 201, 401, 601)
]


def test_a_phone_that_leaves_stops_the_pieces_on_the_peer(chat_units):
    prompt = "\n".join(f"{n}. {question}" for n, question in enumerate(LONG_QUESTIONS, 1))
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 900, "temperature": 0, "stream": True}
    reply = chat(chat_units["lab"], A, body)
    # The phone goes away as soon as B has begun a piece (its first text here), not after a fixed time.
    where: dict[int, str] = {}
    for line in iter(reply.stdout.readline, ""):
        piece = json.loads(line).get("iplm_piece")
        if piece is None:
            continue
        where[piece["index"]] = piece.get("unit") or where.get(piece["index"], "")  # named on its first event
        if piece["text"] and where[piece["index"]]:
            break
    else:
        pytest.fail("no piece ran on B")
    os.killpg(reply.pid, signal.SIGKILL)
    reply.wait(timeout=60)
    ended = wait_for(
        lambda: re.search(r"chat [0-9a-f]{16} for \w+ ended: (\w+)", log(chat_units, B)), 60, "B ending a piece"
    )
    assert ended.group(1) == "cancelled", log(chat_units, B)[-3000:] + log(chat_units, A)[-3000:]
