// Development mock of the portal: serves the built web app and fakes the conversation and admin APIs in memory.
// Not used on a unit. Usage: npm run build && node scripts/mock-api.mjs [--port 8787] [--dist DIR] [--pin 123456]
//   [--signed-in]  every phone is already admin (for screenshots)   [--install-seconds 8]  length of a fake install
//   [--demo]  an install is running from the start and one has failed
//   [--captive [URL]]  answer /captive-portal/api as a unit on its own Wi-Fi does (portal URL http://198.18.0.1/)
//   [--no-mesh]  the unit starts in no mesh (no key, no agent); by default it is in a mesh of 4 peers whose
//   states change over time (one comes and goes every 20 s, one is gone, installs progress, loads vary)
// Admin: PIN 123456; fake installs progress over a few seconds; Phi-3.5 fails part-way; MLC models cannot
// serve chats here (409, as on a unit without MLC LLM); GGUF models can.
// Prompts that trigger special replies:
//   "fail"  → 400 JSON error before any stream      "error" → stream error event after some text
//   "html"  → reply with raw HTML / script / javascript: links (must render inert)
//   "slow"  → slow stream (to try Stop)              "long"  → long Markdown reply
// With "think": true (the "Think deeply" setting): a prompt with the word "he" or "it" gets a clarifying
// question with one-tap choices; any other gets thinking steps with a growing reasoning graph, then its reply.
import { createServer } from "node:http";
import { createHash, hkdfSync, randomBytes } from "node:crypto";
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
const ALWAYS_ADMIN = args.includes("--signed-in");
const DEMO = args.includes("--demo");
const NO_MESH = args.includes("--no-mesh");
const CAPTIVE_PORTAL_URL = args.includes("--captive")
  ? (argValue("--captive", "").startsWith("http") ? argValue("--captive", "") : "http://198.18.0.1/")
  : null;

const UNIT = {
  name: "iplm-1a2b",
  engine: "llama.cpp",
  default_model: "SmolLM2-135M-Instruct-Q4_1",
  models: [
    { id: "SmolLM2-135M-Instruct-Q4_1", engine: "llama.cpp", n_ctx: 4096 },
    { id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", engine: "mlc", n_ctx: 8192 },
  ],
  defaults: { max_tokens: 512, temperature: 0.7, top_p: 0.95, max_calls: 9, max_seconds: 150 },
  limits: { max_tokens: [1, 4096], temperature: [0, 2], top_p: [0, 1], max_calls: [1, 16], max_seconds: [5, 600] },
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

// A think flow: the thinking events to send first, and the clarifying question (or null) the reply is.
function composeThinking(content) {
  const nodes = [];
  const edges = [];
  const snapshot = () => ({ nodes: nodes.map((node) => ({ ...node })), edges: edges.map((edge) => ({ ...edge })) });
  const add = (id, kind, label, state, from) => {
    nodes.push({ id, kind, label, state });
    if (from) edges.push({ from, to: id });
  };
  const set = (id, state, detail) => Object.assign(nodes.find((node) => node.id === id), { state }, detail ? { detail } : {});
  const events = [];
  const step = (name, detail) => events.push({ type: "thinking", step: name, detail, graph: snapshot() });

  add("goal", "goal", content.slice(0, 200), "running");
  step("analysing", "Working out what you want");
  if (/\b(he|it)\b/i.test(content)) {
    add("a1", "aspect", "Who or what is meant", "running", "goal");
    step("analysing", "Working out what you want (3 readings)");
    set("a1", "failed", "Three readings, none clearly the most likely");
    set("goal", "pending");
    step("asking", "Asking what you meant");
    const clarify = { question: "Who or what do you mean?", choices: ["The person I named before", "The thing I asked about", "Something else"] };
    return { events, clarify, graph: snapshot() };
  }
  add("a1", "aspect", "What the question asks", "done", "goal");
  add("a2", "aspect", "How much detail is wanted", "done", "goal");
  step("analysing", "Working out what you want (2 aspects)");
  add("c1", "candidate", "A short direct answer with an example", "running", "a1");
  add("c2", "candidate", "A longer answer that covers every case in some depth, with a long label to truncate", "running", "a2");
  edges.push({ from: "a1", to: "c2" });
  step("exploring", "Exploring 2 candidate answers");
  set("c1", "done");
  set("c2", "done");
  add("k1", "check", "Does it answer the question?", "running", "c1");
  add("k2", "check", "Is it consistent?", "running", "c2");
  step("checking", "Checking the candidates");
  set("k1", "done");
  set("k2", "failed", "Contradicts itself in the second part");
  set("c1", "chosen");
  set("c2", "rejected");
  step("converging", "Choosing the best candidate");
  add("ans", "answer", "The answer", "running", "c1");
  set("goal", "done");
  step("answering", "Writing the answer");
  set("ans", "done");
  return { events, clarify: null, graph: snapshot() };
}

function streamReply(req, res, conversation, content, params, think = false) {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
  });
  const lower = content.toLowerCase();
  const thinking = think ? composeThinking(content) : null;
  const reply = thinking?.clarify ? thinking.clarify.question : composeReply(content);
  const words = reply.match(/\S+\s*|\s+/g) ?? [];
  const limit = Math.min(words.length, params.max_tokens ?? Infinity);
  const failAt = lower.includes("error") ? Math.min(6, words.length) : -1;
  const delay = lower.includes("slow") ? 400 : 35;

  // The deltas (and an error, if asked for) as one SSE text, sent in pieces cut at random places,
  // mid-line too; LF and CRLF framing alternate to exercise the client's parser.
  let sse = ": mock stream\n\n";
  let text = "";
  // Thinking events go whole, one every 0.7 s, before the text (a clarify event right before its question).
  const steps = (thinking?.events ?? []).map((event) => `data: ${JSON.stringify(event)}\n\n`);
  if (thinking?.clarify) sse += `data: ${JSON.stringify({ type: "clarify", ...thinking.clarify })}\n\n`;
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
    if (thinking) message.thinking = { graph: thinking.graph, clarify: thinking.clarify };
    conversation.messages.push(message);
    conversation.updated_at = nowIso();
    const done = {
      type: "done",
      message,
      graph: thinking?.graph ?? null,
      clarify: thinking?.clarify ?? null,
      usage: { prompt_tokens: 12, completion_tokens: limit, total_tokens: 12 + limit },
      conversation: summarize(conversation),
    };
    return res.end(`data: ${JSON.stringify(done)}\n\n`);
  };

  const sendNext = () => {
    if (closed) return;
    if (steps.length > 0) {
      res.write(steps.shift());
      timer = setTimeout(sendNext, 700);
      return;
    }
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
  if (url.pathname.startsWith("/api/admin/")) return handleAdmin(req, res, url);
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
    return streamReply(req, res, conversation, content, body.params ?? {}, body.think === true);
  }
  return sendError(res, 404, "not found", "not_found");
}

// ---------- admin ----------

const MB = 1000 ** 2;
const GIB = 1024 ** 3;
const UNIT_MEMORY = 4 * GIB;
const INSTALL_SECONDS = Number(argValue("--install-seconds", 8));
const admin = {
  pin: argValue("--pin", "123456"),
  sessions: new Set(),
  failures: [], // times of recent wrong PINs (one list for the whole mock)
  diskFree: 3.2 * 1000 ** 3,
};

const fakeHash = () => randomBytes(32).toString("hex");

function mockModel(id, format, sizeMb, license, minMemoryGib, description, extra = {}) {
  return {
    id,
    format,
    engine: format === "mlc" ? "mlc" : "llama.cpp",
    state: "available",
    size_bytes: Math.round(sizeMb * MB),
    done_bytes: 0,
    license,
    min_memory_bytes: minMemoryGib * GIB,
    boards: format === "mlc" ? ["jetson-orin", "rk3588"] : ["generic-x86_64", "generic-aarch64", "jetson-orin", "rk3588"],
    root_hash: null,
    pinned_by: null,
    source_revision: null,
    description,
    embedded: false,
    job: null,
    ...extra,
  };
}

const MODELS = [
  mockModel("SmolLM2-135M-Instruct-Q4_1", "gguf", 98.362432, "Apache-2.0", 1, "The embedded default: tiny, fast on any CPU, for short answers.", {
    state: "installed",
    done_bytes: 98_362_432,
    root_hash: "b7c3d6907564b901bb5faa516cc5608abb1d02259e84cc0a05a248998572acd9",
    pinned_by: "whitelist",
    source_revision: "main",
    embedded: true,
  }),
  mockModel("Qwen2.5-0.5B-Instruct-q4f16_1-MLC", "mlc", 280, "Apache-2.0", 2, "Small multilingual assistant; fast on every board.", {
    state: "installed",
    done_bytes: 280 * MB,
    root_hash: fakeHash(),
    pinned_by: "first-install",
    source_revision: "5f2b3c1e9a7d4b6c8e0f1a2b3c4d5e6f7a8b9c0d",
  }),
  mockModel("Llama-3.2-1B-Instruct-q4f16_1-MLC", "mlc", 700, "Llama 3.2 Community License", 4, "Meta's small assistant.", {
    state: "partial",
    done_bytes: 296 * MB,
    root_hash: fakeHash(),
    pinned_by: "first-install",
    source_revision: "main",
  }),
  mockModel("Qwen2.5-1.5B-Instruct-Q4_K_M", "gguf", 986, "Apache-2.0", 2, "Multilingual assistant on the CPU engine."),
  mockModel("SmolLM2-360M-Instruct-q4f16_1-MLC", "mlc", 210, "Apache-2.0", 2, "Very small English assistant."),
  mockModel("Phi-3.5-mini-instruct-q4f16_1-MLC", "mlc", 2180, "MIT", 8, "Microsoft's 3.8B model; reasoning and code. (mock: its install fails part-way)"),
  mockModel("Llama-3.2-3B-Instruct-q4f16_1-MLC", "mlc", 1820, "Llama 3.2 Community License", 6, "Meta's mid-size assistant."),
];
for (const model of MODELS) model.fits = model.min_memory_bytes <= UNIT_MEMORY;

const describeModels = () => ({
  models: MODELS.map((model) => ({ ...model, job: model.job ? { ...model.job } : null })),
  default_model: UNIT.default_model,
  disk_free_bytes: Math.round(admin.diskFree),
});

function sendAdminError(res, status, message, code, param = null) {
  sendJson(res, status, { error: { message, type: status === 401 ? "authentication_error" : "invalid_request_error", param, code } });
}

function isAdmin(req) {
  if (ALWAYS_ADMIN) return true;
  const match = /(?:^|;\s*)iplm_admin=([0-9a-f]+)/.exec(req.headers.cookie || "");
  return Boolean(match && admin.sessions.has(match[1]));
}

function startFakeInstall(model) {
  const total = model.size_bytes;
  const rate = total / INSTALL_SECONDS;
  const failAt = model.id.startsWith("Phi-3.5") ? total * 0.35 : Infinity;
  if (!model.root_hash) model.root_hash = null; // pinned when the manifest arrives (first tick)
  model.job = {
    model: model.id,
    state: "running",
    done_bytes: model.done_bytes,
    total_bytes: total,
    rate_bps: 0,
    eta_s: null,
    rejected_pieces: 0,
    error: null,
  };
  let ticks = 0;
  const timer = setInterval(() => {
    const job = model.job;
    if (!job || job.state !== "running") return clearInterval(timer);
    ticks += 1;
    if (ticks === 1 && !model.root_hash) {
      model.root_hash = fakeHash();
      model.pinned_by = "first-install";
      model.source_revision = "main";
    }
    if (ticks < 3) return; // "connecting": no rate yet
    const step = rate * (0.75 + Math.random() * 0.5) * 0.5;
    const done = Math.min(total, job.done_bytes + step);
    admin.diskFree -= done - job.done_bytes;
    job.done_bytes = Math.round(done);
    job.rate_bps = step * 2;
    job.eta_s = (total - done) / (step * 2);
    model.state = "partial";
    model.done_bytes = job.done_bytes;
    if (ticks % 7 === 0 && model.id.startsWith("Llama")) job.rejected_pieces += 1;
    if (done >= failAt) {
      Object.assign(job, {
        state: "failed",
        rate_bps: 0,
        eta_s: null,
        error: { code: "piece_rejected", message: "Piece 41 of model.bin failed verification 3 times; no source has a good copy." },
      });
    } else if (done >= total) {
      Object.assign(job, { state: "installed", rate_bps: 0, eta_s: 0 });
      model.state = "installed";
    }
  }, 500);
}

// ---------- mesh ----------
// The key's text form and the mesh id are computed as the unit does (create_mesh_key, derive_mesh_secrets),
// so a key made here joins a real unit and the other way round.

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const KEY_PREFIX = "iplm1-";

function encodeBase32(bytes) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

function decodeBase32(text) {
  let bits = 0;
  let value = 0;
  const out = [];
  for (const char of text) {
    value = (value << 5) | BASE32.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

const checksumOf = (secret) =>
  createHash("sha256").update(Buffer.concat([Buffer.from("iplm1 mesh key checksum\0"), secret])).digest().subarray(0, 4);

const makeMeshKey = (secret = randomBytes(32)) =>
  KEY_PREFIX + encodeBase32(Buffer.concat([secret, checksumOf(secret)])).toLowerCase();

/** The secret of a typed key, or {error, code} as parse_mesh_key says it. */
function parseMeshKey(text) {
  const cleaned = String(text ?? "").trim();
  if (!cleaned.toLowerCase().startsWith(KEY_PREFIX)) {
    return { code: "bad_prefix", error: `a mesh key starts with '${KEY_PREFIX}'` };
  }
  const body = [...cleaned.slice(KEY_PREFIX.length)].filter((c) => !" -\t\n".includes(c)).join("").toUpperCase();
  const wrong = [...new Set([...body].filter((c) => !BASE32.includes(c)))].sort().join("");
  if (wrong) return { code: "bad_characters", error: `a mesh key has only letters a-z and digits 2-7 after '${KEY_PREFIX}'; found '${wrong}'` };
  if (body.length !== 58) {
    return { code: "bad_length", error: `a mesh key has 58 characters after '${KEY_PREFIX}'; this one has ${body.length} (a character missing or extra?)` };
  }
  const raw = decodeBase32(body);
  const secret = raw.subarray(0, 32);
  if (!checksumOf(secret).equals(raw.subarray(32, 36))) {
    return { code: "bad_checksum", error: "this mesh key has a typo: its checksum does not match (check each character again)" };
  }
  return { secret };
}

const deriveMeshId = (secret) =>
  Buffer.from(hkdfSync("sha256", secret, Buffer.from("iplm mesh v1"), Buffer.from("iplm1 mesh id"), 8)).toString("hex");

const SELF_NODE = "a1b2c3d4e5f60718";
const meshState = { key: NO_MESH ? null : makeMeshKey(), startedAt: Date.now() };
meshState.startedMeshId = meshState.key ? deriveMeshId(parseMeshKey(meshState.key).secret) : null;

// The fake peers: what each one holds, and how its state moves with time (t: seconds since the mock started).
const PEERS = [
  { id: "3c4d5e6f70819203", name: "iplm-9203", engine: "mlc", device: "jetson-orin", address: "10.77.0.12", workers: 2,
    models: (t) => [
      { id: "SmolLM2-135M-Instruct-Q4_1", state: "installed" },
      { id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", state: "installed" },
      { id: "Llama-3.2-1B-Instruct-q4f16_1-MLC", state: "partial", pieces: { held: 40 + Math.floor(t / 2) % 135, total: 175 } },
    ],
    state: () => ({ state: "online" }) },
  { id: "5e6f708192a3b4c5", name: "iplm-b4c5", engine: "llama.cpp", device: "rk3588", address: "10.77.0.13", workers: 1,
    models: () => [
      { id: "SmolLM2-135M-Instruct-Q4_1", state: "installed" },
      { id: "Qwen2.5-1.5B-Instruct-Q4_K_M", state: "installed" },
    ],
    state: () => ({ state: "online" }), rssi: -58 },
  { id: "708192a3b4c5d6e7", name: "iplm-d6e7", engine: "mlc", device: "rk3588", address: "10.77.0.14", workers: 1,
    models: () => [
      { id: "Qwen2.5-0.5B-Instruct-q4f16_1-MLC", state: "installed" },
      { id: "Phi-3.5-mini-instruct-q4f16_1-MLC", state: "partial", pieces: { held: 12, total: 545 } },
    ],
    // Comes and goes: 14 s online, 6 s gone (its link drops), and again.
    state: (t) => (t % 20 < 14 ? { state: "online", since: t - (t % 20) } : { state: "gone", reason: "link", since: t - (t % 20) + 14 }) },
  { id: "92a3b4c5d6e7f809", name: "iplm-f809", engine: "llama.cpp", device: "generic-aarch64", address: "10.77.0.15", workers: 1,
    models: () => [{ id: "SmolLM2-135M-Instruct-Q4_1", state: "installed" }],
    state: () => ({ state: "gone", reason: "silent", since: -340 }) },
];

const randomLoad = (workers) => {
  const busy = Math.floor(Math.random() * (workers + 1));
  return { workers, workers_ready: workers, busy, queued: busy === workers ? Math.floor(Math.random() * 3) : 0 };
};

function describeSelf() {
  const models = MODELS.filter((m) => m.state === "installed" || m.state === "partial").map((m) =>
    m.state === "installed"
      ? { id: m.id, state: "installed" }
      : { id: m.id, state: "partial", pieces: { held: Math.floor(m.done_bytes / (4 * MB)), total: Math.ceil(m.size_bytes / (4 * MB)) } },
  );
  return { name: UNIT.name, address: "10.77.0.11", engine: UNIT.engine, device: "generic-x86_64", memory_free: 2.1 * GIB,
           load: randomLoad(1), models };
}

function describeMesh() {
  const now = Date.now() / 1000;
  const t = now - meshState.startedAt / 1000;
  const meshId = meshState.key ? deriveMeshId(parseMeshKey(meshState.key).secret) : null;
  const running = meshState.startedMeshId !== null; // the agent started with the key the unit had then
  const peers = {};
  if (running) {
    for (const peer of PEERS) {
      const { state, reason = null, since = 0 } = peer.state(t);
      peers[peer.id] = {
        state, name: peer.name, address: peer.address, engine: peer.engine, device: peer.device,
        memory_free: 3.4 * GIB, load: state === "online" ? randomLoad(peer.workers) : { workers: peer.workers, busy: 0, queued: 0 },
        models: peer.models(t), via: `${peer.address}:1883`, last_seen: state === "online" ? now - Math.random() * 3 : now + since - t - 10,
        since: now - t + since, reason, ...(peer.rssi ? { rssi: peer.rssi + Math.round(Math.random() * 4) } : {}),
      };
    }
  }
  return { mesh_id: meshId, self: SELF_NODE, running, key_set: meshState.key !== null, key_error: null,
           restart_needed: meshId !== meshState.startedMeshId, unit: describeSelf(), peers, now };
}

function handleMesh(req, res, parts, body) {
  if (parts.length === 1 && req.method === "GET") return sendJson(res, 200, describeMesh());
  if (parts.length === 2 && parts[1] === "key" && req.method === "GET") {
    if (!meshState.key) return sendAdminError(res, 404, "This unit is in no mesh: create one or join one.", "no_mesh");
    return sendJson(res, 200, { key: meshState.key });
  }
  if (parts.length === 2 && parts[1] === "create" && req.method === "POST") {
    if (meshState.key && body.force !== true) {
      const id = deriveMeshId(parseMeshKey(meshState.key).secret);
      return sendAdminError(res, 409, `This unit is already in mesh ${id}; a new mesh replaces its key (the unit leaves that mesh).`, "mesh_exists");
    }
    meshState.key = makeMeshKey();
    const meshId = deriveMeshId(parseMeshKey(meshState.key).secret);
    return sendJson(res, 200, { mesh_id: meshId, restart_needed: meshId !== meshState.startedMeshId });
  }
  if (parts.length === 2 && parts[1] === "join" && req.method === "POST") {
    if (typeof body.key !== "string" || !body.key.trim()) {
      return sendAdminError(res, 400, "'key' must be the mesh key (it starts with 'iplm1-').", "invalid_value", "key");
    }
    const parsed = parseMeshKey(body.key);
    if (parsed.error) return sendAdminError(res, 400, parsed.error, parsed.code, "key");
    meshState.key = makeMeshKey(parsed.secret);
    const meshId = deriveMeshId(parsed.secret);
    return sendJson(res, 200, { mesh_id: meshId, restart_needed: meshId !== meshState.startedMeshId });
  }
  return sendAdminError(res, 404, "not found", "not_found");
}

async function handleAdmin(req, res, url) {
  const parts = url.pathname.split("/").filter(Boolean).slice(2); // after /api/admin
  let body = {};
  if (req.method === "POST" || req.method === "PUT") {
    try {
      body = await readBody(req);
    } catch {
      return sendAdminError(res, 400, "The request body is not JSON.", "invalid_json");
    }
    if (!body || typeof body !== "object") return sendAdminError(res, 400, "The request body must be a JSON object.", "invalid_json");
  }

  if (parts.length === 1 && parts[0] === "session") {
    if (req.method === "GET") return sendJson(res, 200, { admin: isAdmin(req) });
    if (req.method === "DELETE") {
      const match = /(?:^|;\s*)iplm_admin=([0-9a-f]+)/.exec(req.headers.cookie || "");
      if (match) admin.sessions.delete(match[1]);
      res.setHeader("Set-Cookie", "iplm_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
      return sendJson(res, 200, { admin: false });
    }
    if (req.method === "POST") {
      const now = Date.now();
      admin.failures = admin.failures.filter((t) => now - t < 300_000);
      if (admin.failures.length >= 5) return sendAdminError(res, 429, "Too many wrong PINs; wait a few minutes.", "too_many_attempts");
      if (String(body.pin ?? "") !== admin.pin) {
        admin.failures.push(now);
        return sendAdminError(res, 403, "Wrong PIN.", "wrong_pin", "pin");
      }
      admin.failures = [];
      const token = newId();
      admin.sessions.add(token);
      res.setHeader("Set-Cookie", `iplm_admin=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`);
      return sendJson(res, 200, { admin: true });
    }
    return sendAdminError(res, 405, "method not allowed", "method");
  }

  if (!isAdmin(req)) return sendAdminError(res, 401, "Sign in with the unit's admin PIN first.", "admin_required");

  if (parts.length === 1 && parts[0] === "pin" && req.method === "PUT") {
    if (String(body.current ?? "") !== admin.pin) return sendAdminError(res, 403, "The current PIN is wrong.", "wrong_pin", "current");
    if (typeof body.new !== "string" || !/^\d{4,12}$/.test(body.new)) {
      return sendAdminError(res, 400, "New PIN: a PIN is 4 to 12 digits.", "invalid_pin", "new");
    }
    admin.pin = body.new;
    res.writeHead(204);
    return res.end();
  }

  if (parts.length === 1 && parts[0] === "models" && req.method === "GET") return sendJson(res, 200, describeModels());

  if (parts[0] === "mesh") return handleMesh(req, res, parts, body);

  if (parts.length === 1 && parts[0] === "default-model" && req.method === "PUT") {
    const model = MODELS.find((m) => m.id === body.model);
    if (typeof body.model !== "string" || !body.model) return sendAdminError(res, 400, "'model' must be a model id.", "invalid_value", "model");
    if (!model) return sendAdminError(res, 404, `Unknown model ${body.model}.`, "model_unknown");
    if (model.state !== "installed") return sendAdminError(res, 404, `${model.id} is not installed.`, "model_not_installed");
    if (model.engine === "mlc") {
      return sendAdminError(res, 409, `${model.id} cannot run on this unit: MLC LLM is not installed on this unit (mock).`, "engine_unavailable");
    }
    await new Promise((done) => setTimeout(done, 1200)); // loading the model
    UNIT.default_model = model.id;
    if (!UNIT.models.some((m) => m.id === model.id)) UNIT.models.push({ id: model.id, engine: model.engine, n_ctx: 4096 });
    return sendJson(res, 200, { default_model: UNIT.default_model });
  }

  if (parts[0] === "models" && parts.length >= 2) {
    const id = decodeURIComponent(parts[1]);
    const model = MODELS.find((m) => m.id === id);
    if (parts.length === 3 && parts[2] === "install") {
      if (req.method === "POST") {
        if (!model) return sendAdminError(res, 404, `Unknown model ${id}.`, "model_unknown");
        if (model.job?.state === "running") return sendAdminError(res, 409, `${id} is already being installed.`, "install_running");
        if (model.state === "installed") return sendAdminError(res, 409, `${id} is already installed.`, "model_exists");
        startFakeInstall(model);
        return sendJson(res, 202, { job: model.job });
      }
      if (req.method === "DELETE") {
        if (!model || model.job?.state !== "running") return sendAdminError(res, 404, `No install of ${id} is running.`, "no_install_running");
        Object.assign(model.job, { state: "cancelled", rate_bps: 0, eta_s: null });
        return sendJson(res, 202, { job: model.job });
      }
    }
    if (parts.length === 2 && req.method === "DELETE") {
      if (!model || model.state === "available") return sendAdminError(res, 404, `${id} is not installed.`, "model_not_installed");
      if (model.id === UNIT.default_model) {
        return sendAdminError(res, 409, `${id} is the model serving chats; choose another default first.`, "model_in_use");
      }
      if (model.job?.state === "running") return sendAdminError(res, 409, `${id} is being installed; cancel that first.`, "install_running");
      admin.diskFree += model.done_bytes;
      Object.assign(model, { state: "available", done_bytes: 0, job: null });
      if (model.pinned_by === "first-install") Object.assign(model, { root_hash: null, pinned_by: null, source_revision: null });
      res.writeHead(204);
      return res.end();
    }
  }
  return sendAdminError(res, 404, "not found", "not_found");
}

if (DEMO) {
  startFakeInstall(MODELS.find((m) => m.id.startsWith("Llama-3.2-1B")));
  const phi = MODELS.find((m) => m.id.startsWith("Phi-3.5"));
  Object.assign(phi, { state: "partial", done_bytes: 763 * MB, root_hash: fakeHash(), pinned_by: "first-install", source_revision: "main" });
  phi.job = {
    model: phi.id,
    state: "failed",
    done_bytes: phi.done_bytes,
    total_bytes: phi.size_bytes,
    rate_bps: 0,
    eta_s: null,
    rejected_pieces: 3,
    error: { code: "piece_rejected", message: "Piece 41 of params_shard_12.bin failed verification 3 times; no source has a good copy." },
  };
}

// As a unit answers a phone that loaded its chat page: not captive, with the portal's address.
async function handleCaptiveApi(req, res) {
  if (!CAPTIVE_PORTAL_URL) return sendError(res, 404, "not found", "not_found");
  res.writeHead(200, { "Content-Type": "application/captive+json", "Cache-Control": "private" });
  res.end(JSON.stringify({ captive: false, "user-portal-url": CAPTIVE_PORTAL_URL, "seconds-remaining": 43200 }));
}

async function serveStatic(req, res, url) {
  let path = decodeURIComponent(url.pathname);
  if (path === "/") path = "/index.html";
  if (path === "/admin") path = "/admin.html";
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
  const handler = url.pathname.startsWith("/api/")
    ? handleApi
    : url.pathname === "/captive-portal/api"
      ? handleCaptiveApi
      : serveStatic;
  handler(req, res, url).catch((error) => {
    console.error(error);
    if (!res.headersSent) sendError(res, 500, "mock crashed", "internal");
    else res.end();
  });
});

server.listen(PORT, "127.0.0.1", () => {
  console.log(`mock iplm portal on http://127.0.0.1:${PORT}/ serving ${DIST}`);
});
