// Development mock of the portal: serves the built web app and fakes the conversation API in memory.
// Not used on a unit. Usage: npm run build && node scripts/mock-api.mjs [--port 8787] [--dist DIR]
// Prompts that trigger special replies:
//   "fail"  → 400 JSON error before any stream      "error" → stream error event after some text
//   "html"  → reply with raw HTML / script / javascript: links (must render inert)
//   "slow"  → slow stream (to try Stop)              "long"  → long Markdown reply
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const argValue = (name, fallback) => {
  const index = args.indexOf(name);
  return index !== -1 && args[index + 1] ? args[index + 1] : fallback;
};
const PORT = Number(argValue("--port", process.env.PORT || 8787));
const DIST = resolve(argValue("--dist", join(HERE, "..", "..", "appliance", "portal", "webui_dist")));

const UNIT = {
  name: "iplm-1a2b",
  engine: "llama.cpp",
  default_model: "SmolLM2-135M-Instruct-Q4_1",
  models: [
    { id: "SmolLM2-135M-Instruct-Q4_1", engine: "llama.cpp", n_ctx: 4096 },
    { id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", engine: "mlc", n_ctx: 8192 },
  ],
  defaults: { max_tokens: 512, temperature: 0.7, top_p: 0.95 },
  limits: { max_tokens: [1, 4096], temperature: [0, 2], top_p: [0, 1] },
};

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".webmanifest": "application/manifest+json",
  ".json": "application/json",
};

// conversations per anonymous cookie: Map<cookie, Map<id, conversation>>
const owners = new Map();

const nowIso = () => new Date().toISOString();
const newId = () => randomBytes(8).toString("hex");
const summarize = ({ messages: _messages, ...conversation }) => conversation;

function sendJson(res, status, body) {
  const text = body === null ? "" : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(text);
}

function sendError(res, status, message, code) {
  sendJson(res, status, { error: { message, code } });
}

function readCookie(req, res) {
  const match = /(?:^|;\s*)iplm_session=([0-9a-f]+)/.exec(req.headers.cookie || "");
  if (match) return match[1];
  const value = newId();
  res.setHeader("Set-Cookie", `iplm_session=${value}; HttpOnly; SameSite=Lax; Path=/`);
  return value;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return {};
  return JSON.parse(text);
}

function composeReply(content) {
  const lower = content.toLowerCase();
  if (lower.includes("html")) {
    return [
      "Here is some **raw HTML** the model produced:",
      "",
      '<script>document.body.dataset.pwned = "script"</script>',
      '<img src="x" onerror="document.body.dataset.pwned = \'img\'">',
      '<b onclick="alert(1)">bold via html</b> and <a href="javascript:alert(1)">a js link</a>.',
      "",
      "A [markdown js link](javascript:alert(1)), a [normal link](http://example.invalid/page) and an image:",
      "![remote image](http://example.invalid/tracker.png)",
    ].join("\n");
  }
  if (lower.includes("long")) {
    const items = Array.from({ length: 12 }, (_, i) => `${i + 1}. Point number ${i + 1} with \`code\` and *emphasis*.`);
    return ["# A long answer", "", ...items, "", "```python", "def greet(name):", '    return f"hello {name}"', "```", "", "| a | b |", "|---|---|", "| 1 | 2 |"].join("\n");
  }
  return [
    `You said: *${content.slice(0, 80)}*`,
    "",
    "This is a **mock** reply from `mock-api.mjs`. It streams in small pieces:",
    "",
    "- offline",
    "- decentralized",
    "- anonymous",
    "",
    "```js",
    "console.log('hello from the unit');",
    "```",
  ].join("\n");
}

function streamReply(req, res, conversation, content, params) {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
  });
  const lower = content.toLowerCase();
  const words = composeReply(content).match(/\S+\s*|\s+/g) ?? [];
  const limit = Math.min(words.length, params.max_tokens ?? Infinity);
  const failAt = lower.includes("error") ? Math.min(6, words.length) : -1;
  const delay = lower.includes("slow") ? 400 : 35;

  // The deltas (and an error, if asked for) as one SSE text, sent in pieces cut at random places,
  // mid-line too; LF and CRLF framing alternate to exercise the client's parser.
  let sse = ": mock stream\n\n";
  let text = "";
  for (let i = 0; i < limit; i += 1) {
    if (i === failAt) {
      sse += `data: ${JSON.stringify({ type: "error", error: { message: "The engine crashed (mock).", code: "engine_error" } })}\n\n`;
      break;
    }
    text += words[i];
    const eol = i % 2 ? "\r\n" : "\n";
    sse += `data: ${JSON.stringify({ type: "delta", text: words[i] })}${eol}${eol}`;
  }
  const failed = failAt !== -1 && failAt < limit;

  let offset = 0;
  let timer = null;
  let closed = false;
  res.on("close", () => {
    closed = true;
    clearTimeout(timer);
  });

  const finish = () => {
    if (failed) return res.end();
    // Saved only when the reply completes, like the portal; the done event carries the updated conversation.
    const message = {
      id: newId(),
      role: "assistant",
      content: text,
      created_at: nowIso(),
      finish_reason: limit < words.length ? "length" : "stop",
    };
    conversation.messages.push(message);
    conversation.updated_at = nowIso();
    const done = {
      type: "done",
      message,
      usage: { prompt_tokens: 12, completion_tokens: limit, total_tokens: 12 + limit },
      conversation: summarize(conversation),
    };
    return res.end(`data: ${JSON.stringify(done)}\n\n`);
  };

  const sendNext = () => {
    if (closed) return;
    if (offset >= sse.length) return finish();
    const size = 5 + Math.floor(Math.random() * 40);
    res.write(sse.slice(offset, offset + size));
    offset += size;
    timer = setTimeout(sendNext, delay);
  };
  sendNext();
}

function validateParams(params) {
  if (params === undefined) return null;
  if (typeof params !== "object" || params === null) return "params must be an object";
  for (const [name, value] of Object.entries(params)) {
    const limits = UNIT.limits[name];
    if (!limits) return `unknown parameter ${name}`;
    if (typeof value !== "number" || value < limits[0] || value > limits[1]) {
      return `${name} must be between ${limits[0]} and ${limits[1]}`;
    }
  }
  return null;
}

async function handleApi(req, res, url) {
  const cookie = readCookie(req, res);
  if (!owners.has(cookie)) owners.set(cookie, new Map());
  const mine = owners.get(cookie);
  const parts = url.pathname.split("/").filter(Boolean); // ["api", ...]

  if (parts[1] === "unit" && parts.length === 2 && req.method === "GET") return sendJson(res, 200, UNIT);

  if (parts[1] !== "conversations") return sendError(res, 404, "not found", "not_found");

  let body = {};
  if (req.method === "POST" || req.method === "PATCH") {
    try {
      body = await readBody(req);
    } catch {
      return sendError(res, 400, "body is not JSON", "bad_json");
    }
  }

  if (parts.length === 2) {
    if (req.method === "GET") {
      const list = [...mine.values()].map(summarize).sort((a, b) => b.updated_at.localeCompare(a.updated_at));
      return sendJson(res, 200, { conversations: list });
    }
    if (req.method === "POST") {
      const model = body.model ?? UNIT.default_model;
      if (!UNIT.models.some((m) => m.id === model)) return sendError(res, 400, `unknown model ${model}`, "bad_model");
      const at = nowIso();
      const conversation = { id: newId(), title: body.title ?? "", model, created_at: at, updated_at: at, messages: [] };
      mine.set(conversation.id, conversation);
      return sendJson(res, 201, summarize(conversation));
    }
    return sendError(res, 405, "method not allowed", "method");
  }

  const conversation = mine.get(parts[2]);
  if (!conversation) return sendError(res, 404, "no such conversation", "not_found");

  if (parts.length === 3) {
    if (req.method === "GET") return sendJson(res, 200, conversation);
    if (req.method === "PATCH") {
      if (typeof body.title !== "string" || !body.title.trim()) return sendError(res, 400, "title required", "bad_title");
      conversation.title = body.title.trim().slice(0, 200);
      conversation.updated_at = nowIso();
      return sendJson(res, 200, summarize(conversation));
    }
    if (req.method === "DELETE") {
      mine.delete(conversation.id);
      res.writeHead(204);
      return res.end();
    }
    return sendError(res, 405, "method not allowed", "method");
  }

  if (parts.length === 4 && parts[3] === "messages" && req.method === "POST") {
    const content = typeof body.content === "string" ? body.content.trim() : "";
    if (!content) return sendError(res, 400, "content must be a non-empty string", "bad_content");
    if (content.toLowerCase().includes("fail")) return sendError(res, 400, "The unit refused this message (mock).", "refused");
    const problem = validateParams(body.params);
    if (problem) return sendError(res, 400, problem, "bad_params");
    if (body.model) conversation.model = body.model;
    conversation.messages.push({ id: newId(), role: "user", content, created_at: nowIso(), finish_reason: null });
    if (!conversation.title) conversation.title = content.slice(0, 48);
    return streamReply(req, res, conversation, content, body.params ?? {});
  }
  return sendError(res, 404, "not found", "not_found");
}

async function serveStatic(req, res, url) {
  let path = decodeURIComponent(url.pathname);
  if (path === "/") path = "/index.html";
  const file = normalize(join(DIST, path));
  if (!file.startsWith(DIST)) return sendError(res, 403, "forbidden", "forbidden");
  try {
    if (!(await stat(file)).isFile()) throw new Error("not a file");
    const data = await readFile(file);
    const cache = path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] || "application/octet-stream", "Cache-Control": cache });
    res.end(data);
  } catch {
    sendError(res, 404, "not found", "not_found");
  }
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  const handler = url.pathname.startsWith("/api/") ? handleApi : serveStatic;
  handler(req, res, url).catch((error) => {
    console.error(error);
    if (!res.headersSent) sendError(res, 500, "mock crashed", "internal");
    else res.end();
  });
});

server.listen(PORT, "127.0.0.1", () => {
  console.log(`mock iplm portal on http://127.0.0.1:${PORT}/ serving ${DIST}`);
});
