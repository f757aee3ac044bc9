// Pure helpers of the admin page's Mesh section: plain data in, plain data out (tested in tests/mesh-format.test.mjs).
// `mesh` is GET /api/admin/mesh: {mesh_id, self, running, key_set, key_error, restart_needed, unit, peers, now}.

const MAX_BADGES = 3;
const STATE_RANK = { online: 0, gone: 1 };

/** A whole percent of pieces held ({held, total}); null when unknown. 99 until every piece is there. */
export function computePiecePercent(pieces) {
  const held = pieces?.held;
  const total = pieces?.total;
  if (typeof held !== "number" || typeof total !== "number" || !(total > 0) || held < 0) return null;
  if (held >= total) return 100;
  return Math.min(99, Math.floor((held / total) * 100));
}

/** A model id short enough for a badge: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC" → "Qwen2.5-0.5B". */
export function shortenModelId(id, max = 16) {
  const text = String(id ?? "");
  // The family and size say which model it is; "-Instruct" and the quantization tag rarely differ inside a mesh.
  let short = text.replace(/-instruct\b.*$/i, "");
  if (short === text) short = text.replace(/-(q\d[\w]*?)(-mlc)?$/i, "");
  if (!short) short = text;
  return short.length > max ? `${short.slice(0, max - 1)}…` : short;
}

/** "idle", "1/2 busy", "2/2 busy · 3 queued"; "" when the unit said nothing about its load. */
export function describeLoad(load) {
  if (!load || typeof load !== "object") return "";
  const busy = Number.isFinite(load.busy) ? load.busy : null;
  const workers = Number.isFinite(load.workers) ? load.workers : null;
  const queued = Number.isFinite(load.queued) ? load.queued : 0;
  if (busy === null) return queued > 0 ? `${queued} queued` : "";
  const parts = [busy === 0 && queued === 0 ? "idle" : workers ? `${busy}/${workers} busy` : `${busy} busy`];
  if (queued > 0) parts.push(`${queued} queued`);
  return parts.join(" · ");
}

/** "12 s ago", "3 min ago", "2 h ago"; "" when unknown. */
export function formatAgo(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

const REASONS = { left: "left", will: "lost", link: "link down", silent: "silent" };

/** A peer's state in words: "online", "gone: silent, 3 min ago". */
export function describePeerState(unit, now) {
  if (unit.self) return "this unit";
  if (unit.state === "online") return "online";
  const reason = REASONS[unit.reason] ?? unit.reason ?? "";
  const ago = typeof now === "number" && typeof unit.since === "number" ? formatAgo(now - unit.since) : "";
  const detail = [reason, ago].filter(Boolean).join(", ");
  return detail ? `gone: ${detail}` : "gone";
}

const ENGINE_NAMES = { mlc: "MLC LLM", "llama.cpp": "llama.cpp" };

/** The two lines under a unit's name in the picture: its engine, then its load (or why it is gone). */
export function describeUnitLines(unit) {
  const engine = ENGINE_NAMES[unit.engine] ?? String(unit.engine ?? "");
  const status = !unit.self && unit.state !== "online" ? describePeerState(unit) : describeLoad(unit.load);
  return [engine, status];
}

function readModels(models) {
  return Array.isArray(models)
    ? models.filter((model) => model && typeof model.id === "string" && ["installed", "partial"].includes(model.state))
    : [];
}

/** This unit first, then the peers: online before gone, then by name. Each: {id, self, state, name, ...}. */
export function listUnits(mesh) {
  const own = mesh?.unit ?? {};
  const selfId = typeof mesh?.self === "string" ? mesh.self : "";
  const units = [
    {
      id: selfId,
      self: true,
      state: "online",
      name: own.name || "This unit",
      engine: own.engine ?? "",
      load: own.load ?? null,
      models: readModels(own.models),
      known: Boolean(mesh?.unit),
    },
  ];
  const peers = Object.entries(mesh?.peers ?? {})
    .filter(([id, peer]) => id !== selfId && peer && typeof peer === "object")
    .map(([id, peer]) => ({
      ...peer,
      id,
      self: false,
      state: peer.state === "online" ? "online" : "gone",
      name: peer.name || id,
      engine: peer.engine ?? "",
      load: peer.load ?? null,
      models: readModels(peer.models),
      known: true,
    }))
    .sort(
      (a, b) =>
        STATE_RANK[a.state] - STATE_RANK[b.state] || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
    );
  return [...units, ...peers];
}

/** What a unit holds of a model: {kind: "installed" | "partial" | "none", text, percent}. */
export function describeHolding(model) {
  if (!model) return { kind: "none", text: "—", percent: null };
  if (model.state === "installed") return { kind: "installed", text: "installed", percent: 100 };
  const percent = computePiecePercent(model.pieces);
  return { kind: "partial", text: percent === null ? "partial" : `${percent}%`, percent };
}

/** The badges under a unit: one per model (installed first), at most `max`, then "+N more". */
export function describeBadges(models, max = MAX_BADGES) {
  const list = readModels(models)
    .slice()
    .sort((a, b) => (a.state === b.state ? a.id.localeCompare(b.id) : a.state === "installed" ? -1 : 1));
  const shown = list.length > max ? list.slice(0, max - 1) : list;
  const badges = shown.map((model) => {
    const holding = describeHolding(model);
    const short = shortenModelId(model.id, 12);
    const text = holding.kind === "partial" ? `${short} ${holding.text}` : short;
    return { kind: holding.kind, text, title: `${model.id}: ${holding.text}` };
  });
  if (list.length > shown.length) {
    const rest = list.slice(shown.length);
    badges.push({ kind: "more", text: `+${rest.length} more`, title: rest.map((model) => model.id).join(", ") });
  }
  return badges;
}

/** The "who holds what" table: rows = models (by id), columns = units (listUnits' order). */
export function buildHoldings(units) {
  const ids = [...new Set(units.flatMap((unit) => unit.models.map((model) => model.id)))].sort((a, b) =>
    a.localeCompare(b),
  );
  const rows = ids.map((id) => ({
    model: id,
    cells: units.map((unit) => ({ ...describeHolding(unit.models.find((model) => model.id === id)), unit: unit.id })),
  }));
  return { units: units.map(({ id, name, self, state }) => ({ id, name, self, state })), rows };
}

// The picture's measures (SVG user units, drawn at about 1:1): a unit's dot, and the label block beside it.
export const MAP_SIZES = {
  nodeRadius: 22,
  nameLine: 15, // the unit's name
  metaLine: 13, // each of: its engine; its load, or why it is gone
  badgeGap: 6,
  badgeLine: 17, // one model badge
  labelHalfWidth: 56, // half the widest label: "2/2 busy · 3 queued" at 10 px, "Llama-3.2-1B 42%"
  margin: 8,
};

/** The narrowest picture that holds units left and right of the centre with their labels. */
export const MAP_MIN_WIDTH = 2 * (2 * MAP_SIZES.labelHalfWidth + 6 + MAP_SIZES.labelHalfWidth + 4);

/** Height of a unit's label block: name, engine, load, then one line per badge. */
export function measureLabel(unit) {
  const badges = describeBadges(unit.models).length;
  return MAP_SIZES.nameLine + 2 * MAP_SIZES.metaLine + MAP_SIZES.badgeGap + badges * MAP_SIZES.badgeLine;
}

/**
 * Where everything goes in the picture (SVG user units) for a picture `width` wide: this unit in the centre, the
 * peers evenly on a circle, clockwise from the top; one link from the centre to each peer. Labels hang under a
 * unit, or stand over it in the upper part of the circle (outwards, away from the centre's own labels). The
 * circle grows, and the picture with it, where labels would otherwise cover each other; the height follows.
 */
export function layoutMeshMap(units, { width = 440 } = {}) {
  const { nodeRadius, labelHalfWidth, margin } = MAP_SIZES;
  const peers = units.filter((unit) => !unit.self);
  const self = units.find((unit) => unit.self) ?? null;
  const step = peers.length ? (2 * Math.PI) / peers.length : 0;
  // An even count would put a unit straight under the centre, on the centre's labels: turn by half a step.
  const start = -Math.PI / 2 + (peers.length % 2 === 0 ? step / 2 : 0);
  const angles = peers.map((_, index) => start + step * index);
  const centreLabel = self ? measureLabel(self) : 0;
  // Wide enough that the labels of the units left and right of the centre clear the centre's labels, and
  // that a unit below the centre sits beside its labels or under them.
  let radius = Math.max(2 * labelHalfWidth + 6, Math.min(150, width / 2 - labelHalfWidth - 4));
  for (const angle of angles) {
    const cos = Math.abs(Math.cos(angle));
    const sin = Math.sin(angle);
    if (sin <= 0) continue;
    const fits = (besideAt, underAt) => Math.min(cos > 0.01 ? besideAt / cos : Infinity, underAt / sin);
    // Its dot, then its labels: each clear of the centre's labels, beside them or under them.
    const dot = fits(labelHalfWidth + nodeRadius + 2, 2 * nodeRadius + centreLabel + 2);
    const label = fits(2 * labelHalfWidth + 2, centreLabel + 2);
    radius = Math.max(radius, dot, label);
  }
  const reach = Math.max(0, ...angles.map((angle) => Math.abs(Math.cos(angle)) * radius));
  const fullWidth = Math.max(width, Math.ceil(2 * (reach + labelHalfWidth + 4)));
  const placed = [];
  if (self) placed.push({ unit: self, x: 0, y: 0, labelsAbove: false });
  peers.forEach((unit, index) => {
    const angle = angles[index];
    const sin = Math.sin(angle);
    placed.push({ unit, x: radius * Math.cos(angle), y: radius * sin, labelsAbove: sin < -0.5 });
  });
  let top = Infinity;
  let bottom = -Infinity;
  for (const node of placed) {
    const label = measureLabel(node.unit);
    node.labelY = node.labelsAbove ? node.y - nodeRadius - label : node.y + nodeRadius;
    top = Math.min(top, node.y - nodeRadius - (node.labelsAbove ? label : 0));
    bottom = Math.max(bottom, node.y + nodeRadius + (node.labelsAbove ? 0 : label));
  }
  if (!placed.length) top = bottom = 0;
  const cx = round(fullWidth / 2);
  const cy = round(margin - top);
  const nodes = placed.map((node) => ({
    ...node,
    x: round(cx + node.x),
    y: round(cy + node.y),
    labelY: round(cy + node.labelY),
  }));
  // Links run from dot edge to dot edge: a gone unit's faded dot does not show a line through it.
  const links = nodes
    .filter((node) => !node.unit.self)
    .map((node) => {
      const length = Math.hypot(node.x - cx, node.y - cy) || 1;
      const dx = ((node.x - cx) / length) * nodeRadius;
      const dy = ((node.y - cy) / length) * nodeRadius;
      return { from: self?.id ?? "", to: node.unit.id, x1: round(cx + dx), y1: round(cy + dy), x2: round(node.x - dx),
               y2: round(node.y - dy), state: node.unit.state };
    });
  return { width: fullWidth, height: Math.ceil(bottom - top + 2 * margin), cx, cy, radius: round(radius), nodes, links };
}

function round(value) {
  return Math.round(value * 10) / 10;
}

/** The line that says what state the mesh is in, or null when all is well. {kind: "info" | "warn", text}. */
export function describeMeshNotice(mesh) {
  if (!mesh) return null;
  if (mesh.key_error) {
    return { kind: "warn", text: `The stored mesh key is damaged (${mesh.key_error}). Create a mesh or join one again.` };
  }
  if (!mesh.key_set) {
    return {
      kind: "info",
      text: "This unit is in no mesh. Create one here, or join one with the key that another unit's admin page shows.",
    };
  }
  if (mesh.restart_needed) {
    return { kind: "warn", text: "The new mesh key is stored. The unit uses it once `iplm serve` restarts." };
  }
  if (!mesh.running) {
    return { kind: "info", text: "The mesh agent is not running: start `iplm serve` with `--mesh-address`." };
  }
  return null;
}

/** A summary of the mesh: "3 units online, 1 gone". */
export function describeMeshCount(units) {
  const peers = units.filter((unit) => !unit.self);
  const online = peers.filter((unit) => unit.state === "online").length;
  const gone = peers.length - online;
  if (!peers.length) return "no other unit heard yet";
  const parts = [`${online} other unit${online === 1 ? "" : "s"} online`];
  if (gone) parts.push(`${gone} gone`);
  return parts.join(", ");
}

/** What the picture and the table depend on: a new poll that changes none of it re-renders nothing. */
export function computeMeshKey(mesh) {
  if (!mesh) return "";
  const peers = Object.fromEntries(
    Object.entries(mesh.peers ?? {}).map(([id, { last_seen: _seen, ...peer }]) => [id, peer]),
  );
  // "3 min ago" texts: fresh enough when redrawn every 10 s.
  const { now, ...rest } = mesh;
  return JSON.stringify({ ...rest, peers, tick: typeof now === "number" ? Math.floor(now / 10) : null });
}

/** What is wrong with a typed mesh key, or null when it looks like one (the unit checks the rest). */
export function checkMeshKey(text) {
  const key = String(text ?? "").trim();
  if (!key) return "Paste or type the mesh key.";
  if (!key.toLowerCase().startsWith("iplm1-")) return "A mesh key starts with “iplm1-”.";
  return null;
}
