// "Think deeply": the unit works out what was meant, may ask back, and compares candidate answers before it
// answers, streaming a reasoning graph as it goes. The state is plain data changed by pure functions; the
// graph is drawn from it with createElementNS and textContent only: labels are model and user text, untrusted.

export const KINDS = Object.freeze(["goal", "aspect", "component", "candidate", "check", "answer"]);
export const STATES = Object.freeze(["pending", "running", "done", "failed", "chosen", "rejected"]);
const STEP_LABELS = {
  analysing: "Analysing",
  asking: "Asking back",
  exploring: "Exploring",
  checking: "Checking",
  converging: "Converging",
  answering: "Answering",
};
// Top to bottom; aspects and components share a layer (both split the goal).
const LAYER_OF = { goal: 0, aspect: 1, component: 1, candidate: 2, check: 3, answer: 4 };
const KIND_ORDER = { aspect: 0, component: 1 };

export const MAX_NODES = 40;
export const MAX_EDGES = 120;
export const MAX_LABEL = 300;
const MAX_SCAN = 1000; // entries of a raw array looked at, so a huge array costs nothing
const MAX_ID = 100;
const MAX_DETAIL = 500;
const MAX_CHOICES = 4;
const MAX_CHOICE = 200;
const MAX_QUESTION = 4000;
const SVG_NS = "http://www.w3.org/2000/svg";

const oneLine = (value, max) => (typeof value === "string" ? value.replace(/\s+/g, " ").trim().slice(0, max) : "");

/** A graph fit to draw from untrusted input: {nodes, edges}, or null when nothing usable is in it. */
export function readGraph(raw) {
  if (!raw || typeof raw !== "object" || !Array.isArray(raw.nodes)) return null;
  const nodes = [];
  const seen = new Set();
  for (const item of raw.nodes.slice(0, MAX_SCAN)) {
    if (nodes.length >= MAX_NODES) break;
    if (!item || typeof item !== "object") continue;
    const id = typeof item.id === "number" && Number.isFinite(item.id) ? String(item.id) : oneLine(item.id, MAX_ID);
    if (!id || seen.has(id) || !KINDS.includes(item.kind)) continue; // the first of duplicate ids wins
    seen.add(id);
    const node = {
      id,
      kind: item.kind,
      label: oneLine(item.label, MAX_LABEL),
      state: STATES.includes(item.state) ? item.state : "pending",
    };
    const detail = oneLine(item.detail, MAX_DETAIL);
    if (detail) node.detail = detail;
    nodes.push(node);
  }
  if (nodes.length === 0) return null;
  const edges = [];
  const pairs = new Set();
  for (const item of Array.isArray(raw.edges) ? raw.edges.slice(0, MAX_SCAN) : []) {
    if (edges.length >= MAX_EDGES) break;
    const from = typeof item?.from === "number" ? String(item.from) : item?.from;
    const to = typeof item?.to === "number" ? String(item.to) : item?.to;
    const key = `${from}\u0000${to}`;
    if (!seen.has(from) || !seen.has(to) || from === to || pairs.has(key)) continue;
    pairs.add(key);
    edges.push({ from, to });
  }
  return { nodes, edges };
}

/** A clarifying question ({question, choices}) from untrusted input, or null. Choices: 0..4 distinct strings. */
export function readClarify(raw) {
  if (!raw || typeof raw !== "object") return null;
  const question = typeof raw.question === "string" ? raw.question.trim().slice(0, MAX_QUESTION) : "";
  const choices = [];
  for (const item of Array.isArray(raw.choices) ? raw.choices.slice(0, MAX_SCAN) : []) {
    const choice = oneLine(item, MAX_CHOICE);
    if (choice && !choices.includes(choice)) choices.push(choice);
    if (choices.length >= MAX_CHOICES) break;
  }
  if (!question && choices.length === 0) return null;
  return { question, choices };
}

/** A stored message's thinking ({graph, clarify}, each possibly null), or null when it did not think. */
export function readThinking(message) {
  const raw = message?.thinking;
  if (!raw || typeof raw !== "object") return null;
  const graph = readGraph(raw.graph);
  const clarify = readClarify(raw.clarify);
  return graph || clarify ? { graph, clarify } : null;
}

/** The clarification still waiting for an answer: the last message's, when it is an assistant's; else null. */
export function pendingClarify(messages) {
  const last = Array.isArray(messages) ? messages[messages.length - 1] : null;
  if (last?.role !== "assistant") return null;
  return readThinking(last)?.clarify ?? null;
}

/** The progress line for a thinking event: {step, label, text}; an unknown step reads "Thinking". */
export function describeStep(event) {
  const step = Object.prototype.hasOwnProperty.call(STEP_LABELS, event?.step) ? event.step : "";
  const label = step ? STEP_LABELS[step] : "Thinking";
  return { step, label, text: oneLine(event?.detail, 200) || `${label}…` };
}

const plural = (count, one, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;

/** One line saying what the reasoning did, for the folded graph: "Reasoning: 2 candidates, 1 chosen". */
export function describeGraph(graph) {
  const nodes = graph?.nodes ?? [];
  if (nodes.length === 0) return "";
  const count = (test) => nodes.filter(test).length;
  const aspects = count((node) => node.kind === "aspect");
  const components = count((node) => node.kind === "component");
  const candidates = count((node) => node.kind === "candidate");
  // Chosen candidates only: the answer node is "chosen" too, and counting it would say one more.
  const chosen = count((node) => node.kind === "candidate" && node.state === "chosen");
  const failedChecks = count((node) => node.kind === "check" && node.state === "failed");
  const parts = [];
  if (aspects) parts.push(plural(aspects, "aspect"));
  if (components) parts.push(plural(components, "part"));
  if (candidates) parts.push(plural(candidates, "candidate"));
  if (chosen) parts.push(`${chosen} chosen`);
  if (failedChecks) parts.push(`${plural(failedChecks, "check")} failed`);
  if (parts.length === 0) parts.push(plural(nodes.length, "step"));
  return `Reasoning: ${parts.join(", ")}`;
}

/** The thinking state of a reply before any event. */
export const startThinking = () => ({ step: "", label: "", text: "", graph: null, clarify: null });

/** The thinking state after one event (thinking, clarify or done); other events change nothing. */
export function updateThinking(thinking, event) {
  if (event?.type === "thinking") {
    return { ...thinking, ...describeStep(event), graph: readGraph(event.graph) ?? thinking.graph };
  }
  if (event?.type === "clarify") return { ...thinking, clarify: readClarify(event) ?? thinking.clarify };
  if (event?.type === "done") {
    // done carries the final word; a missing or broken one keeps what the stream showed.
    return {
      ...thinking,
      graph: readGraph(event.graph) ?? thinking.graph,
      clarify: event.clarify === null ? null : (readClarify(event.clarify) ?? thinking.clarify),
    };
  }
  return thinking;
}

// ---------- layout ----------

const PAD = 4;
const GAP_X = 6;
const MIN_BOX_W = 92;
const MAX_BOX_W = 240;
const BOX_H = 34;
const ROW_GAP = 8;
const LAYER_GAP = 18;
const CHAR_W = 6.2; // about one character at the 11-unit font the boxes use
const LINE_H = 12;

/** Words of text in at most maxLines lines of maxChars, the last cut with "…" when the text goes on. */
export function fitLabel(text, maxChars, maxLines = 2) {
  const limit = Math.max(1, Math.floor(maxChars));
  const lines = [];
  let rest = String(text ?? "").trim();
  while (rest && lines.length < maxLines) {
    if (rest.length <= limit) {
      lines.push(rest);
      rest = "";
      break;
    }
    const space = rest.lastIndexOf(" ", limit);
    const cut = space > limit / 3 ? space : limit; // break at a word when one ends late enough
    lines.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest && lines.length > 0) {
    const last = lines.length - 1;
    lines[last] = `${lines[last].slice(0, limit - 1).trimEnd()}…`;
  }
  return lines;
}

/**
 * Boxes and lines for a graph, top to bottom by layer (goal, aspects and components, candidates, checks,
 * answer); a layer spreads across the width and wraps into more rows when it does not fit.
 * Returns {width, height, nodes: [{...node, layer, x, y, w, h, lines}], edges: [{from, to, state, x1, y1, x2, y2}]}.
 */
export function layoutGraph(graph, { width = 320 } = {}) {
  const total = Math.max(2 * PAD + 40, Number.isFinite(width) ? width : 320);
  const inner = total - 2 * PAD;
  const perRow = Math.max(1, Math.floor((inner + GAP_X) / (MIN_BOX_W + GAP_X)));
  const layers = new Map();
  for (const node of graph?.nodes ?? []) {
    const layer = LAYER_OF[node.kind];
    if (layer === undefined) continue;
    if (!layers.has(layer)) layers.set(layer, []);
    layers.get(layer).push(node);
  }
  const placed = [];
  let y = PAD;
  for (const layer of [...layers.keys()].sort((a, b) => a - b)) {
    const members = layers.get(layer).slice().sort((a, b) => (KIND_ORDER[a.kind] ?? 0) - (KIND_ORDER[b.kind] ?? 0));
    for (let start = 0; start < members.length; start += perRow) {
      const row = members.slice(start, start + perRow);
      const w = Math.min(MAX_BOX_W, (inner - GAP_X * (row.length - 1)) / row.length);
      const used = w * row.length + GAP_X * (row.length - 1);
      let x = PAD + (inner - used) / 2;
      for (const node of row) {
        placed.push({ ...node, layer, x, y, w, h: BOX_H, lines: fitLabel(node.label || node.kind, (w - 10) / CHAR_W) });
        x += w + GAP_X;
      }
      y += BOX_H + ROW_GAP;
    }
    y += LAYER_GAP - ROW_GAP;
  }
  const byId = new Map(placed.map((node) => [node.id, node]));
  const edges = [];
  for (const edge of graph?.edges ?? []) {
    const a = byId.get(edge.from);
    const b = byId.get(edge.to);
    if (!a || !b) continue;
    let ends;
    if (a.y === b.y) {
      // Same row: side to side.
      const [left, right] = a.x < b.x ? [a, b] : [b, a];
      ends = [left.x + left.w, left.y + BOX_H / 2, right.x, right.y + BOX_H / 2];
    } else {
      const down = a.y < b.y;
      ends = [a.x + a.w / 2, down ? a.y + BOX_H : a.y, b.x + b.w / 2, down ? b.y : b.y + BOX_H];
    }
    const [x1, y1, x2, y2] = ends;
    edges.push({ from: a.id, to: b.id, state: b.state, x1, y1, x2, y2 });
  }
  const height = placed.length ? y - (LAYER_GAP - ROW_GAP) - ROW_GAP + PAD : 0;
  return { width: total, height, nodes: placed, edges };
}

// ---------- drawing ----------

const round = (value) => String(Math.round(value * 10) / 10);

function svgElement(doc, name, attributes) {
  const element = doc.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, typeof value === "number" ? round(value) : value);
  }
  return element;
}

const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** The graph as an <svg> (viewBox width wide, drawn at 100% of its box), built from text nodes only. */
export function createGraphSvg(graph, { width = 320, doc = globalThis.document } = {}) {
  const layout = layoutGraph(graph, { width });
  const svg = svgElement(doc, "svg", {
    class: "think-svg",
    viewBox: `0 0 ${round(layout.width)} ${round(Math.max(layout.height, 1))}`,
    width: "100%",
    role: "img",
    "aria-label": describeGraph(graph) || "Reasoning",
  });
  const edges = svgElement(doc, "g", { class: "think-edges" });
  for (const edge of layout.edges) {
    const { x1, y1, x2, y2 } = edge;
    edges.append(
      svgElement(doc, "line", { class: "think-edge", "data-from": edge.from, "data-to": edge.to, "data-state": edge.state, x1, y1, x2, y2 }),
    );
  }
  svg.append(edges);
  for (const node of layout.nodes) {
    const group = svgElement(doc, "g", { class: "think-node", "data-id": node.id, "data-kind": node.kind, "data-state": node.state });
    const title = svgElement(doc, "title", {});
    title.textContent = `${capital(node.kind)} (${node.state}): ${node.label}${node.detail ? `\n${node.detail}` : ""}`;
    const rect = svgElement(doc, "rect", { x: node.x, y: node.y, width: node.w, height: node.h, rx: 6 });
    const text = svgElement(doc, "text", { x: node.x + node.w / 2, "text-anchor": "middle" });
    const top = node.y + node.h / 2 - ((node.lines.length - 1) * LINE_H) / 2 + 4;
    node.lines.forEach((line, i) => {
      const span = svgElement(doc, "tspan", { x: node.x + node.w / 2, y: top + i * LINE_H });
      span.textContent = line;
      text.append(span);
    });
    group.append(title, rect, text);
    svg.append(group);
  }
  return svg;
}

/**
 * Draw the thinking state into container (a <details class="thinking"> the caller placed): its summary line
 * and the graph, replacing what was there. While running the summary says the step; finished, what was done.
 */
export function renderThinking(container, thinking, { finished = false, doc = globalThis.document } = {}) {
  let summary = container.querySelector("summary");
  if (!summary) {
    summary = doc.createElement("summary");
    container.append(summary);
  }
  summary.textContent = finished ? describeGraph(thinking.graph) || "Reasoning" : "Reasoning so far";
  container.dataset.finished = String(finished);
  const old = container.querySelector(".think-svg");
  if (!thinking.graph) {
    old?.remove();
    return;
  }
  const svg = createGraphSvg(thinking.graph, { doc });
  if (old) old.replaceWith(svg);
  else container.append(svg);
}

/** Fill the progress line (a <p class="think-progress">): the step, then its detail. */
export function renderProgress(line, thinking, { doc = globalThis.document } = {}) {
  const step = doc.createElement("span");
  step.className = "think-step";
  step.textContent = thinking.label || "Thinking";
  const text = doc.createElement("span");
  text.className = "think-detail";
  text.textContent = thinking.text || "Thinking…";
  line.dataset.step = thinking.step || "";
  line.replaceChildren(step, text);
}

/** One button per choice (type=button, class clarify-choice, data-choice = its text), in a div.clarify-choices. */
export function createClarifyChoices(clarify, { doc = globalThis.document } = {}) {
  const box = doc.createElement("div");
  box.className = "clarify-choices";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Quick answers");
  for (const choice of clarify?.choices ?? []) {
    const button = doc.createElement("button");
    button.type = "button";
    button.className = "clarify-choice secondary outline";
    button.dataset.choice = choice;
    button.textContent = choice;
    box.append(button);
  }
  return box;
}
