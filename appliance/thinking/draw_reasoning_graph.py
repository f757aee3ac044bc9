"""The reasoning graph of a thinking answer, as JSON for the chat to draw and the API to return (pure).

Nodes: the goal; the aspects that were unclear or settled; the parts (components) of the prompt; the
candidate answers; each candidate's check; the answer. Edges run goal -> aspect/part -> candidate ->
check -> answer. A node's state: "pending", "running", "done", "failed", "chosen" or "rejected".
"""

from __future__ import annotations

from appliance.thinking.check_grounded import check_grounded
from appliance.thinking.thinking_types import Candidate, Thinking

_LABEL = 80  # a node's label: a phrase; its detail holds the rest


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _LABEL else text[: _LABEL - 1].rstrip() + "\u2026"


def _node(nodes: list[dict], node_id: str, kind: str, label: str, state: str, detail: str = "") -> str:
    nodes.append({"id": node_id, "kind": kind, "label": _short(label), "state": state, "detail": detail[:400]})
    return node_id


def _goal(thinking: Thinking, nodes: list[dict]) -> str:
    analysing = thinking.phase == "analysing"
    if thinking.intent is None:
        detail = "" if analysing else "the analyses gave nothing usable: the question as asked"
        return _node(nodes, "goal", "goal", thinking.question, "running" if analysing else "done", detail)
    goal = thinking.intent.goal
    agree = f"{round(goal.confidence * thinking.intent.analyses)} of {thinking.intent.analyses} analyses"
    if check_grounded(goal.text, thinking.question):
        return _node(nodes, "goal", "goal", goal.text, "done", f"{agree} agree")
    # A goal that is not about the question's words (a small model's) is shown for what it is, not as the goal.
    return _node(nodes, "goal", "goal", thinking.question, "done", f"the analyses' goal, {goal.text!r}, from {agree}")


def _candidate_state(thinking: Thinking, index: int, candidate: Candidate) -> str:
    if thinking.phase == "done" and candidate.phase == "done":
        return "chosen" if index in thinking.chosen else "rejected"
    return {"waiting": "pending", "running": "running", "done": "done", "failed": "failed"}[candidate.phase]


def draw_reasoning_graph(thinking: Thinking) -> dict:
    """{"nodes": [{id, kind, label, state, detail}], "edges": [{from, to}]} of `thinking` as it stands."""
    nodes: list[dict] = []
    edges: list[dict] = []
    goal = _goal(thinking, nodes)
    for index, answer in enumerate(thinking.answers):
        edges.append({"from": goal, "to": _node(nodes, f"said{index}", "aspect", f"You said: {answer}", "done")})
    if thinking.intent is not None:
        for index, ambiguity in enumerate(thinking.intent.ambiguities[:3]):
            readings = ", ".join(reading.text for reading in ambiguity.readings[:4])
            detail = f"seen by {round(ambiguity.confidence * 100)} % of the analyses; readings: {readings}"
            edges.append(
                {"from": goal, "to": _node(nodes, f"aspect{index}", "aspect", ambiguity.aspect, "done", detail)}
            )
    if thinking.clarification is not None:
        choices = "; ".join(thinking.clarification.choices)
        asked = _node(nodes, "ask", "aspect", thinking.clarification.question, "running", choices)
        edges.append({"from": goal, "to": asked})
    parents: list[str] = []
    if thinking.mode == "merge":
        for index, candidate in enumerate(thinking.candidates):
            part = _node(nodes, f"part{index}", "component", candidate.title, "done")
            edges.append({"from": goal, "to": part})
            parents.append(part)
    ends = []
    for index, candidate in enumerate(thinking.candidates):
        where = f" on {candidate.unit}" if candidate.unit else ""
        words = len(candidate.text.split())
        node = _node(
            nodes,
            f"candidate{index}",
            "candidate",
            candidate.title if thinking.mode == "choose" else f"Answer to part {index + 1}",
            _candidate_state(thinking, index, candidate),
            f"{words} words{where}" + (f", {candidate.finish_reason}" if candidate.finish_reason else ""),
        )
        edges.append({"from": parents[index] if parents else goal, "to": node})
        if candidate.score is not None:
            check_state = "done" if candidate.score >= 0.5 else "failed"
            label = f"score {candidate.score:.2f}"
            check = _node(nodes, f"check{index}", "check", label, check_state, "; ".join(candidate.notes))
            edges.append({"from": node, "to": check})
            if index in thinking.chosen:
                ends.append(check)
    if thinking.phase == "done" and thinking.candidates:
        if not thinking.chosen:
            label, state = "No candidate came back", "failed"
        elif thinking.mode == "merge":
            label, state = "Merged the parts", "chosen"
        else:
            label, state = f"Chose candidate {thinking.chosen[0] + 1}", "chosen"
        answer = _node(nodes, "answer", "answer", label, state)
        edges.extend({"from": end, "to": answer} for end in ends)
    return {"nodes": nodes, "edges": edges}
