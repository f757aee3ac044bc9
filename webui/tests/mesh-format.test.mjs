// node --test tests/mesh-format.test.mjs — the Mesh section's pure helpers and its QR code.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import test from "node:test";

import {
  buildHoldings,
  checkMeshKey,
  computeMeshKey,
  computePiecePercent,
  describeBadges,
  describeHolding,
  describeLoad,
  describeMeshCount,
  describeMeshNotice,
  describePeerState,
  describeUnitLines,
  formatAgo,
  layoutMeshMap,
  listUnits,
  MAP_MIN_WIDTH,
  MAP_SIZES,
  measureLabel,
  shortenModelId,
} from "../src/mesh-format.js";
import { buildQrPath } from "../src/mesh-qr.js";

const jsQR = createRequire(import.meta.url)("jsqr");

const KEY = "iplm1-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypstrxwgq"; // create_mesh_key(bytes(range(32)))

const MESH = {
  mesh_id: "0123456789abcdef",
  self: "node-a",
  running: true,
  key_set: true,
  key_error: null,
  restart_needed: false,
  now: 1000,
  unit: {
    name: "iplm-aaaa",
    engine: "llama.cpp",
    load: { workers: 1, busy: 0, queued: 0 },
    models: [{ id: "SmolLM2-135M-Instruct-Q4_1", state: "installed" }],
  },
  peers: {
    "node-c": {
      state: "gone",
      name: "iplm-cccc",
      engine: "mlc",
      load: {},
      reason: "silent",
      since: 880,
      last_seen: 870,
      models: [{ id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", state: "installed" }],
    },
    "node-b": {
      state: "online",
      name: "iplm-bbbb",
      engine: "mlc",
      load: { workers: 2, busy: 2, queued: 3 },
      last_seen: 999,
      models: [
        { id: "SmolLM2-135M-Instruct-Q4_1", state: "installed" },
        { id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", state: "partial", pieces: { held: 41, total: 100 } },
        { id: "Odd", state: "available" },
      ],
    },
    "node-d": { state: "online", name: "", engine: "llama.cpp", load: null, models: [] },
  },
};

test("computePiecePercent", () => {
  assert.equal(computePiecePercent({ held: 41, total: 100 }), 41);
  assert.equal(computePiecePercent({ held: 999, total: 1000 }), 99);
  assert.equal(computePiecePercent({ held: 10, total: 10 }), 100);
  assert.equal(computePiecePercent({ held: 0, total: 0 }), null);
  assert.equal(computePiecePercent(undefined), null);
});

test("shortenModelId keeps family and size", () => {
  assert.equal(shortenModelId("Qwen2.5-0.5B-Instruct-q4f16_1-MLC"), "Qwen2.5-0.5B");
  assert.equal(shortenModelId("SmolLM2-135M-Instruct-Q4_1"), "SmolLM2-135M");
  assert.equal(shortenModelId("Phi-3.5-mini-instruct-q4f16_1-MLC"), "Phi-3.5-mini");
  assert.equal(shortenModelId("Mistral-7B-v0.3-q4f16_1-MLC"), "Mistral-7B-v0.3");
  assert.equal(shortenModelId("Toy-MLC"), "Toy-MLC");
  assert.equal(shortenModelId("a-very-long-model-name-without-tags"), "a-very-long-mod…");
});

test("describeLoad", () => {
  assert.equal(describeLoad({ workers: 1, busy: 0, queued: 0 }), "idle");
  assert.equal(describeLoad({ workers: 2, busy: 1, queued: 0 }), "1/2 busy");
  assert.equal(describeLoad({ workers: 2, busy: 2, queued: 3 }), "2/2 busy · 3 queued");
  assert.equal(describeLoad({}), "");
  assert.equal(describeLoad(null), "");
});

test("formatAgo and describePeerState", () => {
  assert.equal(formatAgo(4.4), "4 s ago");
  assert.equal(formatAgo(125), "2 min ago");
  assert.equal(formatAgo(7300), "2 h ago");
  assert.equal(formatAgo(undefined), "");
  assert.equal(describePeerState({ state: "online" }, 1000), "online");
  assert.equal(describePeerState({ state: "gone", reason: "silent", since: 880 }, 1000), "gone: silent, 2 min ago");
  assert.equal(describePeerState({ state: "gone", reason: "left" }), "gone: left");
  assert.equal(describePeerState({ self: true }), "this unit");
});

test("describeUnitLines: engine, then load or why it is gone", () => {
  assert.deepEqual(describeUnitLines({ self: true, engine: "mlc", load: { workers: 2, busy: 1 } }), ["MLC LLM", "1/2 busy"]);
  assert.deepEqual(describeUnitLines({ state: "online", engine: "llama.cpp", load: {} }), ["llama.cpp", ""]);
  assert.deepEqual(describeUnitLines({ state: "gone", engine: "mlc", reason: "will", since: 990 }), ["MLC LLM", "gone: lost"]);
});

test("listUnits: this unit first, then online peers by name, then gone ones", () => {
  const units = listUnits(MESH);
  assert.deepEqual(
    units.map((unit) => [unit.id, unit.state, unit.name]),
    [
      ["node-a", "online", "iplm-aaaa"],
      ["node-b", "online", "iplm-bbbb"],
      ["node-d", "online", "node-d"], // no name: its node id
      ["node-c", "gone", "iplm-cccc"],
    ],
  );
  assert.equal(units[0].self, true);
  assert.deepEqual(
    units[1].models.map((model) => model.id),
    ["SmolLM2-135M-Instruct-Q4_1", "Qwen2.5-0.5B-Instruct-q4f16_1-MLC"], // "available" is not held
  );
  const lonely = listUnits({ self: "x", unit: null, peers: {} });
  assert.equal(lonely.length, 1);
  assert.equal(lonely[0].name, "This unit");
  assert.equal(listUnits({ self: "x", peers: { x: { state: "online" } } }).length, 1); // never twice
});

function makePeers(count) {
  return Object.fromEntries(
    [...Array(count)].map((_, i) => [
      `n${i}`,
      { state: "online", name: `iplm-${i}`, models: [{ id: "Llama-3.2-1B-Instruct-q4f16_1-MLC", state: "partial" }] },
    ]),
  );
}

function boxes(map) {
  // Each unit's dot and label block as rectangles.
  const { nodeRadius, labelHalfWidth } = MAP_SIZES;
  return map.nodes.map((node) => {
    const labelBottom = node.labelY + measureLabel(node.unit);
    return {
      id: node.unit.id,
      dot: [node.x - nodeRadius, node.y - nodeRadius, node.x + nodeRadius, node.y + nodeRadius],
      label: [node.x - labelHalfWidth, node.labelY, node.x + labelHalfWidth, labelBottom],
    };
  });
}

const overlaps = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];

test("layoutMeshMap: the centre, then the peers evenly on a circle from the top, inside the picture", () => {
  const units = listUnits(MESH);
  const map = layoutMeshMap(units, { width: 440 });
  assert.equal(map.nodes.length, 4);
  assert.deepEqual([map.nodes[0].x, map.nodes[0].y], [map.cx, map.cy]);
  assert.equal(map.cx, 220);
  const peers = map.nodes.slice(1);
  const angles = peers.map((node) => Math.atan2(node.y - map.cy, node.x - map.cx));
  assert.ok(Math.abs(angles[0] + Math.PI / 2) < 0.01, "three peers: the first is straight above");
  assert.equal(peers[0].labelsAbove, true, "its labels stand over it, away from the centre");
  for (const node of peers) {
    assert.ok(Math.abs(Math.hypot(node.x - map.cx, node.y - map.cy) - map.radius) < 0.2, "on the circle");
  }
  const step = (2 * Math.PI) / 3;
  const turn = (a, b) => (b - a + 2 * Math.PI) % (2 * Math.PI);
  assert.ok(Math.abs(turn(angles[0], angles[1]) - step) < 0.01 && Math.abs(turn(angles[1], angles[2]) - step) < 0.01);
  assert.deepEqual(
    map.links.map((link) => [link.to, link.state]),
    [
      ["node-b", "online"],
      ["node-d", "online"],
      ["node-c", "gone"],
    ],
  );
  for (const [index, link] of map.links.entries()) {
    // From the centre's dot edge to the peer's, along the line between their centres.
    const peer = peers[index];
    assert.ok(Math.abs(Math.hypot(link.x1 - map.cx, link.y1 - map.cy) - MAP_SIZES.nodeRadius) < 0.2);
    assert.ok(Math.abs(Math.hypot(link.x2 - peer.x, link.y2 - peer.y) - MAP_SIZES.nodeRadius) < 0.2);
    const cross = (link.x2 - link.x1) * (peer.y - map.cy) - (link.y2 - link.y1) * (peer.x - map.cx);
    assert.ok(Math.abs(cross) < 50, "on the line between the centres");
  }
});

test("layoutMeshMap: an even count turns half a step, so that no unit sits on the centre's labels", () => {
  const map = layoutMeshMap(listUnits({ self: "x", peers: makePeers(4) }), { width: 440 });
  const below = map.nodes.slice(1).filter((node) => Math.abs(node.x - map.cx) < 1 && node.y > map.cy);
  assert.deepEqual(below, []);
  const two = layoutMeshMap(listUnits({ self: "x", peers: makePeers(2) }), { width: 440 });
  assert.deepEqual(
    two.nodes.slice(1).map((node) => node.y),
    [two.cy, two.cy],
    "two peers: left and right",
  );
});

for (const width of [MAP_MIN_WIDTH, 440, 480]) {
  for (const count of [0, 1, 2, 3, 4, 5, 6]) {
    test(`layoutMeshMap: ${count} peers at ${width} wide fit, and no label covers another unit`, () => {
      const units = listUnits({ self: "x", unit: { name: "iplm-x", models: makePeers(1).n0.models }, peers: makePeers(count) });
      const map = layoutMeshMap(units, { width });
      assert.ok(map.width >= width && map.width <= Math.max(width, 380), `width ${map.width}`);
      assert.equal(map.nodes.length, count + 1);
      assert.equal(map.links.length, count);
      const all = boxes(map);
      for (const box of all) {
        for (const rect of [box.dot, box.label]) {
          assert.ok(rect[0] >= 0 && rect[2] <= map.width, `${box.id} fits across: ${rect}`);
          assert.ok(rect[1] >= 0 && rect[3] <= map.height, `${box.id} fits down: ${rect}`);
        }
      }
      // Up to six peers, even at the narrowest width, nothing overlaps at all.
      if (count <= 6) {
        for (const a of all) {
          for (const b of all) {
            if (a === b) continue;
            assert.ok(!overlaps(a.label, b.label), `labels of ${a.id} and ${b.id}`);
            assert.ok(!overlaps(a.label, b.dot), `label of ${a.id} on the dot of ${b.id}`);
          }
        }
      }
    });
  }
}

test("describeHolding and describeBadges", () => {
  assert.deepEqual(describeHolding({ state: "installed" }), { kind: "installed", text: "installed", percent: 100 });
  assert.deepEqual(describeHolding({ state: "partial", pieces: { held: 1, total: 4 } }), {
    kind: "partial",
    text: "25%",
    percent: 25,
  });
  assert.equal(describeHolding({ state: "partial" }).text, "partial");
  assert.deepEqual(describeHolding(undefined), { kind: "none", text: "—", percent: null });

  const badges = describeBadges(listUnits(MESH)[1].models);
  assert.deepEqual(
    badges.map((badge) => [badge.kind, badge.text]),
    [
      ["installed", "SmolLM2-135M"],
      ["partial", "Qwen2.5-0.5B 41%"],
    ],
  );
  const many = ["a", "b", "c", "d", "e"].map((id) => ({ id, state: "installed" }));
  assert.deepEqual(
    describeBadges(many).map((badge) => badge.text),
    ["a", "b", "+3 more"],
  );
  assert.equal(describeBadges(many).at(-1).title, "c, d, e");
});

test("buildHoldings: rows are models, columns are units", () => {
  const holdings = buildHoldings(listUnits(MESH));
  assert.deepEqual(
    holdings.units.map((unit) => unit.name),
    ["iplm-aaaa", "iplm-bbbb", "node-d", "iplm-cccc"],
  );
  assert.deepEqual(
    holdings.rows.map((row) => [row.model, ...row.cells.map((cell) => cell.text)]),
    [
      ["Qwen2.5-0.5B-Instruct-q4f16_1-MLC", "—", "41%", "—", "installed"],
      ["SmolLM2-135M-Instruct-Q4_1", "installed", "installed", "—", "—"],
    ],
  );
  assert.equal(holdings.rows[0].cells[1].unit, "node-b");
  assert.deepEqual(buildHoldings(listUnits({ self: "x", peers: {} })).rows, []);
});

test("describeMeshNotice and describeMeshCount", () => {
  assert.equal(describeMeshNotice(MESH), null);
  assert.match(describeMeshNotice({ key_set: false }).text, /no mesh/);
  assert.match(describeMeshNotice({ key_set: true, key_error: "bad" }).text, /damaged/);
  assert.match(describeMeshNotice({ key_set: true, restart_needed: true }).text, /restarts/);
  assert.match(describeMeshNotice({ key_set: true, running: false }).text, /--mesh-address/);
  assert.equal(describeMeshCount(listUnits(MESH)), "2 other units online, 1 gone");
  assert.equal(describeMeshCount(listUnits({ self: "x", peers: {} })), "no other unit heard yet");
});

test("computeMeshKey ignores heartbeats, not changes", () => {
  const beat = structuredClone(MESH);
  beat.peers["node-b"].last_seen = 1001;
  beat.now = 1002;
  assert.equal(computeMeshKey(beat), computeMeshKey(MESH));
  const changed = structuredClone(MESH);
  changed.peers["node-b"].state = "gone";
  assert.notEqual(computeMeshKey(changed), computeMeshKey(MESH));
  assert.notEqual(computeMeshKey({ ...MESH, now: 1030 }), computeMeshKey(MESH)); // "ago" texts move on
});

test("checkMeshKey", () => {
  assert.equal(checkMeshKey(KEY), null);
  assert.equal(checkMeshKey(` ${KEY.toUpperCase()} `), null);
  assert.match(checkMeshKey(""), /Paste/);
  assert.match(checkMeshKey("hello"), /iplm1-/);
});

function renderModules({ size, path }, scale = 4) {
  // Paint the path's rectangles ("M x y h w v1 h-w z") into RGBA pixels, as a camera would see the code.
  const width = size * scale;
  const pixels = new Uint8ClampedArray(width * width * 4).fill(255);
  for (const [, x, y, w] of path.matchAll(/M(\d+) (\d+)h(\d+)v1h-\d+z/g)) {
    for (let py = Number(y) * scale; py < (Number(y) + 1) * scale; py += 1) {
      for (let px = Number(x) * scale; px < (Number(x) + Number(w)) * scale; px += 1) {
        pixels.fill(0, (py * width + px) * 4, (py * width + px) * 4 + 3);
      }
    }
  }
  return { pixels, width };
}

test("buildQrPath: a mesh key becomes a compact code that reads back as the key", () => {
  const qr = buildQrPath(KEY);
  assert.equal(qr.text, KEY.toUpperCase());
  assert.equal(qr.modules, 33, "version 4: the alphanumeric mode keeps it small");
  assert.equal(qr.size, 41);
  assert.match(qr.path, /^(M\d+ \d+h\d+v1h-\d+z)+$/);
  const { pixels, width } = renderModules(qr);
  const read = jsQR(pixels, width, width);
  assert.ok(read, "a QR reader finds the code");
  assert.equal(read.data.toLowerCase(), KEY);
});

test("buildQrPath: other text goes in byte mode, unchanged", () => {
  const qr = buildQrPath("hello, mesh");
  assert.equal(qr.text, "hello, mesh");
  const { pixels, width } = renderModules(qr);
  assert.equal(jsQR(pixels, width, width).data, "hello, mesh");
});
