import assert from "node:assert/strict";
import test from "node:test";

import {
  KINDS,
  MAX_EDGES,
  MAX_LABEL,
  MAX_NODES,
  createClarifyChoices,
  createGraphSvg,
  describeGraph,
  describeStep,
  fitLabel,
  layoutGraph,
  pendingClarify,
  readClarify,
  readGraph,
  readThinking,
  renderProgress,
  renderThinking,
  startThinking,
  updateThinking,
} from "../src/thinking.js";
import { buildMessagePayload } from "../src/settings.js";

// ---------- a tiny DOM: enough to build the graph, with no innerHTML at all ----------

class FakeNode {
  constructor(tag, ns = null) {
    this.tagName = tag;
    this.namespaceURI = ns;
    this.attributes = {};
    this.children = [];
    this.parent = null;
    this.dataset = {};
    this.ownText = "";
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  getAttribute(name) {
    return this.attributes[name] ?? null;
  }
  set className(value) {
    this.attributes.class = value;
  }
  get className() {
    return this.attributes.class ?? "";
  }
  set textContent(value) {
    this.children = [];
    this.ownText = String(value);
  }
  get textContent() {
    return this.ownText + this.children.map((child) => child.textContent).join("");
  }
  set innerHTML(_value) {
    throw new Error("innerHTML used");
  }
  append(...nodes) {
    for (const node of nodes) {
      node.parent = this;
      this.children.push(node);
    }
  }
  replaceChildren(...nodes) {
    this.children = [];
    this.ownText = "";
    this.append(...nodes);
  }
  remove() {
    if (this.parent) this.parent.children = this.parent.children.filter((child) => child !== this);
    this.parent = null;
  }
  replaceWith(node) {
    const siblings = this.parent.children;
    siblings[siblings.indexOf(this)] = node;
    node.parent = this.parent;
    this.parent = null;
  }
  matches(selector) {
    if (selector.startsWith(".")) return this.className.split(" ").includes(selector.slice(1));
    return this.tagName === selector;
  }
  querySelectorAll(selector) {
    return this.children.flatMap((child) => [...(child.matches(selector) ? [child] : []), ...child.querySelectorAll(selector)]);
  }
  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }
}

const fakeDocument = {
  createElement: (tag) => new FakeNode(tag),
  createElementNS: (ns, tag) => new FakeNode(tag, ns),
};

// ---------- fixtures ----------

function sampleGraph(count) {
  const nodes = [];
  const edges = [];
  for (let i = 0; i < count; i += 1) {
    const kind = i === 0 ? "goal" : i === count - 1 && count > 1 ? "answer" : KINDS[1 + (i % 4)];
    nodes.push({ id: `n${i}`, kind, label: `Node ${i} `.repeat(1 + (i % 7)), state: "done" });
    if (i > 0) edges.push({ from: "n0", to: `n${i}` });
  }
  return { nodes, edges };
}

// ---------- readGraph ----------

test("readGraph keeps a good graph as it is", () => {
  const raw = {
    nodes: [
      { id: "g", kind: "goal", label: "Plan a trip", state: "done", detail: "two readings" },
      { id: "c1", kind: "candidate", label: "By train", state: "chosen" },
    ],
    edges: [{ from: "g", to: "c1" }],
  };
  assert.deepEqual(readGraph(raw), raw);
});

test("readGraph turns what is not a graph into null", () => {
  for (const raw of [null, undefined, 0, "graph", [], {}, { nodes: "x" }, { nodes: [] }, { nodes: [{ id: "a", kind: "bogus" }] }]) {
    assert.equal(readGraph(raw), null, JSON.stringify(raw));
  }
});

test("readGraph drops bad nodes, cleans labels and states", () => {
  const graph = readGraph({
    nodes: [
      null,
      "node",
      { id: "", kind: "goal" },
      { id: {}, kind: "goal" },
      { id: "a", kind: "Goal" },
      { id: "b", kind: "goal", label: { toString: () => "<b>x</b>" }, state: "exploded" },
      { id: 7, kind: "check", label: 42 },
      { id: "c", kind: "aspect", label: "  many\n\n  spaces\there ", detail: 5 },
      { id: "d", kind: "answer", label: "x".repeat(5000) },
    ],
  });
  assert.deepEqual(
    graph.nodes.map((node) => [node.id, node.kind, node.label, node.state]),
    [
      ["b", "goal", "", "pending"],
      ["7", "check", "", "pending"],
      ["c", "aspect", "many spaces here", "pending"],
      ["d", "answer", "x".repeat(MAX_LABEL), "pending"],
    ],
  );
  assert.equal("detail" in graph.nodes[2], false);
  assert.deepEqual(graph.edges, []);
});

test("readGraph keeps the first of duplicate ids", () => {
  const graph = readGraph({
    nodes: [
      { id: "a", kind: "goal", label: "first" },
      { id: "a", kind: "answer", label: "second" },
    ],
  });
  assert.deepEqual(graph.nodes.map((node) => node.label), ["first"]);
});

test("readGraph drops edges to missing ids, self loops and repeats", () => {
  const graph = readGraph({
    nodes: [
      { id: "a", kind: "goal" },
      { id: "b", kind: "candidate" },
    ],
    edges: [
      { from: "a", to: "b" },
      { from: "a", to: "b" },
      { from: "a", to: "a" },
      { from: "a", to: "zzz" },
      { from: "__proto__", to: "b" },
      { from: ["a"], to: "b" },
      null,
      "a->b",
    ],
  });
  assert.deepEqual(graph.edges, [{ from: "a", to: "b" }]);
  assert.deepEqual(readGraph({ nodes: [{ id: "a", kind: "goal" }], edges: "all" }).edges, []);
});

test("readGraph caps huge inputs", () => {
  const nodes = Array.from({ length: 100000 }, (_, i) => ({ id: `n${i}`, kind: "candidate", label: "x" }));
  const edges = Array.from({ length: 100000 }, (_, i) => ({ from: `n${i % 40}`, to: `n${(i * 7 + 1) % 40}` }));
  const started = Date.now();
  const graph = readGraph({ nodes, edges });
  assert.ok(Date.now() - started < 500);
  assert.equal(graph.nodes.length, MAX_NODES);
  assert.ok(graph.edges.length <= MAX_EDGES);
  assert.ok(graph.edges.every((edge) => edge.from !== edge.to));
});

// ---------- layoutGraph ----------

test("layoutGraph keeps every box inside the width, for 1 to 40 nodes", () => {
  for (const width of [320, 200, 600]) {
    for (let count = 1; count <= 40; count += 1) {
      const layout = layoutGraph(readGraph(sampleGraph(count)), { width });
      assert.equal(layout.nodes.length, count);
      for (const node of layout.nodes) {
        assert.ok(node.x >= 0 && node.x + node.w <= width + 1e-9, `${count} nodes, ${width}: ${node.x}+${node.w}`);
        assert.ok(node.y >= 0 && node.y + node.h <= layout.height + 1e-9);
        assert.ok(node.lines.length >= 1 && node.lines.length <= 2);
      }
      for (const edge of layout.edges) {
        for (const x of [edge.x1, edge.x2]) assert.ok(x >= 0 && x <= width);
      }
    }
  }
});

test("layoutGraph stacks layers goal → aspects/components → candidates → checks → answer", () => {
  const graph = readGraph({
    nodes: [
      { id: "ans", kind: "answer" },
      { id: "chk", kind: "check" },
      { id: "cand", kind: "candidate" },
      { id: "comp", kind: "component" },
      { id: "asp", kind: "aspect" },
      { id: "goal", kind: "goal" },
    ],
  });
  const layout = layoutGraph(graph);
  const top = Object.fromEntries(layout.nodes.map((node) => [node.id, node.y]));
  assert.ok(top.goal < top.asp);
  assert.equal(top.asp, top.comp);
  assert.ok(top.comp < top.cand && top.cand < top.chk && top.chk < top.ans);
  // Aspects before components in their shared layer.
  const asp = layout.nodes.find((node) => node.id === "asp");
  const comp = layout.nodes.find((node) => node.id === "comp");
  assert.ok(asp.x < comp.x);
});

test("layoutGraph wraps a crowded layer into rows, without overlaps", () => {
  const nodes = Array.from({ length: 10 }, (_, i) => ({ id: `c${i}`, kind: "candidate", label: `Candidate ${i}` }));
  const layout = layoutGraph(readGraph({ nodes }), { width: 320 });
  const rows = new Set(layout.nodes.map((node) => node.y));
  assert.ok(rows.size > 1);
  for (const a of layout.nodes) {
    for (const b of layout.nodes) {
      if (a === b) continue;
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      assert.ok(apart, `${a.id} overlaps ${b.id}`);
    }
  }
});

test("layoutGraph of nothing is empty, and edges join the boxes they name", () => {
  assert.deepEqual(layoutGraph(null), { width: 320, height: 0, nodes: [], edges: [] });
  const layout = layoutGraph(readGraph(sampleGraph(3)));
  const byId = Object.fromEntries(layout.nodes.map((node) => [node.id, node]));
  for (const edge of layout.edges) {
    assert.equal(edge.y1, byId[edge.from].y + byId[edge.from].h);
    assert.equal(edge.y2, byId[edge.to].y);
  }
});

test("fitLabel wraps at words into two lines, cutting the rest with an ellipsis", () => {
  assert.deepEqual(fitLabel("short", 10), ["short"]);
  assert.deepEqual(fitLabel("one two three", 8), ["one two", "three"]);
  const lines = fitLabel("alpha beta gamma delta epsilon zeta", 11);
  assert.equal(lines.length, 2);
  assert.ok(lines[1].endsWith("…"));
  assert.ok(lines.every((line) => line.length <= 11));
  assert.deepEqual(fitLabel("abcdefghijklmnop", 5, 1), ["abcd…"]);
  assert.deepEqual(fitLabel("", 5), []);
});

// ---------- summaries ----------

test("describeGraph says what the reasoning did in one line", () => {
  const graph = readGraph({
    nodes: [
      { id: "g", kind: "goal", state: "done" },
      { id: "c1", kind: "candidate", state: "chosen" },
      { id: "c2", kind: "candidate", state: "rejected" },
      { id: "a", kind: "answer", state: "chosen" },
    ],
  });
  assert.equal(describeGraph(graph), "Reasoning: 2 candidates, 1 chosen");
  const merged = readGraph({
    nodes: [
      { id: "p1", kind: "component" },
      { id: "p2", kind: "component" },
      { id: "c1", kind: "candidate", state: "chosen" },
      { id: "c2", kind: "candidate", state: "chosen" },
    ],
  });
  assert.equal(describeGraph(merged), "Reasoning: 2 parts, 2 candidates, 2 chosen");
  const more = readGraph({
    nodes: [
      { id: "a", kind: "aspect" },
      { id: "c", kind: "candidate", state: "done" },
      { id: "k", kind: "check", state: "failed" },
    ],
  });
  assert.equal(describeGraph(more), "Reasoning: 1 aspect, 1 candidate, 1 check failed");
  assert.equal(describeGraph(readGraph({ nodes: [{ id: "g", kind: "goal" }] })), "Reasoning: 1 step");
  assert.equal(describeGraph(null), "");
});

test("describeStep names the step and keeps the detail short", () => {
  assert.deepEqual(describeStep({ step: "exploring", detail: "Exploring 2 candidate answers" }), {
    step: "exploring",
    label: "Exploring",
    text: "Exploring 2 candidate answers",
  });
  assert.deepEqual(describeStep({ step: "toString", detail: 5 }), { step: "", label: "Thinking", text: "Thinking…" });
  assert.equal(describeStep({ step: "checking", detail: "y".repeat(999) }).text.length, 200);
  assert.equal(describeStep(null).label, "Thinking");
});

// ---------- clarify, stored messages, payload ----------

test("readClarify keeps up to four distinct non-empty choices", () => {
  assert.deepEqual(readClarify({ question: " Which one? ", choices: ["A", "A", "", 3, " B ", "C", "D", "E"] }), {
    question: "Which one?",
    choices: ["A", "B", "C", "D"],
  });
  assert.deepEqual(readClarify({ question: "Who?" }), { question: "Who?", choices: [] });
  for (const raw of [null, "Who?", {}, { question: 5, choices: "A" }]) assert.equal(readClarify(raw), null);
});

test("a clarification waits only on the last message, when it is the assistant's", () => {
  const asked = { role: "assistant", content: "Who?", thinking: { graph: null, clarify: { question: "Who?", choices: ["Ann"] } } };
  assert.deepEqual(pendingClarify([{ role: "user", content: "is he ok" }, asked]), { question: "Who?", choices: ["Ann"] });
  assert.equal(pendingClarify([asked, { role: "user", content: "Ann" }]), null);
  assert.equal(pendingClarify([asked, { role: "assistant", content: "Fine.", thinking: { graph: null, clarify: null } }]), null);
  assert.equal(pendingClarify([]), null);
  assert.equal(pendingClarify(null), null);
});

test("readThinking reads a stored message's graph and question, or null", () => {
  assert.equal(readThinking({ role: "assistant" }), null);
  assert.equal(readThinking({ thinking: { graph: null, clarify: null } }), null);
  assert.equal(readThinking({ thinking: "yes" }), null);
  const thinking = readThinking({ thinking: { graph: { nodes: [{ id: "g", kind: "goal" }], edges: [] }, clarify: null } });
  assert.equal(thinking.graph.nodes.length, 1);
  assert.equal(thinking.clarify, null);
});

test("buildMessagePayload adds think only when on, and split only when off", () => {
  assert.deepEqual(buildMessagePayload({ content: "hi" }), { content: "hi" });
  assert.deepEqual(buildMessagePayload({ content: "hi", model: "m", params: { top_p: 0.5 }, split: false, think: true }), {
    content: "hi",
    model: "m",
    params: { top_p: 0.5 },
    split: false,
    think: true,
  });
  assert.deepEqual(buildMessagePayload({ content: "hi", model: undefined, params: {}, split: true, think: false }), {
    content: "hi",
  });
  assert.equal("think" in buildMessagePayload({ content: "hi", think: "yes" }), false);
});

// ---------- the stream's state ----------

test("updateThinking follows the events, each graph replacing the one before", () => {
  let thinking = startThinking();
  const graph1 = { nodes: [{ id: "g", kind: "goal", state: "running" }], edges: [] };
  const graph2 = { nodes: [...graph1.nodes, { id: "c", kind: "candidate", state: "running" }], edges: [{ from: "g", to: "c" }] };
  thinking = updateThinking(thinking, { type: "thinking", step: "analysing", detail: "Working out what you want", graph: graph1 });
  assert.equal(thinking.step, "analysing");
  assert.equal(thinking.graph.nodes.length, 1);
  thinking = updateThinking(thinking, { type: "thinking", step: "exploring", detail: "Exploring", graph: graph2 });
  assert.equal(thinking.graph.nodes.length, 2);
  assert.equal(thinking.text, "Exploring");
  // A broken snapshot keeps the last good one.
  thinking = updateThinking(thinking, { type: "thinking", step: "checking", graph: "oops" });
  assert.equal(thinking.graph.nodes.length, 2);
  assert.equal(updateThinking(thinking, { type: "delta", text: "x" }), thinking);
  thinking = updateThinking(thinking, { type: "clarify", question: "Which?", choices: ["A", "B"] });
  assert.deepEqual(thinking.clarify.choices, ["A", "B"]);
  const done = updateThinking(thinking, { type: "done", graph: { nodes: [{ id: "x", kind: "answer" }] }, clarify: null });
  assert.equal(done.clarify, null);
  assert.deepEqual(done.graph.nodes.map((node) => node.id), ["x"]);
  assert.equal(updateThinking(thinking, { type: "done", graph: null }).graph.nodes.length, 2);
});

// ---------- drawing ----------

test("createGraphSvg draws one group per node, text only, hostile labels included", () => {
  const hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
  const graph = readGraph({
    nodes: [
      { id: "g", kind: "goal", label: hostile, state: "done", detail: "<b>why</b>" },
      { id: "c1", kind: "candidate", label: "A", state: "chosen" },
      { id: "c2", kind: "candidate", label: "B", state: "rejected" },
    ],
    edges: [
      { from: "g", to: "c1" },
      { from: "g", to: "c2" },
    ],
  });
  const svg = createGraphSvg(graph, { doc: fakeDocument });
  assert.equal(svg.tagName, "svg");
  assert.equal(svg.namespaceURI, "http://www.w3.org/2000/svg");
  assert.equal(svg.getAttribute("width"), "100%");
  assert.match(svg.getAttribute("viewBox"), /^0 0 320 \d+(\.\d)?$/);
  assert.equal(svg.getAttribute("aria-label"), "Reasoning: 2 candidates, 1 chosen");
  const groups = svg.querySelectorAll(".think-node");
  assert.deepEqual(
    groups.map((group) => [group.getAttribute("data-id"), group.getAttribute("data-state")]),
    [
      ["g", "done"],
      ["c1", "chosen"],
      ["c2", "rejected"],
    ],
  );
  const title = groups[0].querySelector("title").textContent;
  assert.ok(title.includes(hostile) && title.includes("<b>why</b>"));
  assert.equal(svg.querySelectorAll(".think-edge").length, 2);
  assert.ok(svg.querySelectorAll("svg").length === 0);
});

test("renderThinking fills its details; renderProgress says the step", () => {
  const details = new FakeNode("details");
  let thinking = updateThinking(startThinking(), {
    type: "thinking",
    step: "exploring",
    detail: "Exploring 2 candidate answers",
    graph: { nodes: [{ id: "c", kind: "candidate", state: "chosen" }] },
  });
  renderThinking(details, thinking, { doc: fakeDocument });
  assert.equal(details.querySelector("summary").textContent, "Reasoning so far");
  assert.equal(details.querySelectorAll(".think-svg").length, 1);
  renderThinking(details, thinking, { finished: true, doc: fakeDocument });
  assert.equal(details.querySelector("summary").textContent, "Reasoning: 1 candidate, 1 chosen");
  assert.equal(details.querySelectorAll(".think-svg").length, 1);
  thinking = { ...thinking, graph: null };
  renderThinking(details, thinking, { doc: fakeDocument });
  assert.equal(details.querySelectorAll(".think-svg").length, 0);

  const line = new FakeNode("p");
  renderProgress(line, updateThinking(startThinking(), { type: "thinking", step: "checking", detail: "<i>x</i>" }), {
    doc: fakeDocument,
  });
  assert.equal(line.dataset.step, "checking");
  assert.equal(line.querySelector(".think-step").textContent, "Checking");
  assert.equal(line.querySelector(".think-detail").textContent, "<i>x</i>");
});

test("createClarifyChoices makes one plain button per choice", () => {
  const box = createClarifyChoices({ question: "Who?", choices: ["<b>Ann</b>", "Bob"] }, { doc: fakeDocument });
  const buttons = box.querySelectorAll(".clarify-choice");
  assert.deepEqual(
    buttons.map((button) => [button.type, button.dataset.choice, button.textContent]),
    [
      ["button", "<b>Ann</b>", "<b>Ann</b>"],
      ["button", "Bob", "Bob"],
    ],
  );
  assert.equal(createClarifyChoices(null, { doc: fakeDocument }).children.length, 0);
});
