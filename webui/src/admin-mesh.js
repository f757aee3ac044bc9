// The admin page's Mesh section: the mesh id, the live picture of the units, who holds what, the key (as text
// and QR code), creating and joining a mesh. Polls GET /api/admin/mesh every 2 s while the section is on screen
// (and once when the page opens, for the mesh id).
import { createMesh, fetchMesh, fetchMeshKey, joinMesh } from "./admin-api.js";
import {
  buildHoldings,
  checkMeshKey,
  computeMeshKey,
  describeBadges,
  describeMeshCount,
  describeMeshNotice,
  describePeerState,
  describeUnitLines,
  formatAgo,
  layoutMeshMap,
  listUnits,
  MAP_MIN_WIDTH,
  MAP_SIZES,
} from "./mesh-format.js";
import { formatBytes } from "./admin-format.js";

const POLL_MS = 2000;
const RETRY_MS = 10000;
const CONFIRM_MS = 4000;
const SVG_NS = "http://www.w3.org/2000/svg";
const ENGINE_GLYPHS = { "llama.cpp": "CPU", mlc: "GPU" };

const $ = (id) => document.getElementById(id);

function makeSvg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function makeElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function setBusy(button, busy) {
  button.disabled = busy;
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

function describeUnitTitle(unit, now) {
  const lines = [`${unit.name}${unit.self ? " (this unit)" : ""}`, unit.id ? `node ${unit.id}` : ""];
  if (!unit.self) lines.push(describePeerState(unit, now));
  if (unit.address) lines.push(`address ${unit.address}`);
  if (unit.device) lines.push(`device ${unit.device}`);
  if (typeof unit.memory_free === "number") lines.push(`${formatBytes(unit.memory_free)} memory free`);
  if (typeof unit.rssi === "number") lines.push(`Bluetooth ${unit.rssi} dBm`);
  if (!unit.self && typeof unit.last_seen === "number" && typeof now === "number") {
    lines.push(`heard ${formatAgo(now - unit.last_seen)}${unit.via ? ` via ${unit.via}` : ""}`);
  }
  return lines.filter(Boolean).join("\n");
}

// Badges are drawn before the browser can measure text: estimate the width from the length (10 px type).
const estimateWidth = (text) => Math.ceil(text.length * 5.9) + 12;
const MAX_NAME = 16;
// Where there is room (a desktop), the picture is drawn larger than 1:1.
const DESKTOP_ZOOM = 1.35;

function buildNode({ unit, x, y, labelY }, now) {
  const { nodeRadius, nameLine, metaLine, badgeGap, badgeLine } = MAP_SIZES;
  const group = makeSvg("g", { class: "mesh-node", "data-node": unit.id, "data-state": unit.state });
  if (unit.self) group.dataset.self = "true";
  group.append(makeSvg("title", {}, describeUnitTitle(unit, now)));
  group.append(makeSvg("circle", { class: "unit-dot", cx: x, cy: y, r: nodeRadius }));
  const glyph = ENGINE_GLYPHS[unit.engine] ?? (unit.engine ? unit.engine.slice(0, 3).toUpperCase() : "");
  if (glyph) group.append(makeSvg("text", { class: "unit-glyph", x, y: y + 4, "text-anchor": "middle" }, glyph));
  const name = unit.name.length > MAX_NAME ? `${unit.name.slice(0, MAX_NAME - 1)}…` : unit.name;
  let line = labelY + nameLine - 2;
  group.append(makeSvg("text", { class: "unit-name", x, y: line, "text-anchor": "middle" }, name));
  for (const text of describeUnitLines(unit)) {
    line += metaLine;
    if (text) group.append(makeSvg("text", { class: "unit-meta", x, y: line, "text-anchor": "middle" }, text));
  }
  line += badgeGap;
  for (const badge of describeBadges(unit.models)) {
    const width = estimateWidth(badge.text);
    const chip = makeSvg("g", { class: `unit-badge ${badge.kind}` });
    chip.append(makeSvg("title", {}, badge.title));
    chip.append(makeSvg("rect", { x: x - width / 2, y: line, width, height: 14, rx: 7 }));
    chip.append(makeSvg("text", { x, y: line + 10, "text-anchor": "middle" }, badge.text));
    group.append(chip);
    line += badgeLine;
  }
  return group;
}

function renderMap(svg, units, now) {
  // Drawn at about 1:1 on any screen: text stays readable on a phone, the picture grows on a desktop.
  const available = svg.parentElement?.clientWidth || 440;
  const map = layoutMeshMap(units, { width: Math.max(MAP_MIN_WIDTH, Math.min(480, available)) });
  svg.setAttribute("viewBox", `0 0 ${map.width} ${map.height}`);
  svg.style.maxWidth = `${Math.round(map.width * DESKTOP_ZOOM)}px`;
  const title = svg.querySelector("title");
  const links = makeSvg("g", { class: "mesh-links" });
  for (const link of map.links) {
    links.append(
      makeSvg("line", {
        class: `link-${link.state}`,
        x1: link.x1,
        y1: link.y1,
        x2: link.x2,
        y2: link.y2,
        "data-to": link.to,
      }),
    );
  }
  const nodes = makeSvg("g", { class: "mesh-nodes" });
  for (const node of map.nodes) nodes.append(buildNode(node, now));
  svg.replaceChildren(...[title, links, nodes].filter(Boolean));
  title.textContent =
    units.length > 1
      ? `This unit, ${units[0].name}, in the centre; ${describeMeshCount(units)}.`
      : `This unit, ${units[0].name}; no other unit heard yet.`;
}

function renderHoldings(table, empty, units) {
  const holdings = buildHoldings(units);
  const head = makeElement("thead");
  const headRow = makeElement("tr");
  headRow.append(Object.assign(makeElement("th", "", "Model"), { scope: "col" }));
  for (const unit of holdings.units) {
    const th = makeElement("th", unit.state === "online" ? "" : "gone", unit.name);
    th.scope = "col";
    th.dataset.node = unit.id;
    th.title = unit.id;
    if (unit.self) th.append(makeElement("small", "unit-note", "this unit"));
    else if (unit.state !== "online") th.append(makeElement("small", "unit-note", "gone"));
    headRow.append(th);
  }
  head.append(headRow);
  const body = makeElement("tbody");
  for (const row of holdings.rows) {
    const tr = makeElement("tr");
    tr.dataset.model = row.model;
    tr.append(Object.assign(makeElement("th", "", row.model), { scope: "row", title: row.model }));
    for (const cell of row.cells) {
      const td = makeElement("td", `holding ${cell.kind}`, cell.text);
      td.dataset.node = cell.unit;
      td.dataset.kind = cell.kind;
      tr.append(td);
    }
    body.append(tr);
  }
  table.replaceChildren(head, body);
  table.hidden = holdings.rows.length === 0;
  empty.hidden = holdings.rows.length > 0;
}

/** Wire the Mesh section; show() starts it (after sign-in), hide() stops it (sign-out). */
export function startMeshSection({ onSessionEnded }) {
  const el = {
    section: $("mesh"),
    id: $("mesh-id"),
    count: $("mesh-count"),
    notice: $("mesh-notice"),
    map: $("mesh-map"),
    legend: document.querySelector("#mesh .mesh-legend"),
    holdingsTitle: $("mesh-holdings-title"),
    holdingsBlock: document.querySelector("#mesh .mesh-holdings-scroll"),
    holdings: $("mesh-holdings"),
    holdingsEmpty: $("mesh-holdings-empty"),
    showKey: $("mesh-show-key"),
    keyView: $("mesh-key-view"),
    qr: $("mesh-qr"),
    keyText: $("mesh-key-text"),
    setupTitle: $("mesh-setup-title"),
    setupHint: $("mesh-setup-hint"),
    create: $("mesh-create"),
    joinForm: $("mesh-join-form"),
    joinKey: $("mesh-join-key"),
    join: $("mesh-join"),
    message: $("mesh-message"),
  };
  const state = {
    active: false,
    timer: 0,
    token: 0,
    data: null,
    renderedKey: null,
    loadError: null,
    armed: null, // "create" | "join": the action waiting for its second tap
    armedTimer: 0,
  };

  function setMessage(text, kind = "") {
    el.message.textContent = text;
    el.message.dataset.kind = kind;
  }

  function stopPolling() {
    window.clearTimeout(state.timer);
    state.timer = 0;
  }

  function isOnScreen() {
    // Checked at each tick rather than observed: cheap, and true to what the person sees right now.
    if (document.hidden) return false;
    const rect = el.section.getBoundingClientRect();
    return rect.height > 0 && rect.bottom > 0 && rect.top < window.innerHeight;
  }

  function schedule(delay) {
    stopPolling();
    if (!state.active) return;
    state.timer = window.setTimeout(() => {
      state.timer = 0;
      // Off screen or in a background tab, the picture waits (no request); it is fetched within 2 s of coming back.
      if (isOnScreen()) refresh();
      else schedule(POLL_MS);
    }, delay);
  }

  async function refresh() {
    if (!state.active) return;
    stopPolling();
    const token = ++state.token;
    let data;
    try {
      data = await fetchMesh();
    } catch (error) {
      if (token !== state.token || !state.active) return;
      if (error?.status === 401) return onSessionEnded();
      state.loadError = `Could not load the mesh: ${error?.message || "unknown error"}`;
      renderNotice();
      el.section.removeAttribute("aria-busy");
      return schedule(RETRY_MS);
    }
    if (token !== state.token || !state.active) return;
    state.loadError = null;
    state.data = data ?? {};
    render();
    el.section.removeAttribute("aria-busy");
    schedule(POLL_MS);
  }

  function renderNotice() {
    const notice = state.loadError ? { kind: "warn", text: state.loadError } : describeMeshNotice(state.data);
    el.notice.hidden = !notice;
    el.notice.textContent = notice?.text ?? "";
    el.notice.dataset.kind = notice?.kind ?? "";
  }

  function renderControls() {
    const data = state.data ?? {};
    const inMesh = Boolean(data.key_set && data.mesh_id);
    el.showKey.hidden = !inMesh;
    if (!inMesh && !el.keyView.hidden) hideKey();
    el.setupTitle.textContent = inMesh ? "Move this unit to another mesh" : "Create or join a mesh";
    el.setupHint.textContent = inMesh
      ? "Creating a new mesh or joining another one replaces this unit's key: it leaves its mesh."
      : "Create a mesh on the first unit; on each next unit, join with its key.";
    const armedCreate = state.armed === "create";
    el.create.textContent = armedCreate ? "Tap again to create a new mesh" : "Create mesh";
    el.create.classList.toggle("armed", armedCreate);
    el.join.textContent = state.armed === "join" ? "Tap again to join" : "Join";
    el.join.classList.toggle("armed", state.armed === "join");
  }

  function render() {
    const data = state.data ?? {};
    el.id.textContent = data.mesh_id || "none";
    renderNotice();
    renderControls();
    const key = computeMeshKey(data);
    if (key === state.renderedKey) return; // a heartbeat changed nothing the picture shows
    state.renderedKey = key;
    const units = listUnits(data);
    el.count.textContent = data.running ? describeMeshCount(units) : "";
    renderMap(el.map, units, data.now);
    renderHoldings(el.holdings, el.holdingsEmpty, units);
    // Alone, the unit's own models are the list above: no legend, no table.
    const alone = units.length < 2;
    el.legend.hidden = alone;
    el.holdingsBlock.hidden = alone;
    el.holdingsTitle.hidden = alone;
    if (alone) el.holdingsEmpty.hidden = true;
  }

  function disarm() {
    window.clearTimeout(state.armedTimer);
    state.armed = null;
  }

  /** In a mesh, a first tap arms the action (it makes the unit leave its mesh); true when it may run now. */
  function confirm(action) {
    if (!state.data?.key_set || state.armed === action) {
      disarm();
      return true;
    }
    disarm();
    state.armed = action;
    state.armedTimer = window.setTimeout(() => {
      state.armed = null;
      renderControls();
    }, CONFIRM_MS);
    renderControls();
    return false;
  }

  async function runKeyChange(button, request, describeDone) {
    setBusy(button, true);
    setMessage("");
    let result;
    try {
      result = await request();
    } catch (error) {
      if (error?.status === 401) return onSessionEnded();
      if (button === el.join) el.joinKey.setAttribute("aria-invalid", "true");
      setMessage(error?.message || "Something went wrong.", "error");
      return;
    } finally {
      setBusy(button, false);
      renderControls();
    }
    hideKey();
    const restart = result?.restart_needed
      ? " Restart `iplm serve` on this unit for it to use the key."
      : " The unit already uses this key.";
    setMessage(`${describeDone(result?.mesh_id ?? "?")}${restart}`, "ok");
    state.renderedKey = null;
    refresh();
  }

  function submitCreate() {
    if (!confirm("create")) return;
    const force = Boolean(state.data?.key_set);
    runKeyChange(el.create, () => createMesh(force), (id) => `Mesh ${id} created. “Show key” gives it to the next unit.`);
  }

  function submitJoin(event) {
    event.preventDefault();
    el.joinKey.removeAttribute("aria-invalid");
    const problem = checkMeshKey(el.joinKey.value);
    if (problem) {
      disarm();
      renderControls();
      el.joinKey.setAttribute("aria-invalid", "true");
      setMessage(problem, "error");
      el.joinKey.focus();
      return;
    }
    if (!confirm("join")) return;
    const key = el.joinKey.value.trim();
    runKeyChange(el.join, () => joinMesh(key), (id) => {
      el.joinKey.value = "";
      return `Joined mesh ${id}.`;
    });
  }

  function hideKey() {
    el.keyView.hidden = true;
    el.keyText.textContent = "";
    el.qr.replaceChildren();
    el.showKey.textContent = "Show key";
    el.showKey.setAttribute("aria-expanded", "false");
  }

  async function toggleKey() {
    if (!el.keyView.hidden) return hideKey();
    setBusy(el.showKey, true);
    let answer;
    let buildQrPath;
    try {
      // The QR encoder loads only when a key is shown (its own chunk): the page polls without it.
      [answer, { buildQrPath }] = await Promise.all([fetchMeshKey(), import("./mesh-qr.js")]);
    } catch (error) {
      if (error?.status === 401) return onSessionEnded();
      setMessage(error?.message || "Could not read the key.", "error");
      return;
    } finally {
      setBusy(el.showKey, false);
    }
    const key = String(answer?.key ?? "");
    const qr = buildQrPath(key);
    el.qr.setAttribute("viewBox", `0 0 ${qr.size} ${qr.size}`);
    el.qr.setAttribute("shape-rendering", "crispEdges");
    el.qr.replaceChildren(
      makeSvg("rect", { class: "qr-light", width: qr.size, height: qr.size }),
      makeSvg("path", { class: "qr-dark", d: qr.path }),
    );
    el.qr.dataset.text = qr.text;
    el.keyText.textContent = key;
    el.keyView.hidden = false;
    el.showKey.textContent = "Hide key";
    el.showKey.setAttribute("aria-expanded", "true");
  }

  el.showKey.addEventListener("click", toggleKey);
  el.create.addEventListener("click", submitCreate);
  el.joinForm.addEventListener("submit", submitJoin);
  el.joinKey.addEventListener("input", () => {
    el.joinKey.removeAttribute("aria-invalid");
    if (state.armed === "join") {
      disarm();
      renderControls();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.active && isOnScreen()) refresh();
  });
  // A rotated phone or a resized window: redraw the picture for the new width.
  let lastWidth = 0;
  window.addEventListener("resize", () => {
    const width = el.map.parentElement?.clientWidth ?? 0;
    if (!state.data || Math.abs(width - lastWidth) < 8) return;
    lastWidth = width;
    state.renderedKey = null;
    render();
  });

  return {
    show() {
      state.active = true;
      state.renderedKey = null;
      el.section.setAttribute("aria-busy", "true");
      refresh(); // once even off screen: the mesh id is worth knowing at once
    },
    hide() {
      state.active = false;
      state.token += 1;
      stopPolling();
      disarm();
      hideKey();
      setMessage("");
      state.data = null;
      state.renderedKey = null;
      el.map.replaceChildren(...[el.map.querySelector("title")].filter(Boolean));
      el.holdings.replaceChildren();
    },
  };
}
