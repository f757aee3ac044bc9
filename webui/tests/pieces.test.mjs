import assert from "node:assert/strict";
import test from "node:test";

import { describePieces, startPieces, updatePieces } from "../src/pieces.js";

test("a plan starts one waiting piece per title", () => {
  const pieces = startPieces({ type: "plan", pieces: ["Moon", "Mars"] });
  assert.deepEqual(
    pieces.map((piece) => [piece.title, piece.state]),
    [
      ["Moon", "waiting"],
      ["Mars", "waiting"],
    ],
  );
});

test("a plan that does not fit shows no pieces", () => {
  assert.deepEqual(startPieces({ type: "plan", pieces: "Moon" }), []);
  assert.deepEqual(startPieces({ type: "plan", pieces: ["only one"] }), []);
  assert.deepEqual(startPieces({ type: "plan", pieces: Array(7).fill("x") }), []);
});

test("piece events fill their own piece only, and a restart clears it", () => {
  let pieces = startPieces({ type: "plan", pieces: ["A", "B"] });
  pieces = updatePieces(pieces, { type: "piece", index: 1, text: "", unit: "kitchen" });
  pieces = updatePieces(pieces, { type: "piece", index: 1, text: "Hello " });
  pieces = updatePieces(pieces, { type: "piece", index: 1, text: "there" });
  assert.equal(pieces[1].text, "Hello there");
  assert.equal(pieces[1].unit, "kitchen");
  assert.equal(pieces[1].state, "running");
  assert.equal(pieces[0].text, "");
  pieces = updatePieces(pieces, { type: "piece", index: 1, text: "", finish_reason: "restarted" });
  assert.deepEqual([pieces[1].text, pieces[1].unit, pieces[1].state], ["", "", "waiting"]);
  pieces = updatePieces(pieces, { type: "piece", index: 1, text: "Again", finish_reason: "stop" });
  assert.deepEqual([pieces[1].text, pieces[1].state], ["Again", "done"]);
});

test("events for pieces that do not exist change nothing", () => {
  const pieces = startPieces({ type: "plan", pieces: ["A", "B"] });
  for (const index of [-1, 2, 0.5, "0", null]) {
    assert.equal(updatePieces(pieces, { type: "piece", index, text: "x" }), pieces);
  }
});

test("the summary names where the pieces ran and what failed", () => {
  let pieces = startPieces({ type: "plan", pieces: ["A", "B", "C"] });
  pieces = updatePieces(pieces, { index: 0, unit: "attic", finish_reason: "stop" });
  pieces = updatePieces(pieces, { index: 1, finish_reason: "stop" });
  pieces = updatePieces(pieces, { index: 2, finish_reason: "failed" });
  assert.equal(describePieces(pieces), "Answered in 3 pieces side by side, on 2 units; 1 could not be answered");
});
