// node --test tests/sse.test.mjs — the SSE parser must survive any split of the stream.
import assert from "node:assert/strict";
import test from "node:test";

import { createSseParser } from "../src/sse.js";

const STREAM =
  ': keep-alive\n\n' +
  'data: {"type":"delta","text":"Hel"}\n\n' +
  'data: {"type":"delta","text":"lo\\n"}\r\n\r\n' +
  'data: {"type":"delta",\ndata: "text":"!"}\r\r' +
  'data: {"type":"done","message":{"content":"Hello\\n!"}}\n\n';

const EXPECTED = [
  { type: "delta", text: "Hel" },
  { type: "delta", text: "lo\n" },
  { type: "delta", text: "!" },
  { type: "done", message: { content: "Hello\n!" } },
];

function parseInPieces(pieces) {
  const events = [];
  const parser = createSseParser((event) => events.push(event));
  for (const piece of pieces) parser.push(piece);
  parser.end();
  return events;
}

test("whole stream at once", () => {
  assert.deepEqual(parseInPieces([STREAM]), EXPECTED);
});

test("one character at a time", () => {
  assert.deepEqual(parseInPieces([...STREAM]), EXPECTED);
});

test("every two-way split", () => {
  for (let i = 0; i <= STREAM.length; i += 1) {
    assert.deepEqual(parseInPieces([STREAM.slice(0, i), STREAM.slice(i)]), EXPECTED, `split at ${i}`);
  }
});

test("last event without trailing blank line is flushed by end()", () => {
  assert.deepEqual(parseInPieces(['data: {"type":"done"}']), [{ type: "done" }]);
});

test("non-JSON data is passed on as raw", () => {
  assert.deepEqual(parseInPieces(["data: [DONE]\n\n"]), [{ type: "raw", data: "[DONE]" }]);
});
