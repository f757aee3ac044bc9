import "@picocss/pico/css/pico.min.css";
import "./style.css";
import "./admin.css";

import {
  cancelInstall,
  changePin,
  fetchChatStorage,
  setChatRetention,
  chooseDefaultModel,
  fetchAdminModels,
  fetchAdminSession,
  removeModel,
  signIn,
  signOut,
  startInstall,
} from "./admin-api.js";
import {
  checkDiskRoom,
  checkPin,
  chooseInstallLabel,
  choosePollDelay,
  computePercent,
  describeFit,
  describeFormat,
  canTrustMesh,
  describeJobError,
  describeNotOffered,
  describeProgress,
  formatBytes,
  formatMemory,
  isJobRunning,
  isOffered,
  shortenHash,
  sortModels,
} from "./admin-format.js";
import { startMeshSection } from "./admin-mesh.js";
import { applyTheme, toggleTheme } from "./theme.js";

const REMOVE_CONFIRM_MS = 4000;
const SESSION_ENDED = "Your admin session ended. Sign in again.";
const GROUPS = [
  { state: "installed", title: "Installed" },
  { state: "partial", title: "Partly installed" },
  { state: "available", title: "Available to install" },
];

const $ = (id) => document.getElementById(id);
const el = {
  main: $("admin"),
  error: $("admin-error"),
  errorText: $("admin-error-text"),
  errorDismiss: $("admin-error-dismiss"),
  signInView: $("sign-in-view"),
  signInForm: $("sign-in-form"),
  pin: $("pin"),
  signIn: $("sign-in"),
  signOut: $("sign-out"),
  themeToggle: $("theme-toggle"),
  adminView: $("admin-view"),
  defaultModel: $("default-model"),
  diskFree: $("disk-free"),
  engineFailure: $("engine-failure"),
  models: $("models"),
  modelsEmpty: $("models-empty"),
  notOffered: $("models-not-offered"),
  pinForm: $("pin-form"),
  chatsSection: $("chats-section"),
  chatsUsage: $("chats-usage"),
  chatsForm: $("chats-form"),
  chatsRetention: $("chats-retention"),
  chatsMessage: $("chats-message"),
  chatsSave: $("chats-save"),
  pinCurrent: $("pin-current"),
  pinNew: $("pin-new"),
  pinChange: $("pin-change"),
  pinMessage: $("pin-message"),
};

// The Mesh section keeps its own state and polling (admin-mesh.js).
const mesh = startMeshSection({ onSessionEnded: () => showSignIn(SESSION_ENDED) });

// The page's only mutable state; the models list is rebuilt from it (per card, only where something changed).
const state = {
  signedIn: false,
  data: null, // the last GET /api/admin/models
  loadToken: 0,
  pollTimer: 0,
  pending: new Map(), // model id → action in flight
  cardErrors: new Map(), // model id → message of its last failed action
  armed: null, // model id whose Remove waits for the second tap
  armedTimer: 0,
  openDetails: new Set(), // model ids whose details are open
  cards: new Map(), // model id → { key, element }
  headings: new Map(), // group state → heading element
};

// ---------- page-level errors ----------

function showError(message) {
  el.errorText.textContent = message;
  el.error.hidden = false;
}

function hideError() {
  el.error.hidden = true;
  el.errorText.textContent = "";
}

function describeError(error, fallback) {
  return error?.message ? String(error.message) : fallback;
}

const isSessionEnded = (error) => error?.status === 401;

function setBusy(button, busy) {
  button.disabled = busy;
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

function focusOnDesktop(input) {
  // On phones focusing would pop the keyboard over the page.
  if (window.matchMedia?.("(pointer: fine)").matches) input.focus();
}

// ---------- views ----------

function showSignIn(message) {
  state.signedIn = false;
  stopPolling();
  mesh.hide();
  state.loadToken += 1;
  state.data = null;
  state.pending.clear();
  state.cardErrors.clear();
  state.armed = null;
  state.cards.clear();
  state.headings.clear();
  el.models.replaceChildren();
  el.adminView.hidden = true;
  el.signOut.hidden = true;
  el.signInView.hidden = false;
  el.main.removeAttribute("aria-busy");
  if (message) showError(message);
  focusOnDesktop(el.pin);
}

function showAdmin() {
  state.signedIn = true;
  el.signInView.hidden = true;
  el.adminView.hidden = false;
  el.signOut.hidden = false;
  el.main.setAttribute("aria-busy", "true");
  refresh();
  mesh.show();
}

// ---------- polling ----------

function stopPolling() {
  window.clearTimeout(state.pollTimer);
  state.pollTimer = 0;
}

function schedulePoll(delay) {
  stopPolling();
  if (!state.signedIn) return;
  state.pollTimer = window.setTimeout(() => {
    state.pollTimer = 0;
    // A hidden tab waits; becoming visible refreshes at once.
    if (!document.hidden) refresh();
  }, delay);
}

let loadErrorShown = false;

async function refresh() {
  if (!state.signedIn) return;
  stopPolling();
  const token = ++state.loadToken;
  let data;
  try {
    data = await fetchAdminModels();
  } catch (error) {
    if (token !== state.loadToken) return;
    if (isSessionEnded(error)) return showSignIn(SESSION_ENDED);
    showError(`Could not load the models: ${describeError(error, "unknown error")}`);
    loadErrorShown = true;
    el.main.removeAttribute("aria-busy");
    schedulePoll(10000);
    return;
  }
  if (token !== state.loadToken || !state.signedIn) return;
  if (loadErrorShown) {
    hideError();
    loadErrorShown = false;
  }
  state.data = data && typeof data === "object" ? data : { models: [] };
  render();
  el.main.removeAttribute("aria-busy");
  schedulePoll(choosePollDelay(state.data.models));
}

// ---------- rendering ----------

function makeElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function makeButton(className, label, { variant = "secondary", busy = false, disabled = false } = {}) {
  const button = makeElement("button", `${className} ${variant}`.trim(), label);
  button.type = "button";
  if (busy) button.setAttribute("aria-busy", "true");
  // aria-disabled, not disabled: the button keeps keyboard focus across the rebuilds while its request runs.
  if (busy || disabled) button.setAttribute("aria-disabled", "true");
  return button;
}

function describePinning(model) {
  if (!model.root_hash) return null;
  if (model.pinned_by === "first-install") return "pinned on first install";
  if (model.pinned_by === "admin") return "pinned by the admin";
  if (model.pinned_by === "whitelist") return "pinned by the whitelist";
  if (model.pinned_by === "mesh") return "pinned by units of the mesh";
  return "pinned";
}

function buildView() {
  const data = state.data ?? {};
  return {
    defaultModel: data.default_model ?? null,
    diskFree: typeof data.disk_free_bytes === "number" ? data.disk_free_bytes : null,
  };
}

/** Everything a card shows except the numbers of a running install (those are updated in place). */
function computeCardKey(model, view) {
  const running = isJobRunning(model);
  const { job, done_bytes: done, ...rest } = model;
  return JSON.stringify({
    rest,
    done: running ? null : done,
    job: job ? { state: job.state, error: job.error ?? null, total: running ? null : job.total_bytes } : null,
    serving: model.id === view.defaultModel,
    disk: running ? null : checkDiskRoom(model, view.diskFree),
    pending: state.pending.get(model.id) ?? null,
    error: state.cardErrors.get(model.id) ?? null,
    armed: state.armed === model.id,
  });
}

function buildHashBlock(model) {
  const details = makeElement("details", "model-details");
  details.open = state.openDetails.has(model.id);
  const summary = makeElement("summary");
  if (model.root_hash) {
    summary.append("Root hash ");
    const short = makeElement("code", "hash-short", shortenHash(model.root_hash));
    short.title = model.root_hash;
    summary.append(short);
    const pinning = describePinning(model);
    if (pinning) {
      const badge = makeElement("span", `badge pin-badge${model.pinned_by === "first-install" ? " tofu" : ""}`, pinning);
      summary.append(" ", badge);
    }
  } else {
    summary.append(makeElement("span", "unpinned", "unpinned: the first install will pin it"));
  }
  details.append(summary);

  const facts = makeElement("dl", "model-facts");
  const addFact = (term, value, className) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(makeElement("dt", "", term));
    const dd = makeElement("dd", className ?? "");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = String(value);
    facts.append(dd);
  };
  if (model.root_hash) addFact("Root hash", makeElement("code", "hash-full", model.root_hash));
  addFact("Source revision", model.source_revision);
  if (Array.isArray(model.boards) && model.boards.length) addFact("Boards", model.boards.join(", "));
  if (model.min_memory_bytes > 0) addFact("Memory needed", formatMemory(model.min_memory_bytes));
  if (facts.childElementCount) details.append(facts);
  return details;
}

function buildProgress(model) {
  const job = model.job;
  const box = makeElement("div", "install-progress");
  const bar = makeElement("progress", "progress");
  bar.setAttribute("aria-label", `Installing ${model.id}`);
  box.append(bar, makeElement("p", "progress-text"));
  updateProgress(box, job);
  return box;
}

function updateProgress(box, job) {
  const bar = box.querySelector(".progress");
  const text = box.querySelector(".progress-text");
  if (job && typeof job.total_bytes === "number" && job.total_bytes > 0) {
    bar.max = job.total_bytes;
    bar.value = Math.min(job.done_bytes || 0, job.total_bytes);
  } else {
    bar.removeAttribute("value"); // indeterminate until the size is known
  }
  text.textContent = describeProgress(job);
}

function buildCard(model, view) {
  const job = model.job ?? null;
  const running = isJobRunning(model);
  const serving = model.id === view.defaultModel;
  const pending = state.pending.get(model.id) ?? null;

  const card = makeElement("article", "model");
  card.dataset.id = model.id;
  card.dataset.state = model.state;
  if (job) card.dataset.jobState = job.state;
  if (serving) card.dataset.serving = "true";

  const head = makeElement("div", "model-head");
  head.append(makeElement("h4", "model-name", model.id));
  const badges = makeElement("div", "badges");
  if (serving) badges.append(makeElement("span", "badge serving", "serving chats"));
  if (model.embedded) badges.append(makeElement("span", "badge", "built in"));
  if (badges.childElementCount) head.append(badges);
  card.append(head);

  const meta = makeElement("p", "model-meta");
  const fit = makeElement("span", model.fits === false ? "fit too-big" : "fit", describeFit(model));
  const parts = [describeFormat(model), formatBytes(model.size_bytes), fit, model.license].filter(Boolean);
  parts.forEach((part, index) => {
    if (index) meta.append(" · ");
    meta.append(part);
  });
  card.append(meta);
  if (model.description) card.append(makeElement("p", "model-description", model.description));

  card.append(buildHashBlock(model));

  if (running) {
    card.append(buildProgress(model));
  } else if (model.state === "partial") {
    const percent = computePercent(model.done_bytes, model.size_bytes);
    const text = `Partly installed: ${formatBytes(model.done_bytes)} of ${formatBytes(model.size_bytes)}` +
      (percent === null ? "." : ` (${percent}%).`);
    card.append(makeElement("p", "model-note partial-text", text));
  }
  const trustable = job?.state === "failed" && !running && canTrustMesh(job.error);
  if (job?.state === "failed") {
    card.append(makeElement("p", "model-note job-error", describeJobError(job.error)));
  } else if (job?.state === "cancelled" && model.state !== "installed") {
    card.append(makeElement("p", "model-note", "Install cancelled. Resume continues where it stopped."));
  }
  const disk = running ? null : checkDiskRoom(model, view.diskFree);
  if (disk) card.append(makeElement("p", "model-note warn", disk));
  const cardError = state.cardErrors.get(model.id);
  if (cardError) {
    const error = makeElement("p", "model-note model-error", cardError);
    error.setAttribute("role", "alert");
    card.append(error);
  }

  const actions = makeElement("div", "model-actions");
  const busy = pending !== null;
  const installLabel = chooseInstallLabel(model);
  if (installLabel) {
    actions.append(makeButton("install", installLabel, { variant: "", busy: pending === "install", disabled: busy }));
  }
  if (trustable) {
    const label = "Install, trusting the mesh";
    actions.append(makeButton("trust-mesh", label, { variant: "secondary", busy: pending === "install", disabled: busy }));
  }
  if (running) {
    actions.append(makeButton("cancel", "Cancel", { variant: "secondary outline", busy: pending === "cancel", disabled: busy }));
  }
  if (model.state === "installed" && !serving) {
    const label = pending === "use" ? "Switching…" : "Use for chat";
    actions.append(makeButton("use", label, { variant: "", busy: pending === "use", disabled: busy }));
  }
  if (model.state === "installed" && !model.embedded && !serving) {
    const armed = state.armed === model.id;
    const remove = makeButton("remove", armed ? "Tap again to remove" : "Remove", {
      variant: "secondary outline",
      busy: pending === "remove",
      disabled: busy,
    });
    if (armed) remove.classList.add("armed");
    actions.append(remove);
  }
  if (actions.childElementCount) card.append(actions);
  return card;
}

function ensureHeading(group, count) {
  let heading = state.headings.get(group.state);
  if (!heading) {
    heading = makeElement("h3", "model-group");
    heading.dataset.group = group.state;
    state.headings.set(group.state, heading);
  }
  const text = `${group.title} (${count})`;
  if (heading.textContent !== text) heading.textContent = text;
  return heading;
}

function render() {
  const data = state.data ?? {};
  const view = buildView();
  // What this unit cannot run is not offered; one line says how much was left out, and why.
  const models = sortModels(data.models).filter(isOffered);
  const notOffered = describeNotOffered(data.models);
  el.notOffered.textContent = notOffered ?? "";
  el.notOffered.hidden = !notOffered;

  el.defaultModel.textContent = view.defaultModel || "none";
  el.diskFree.textContent = view.diskFree === null ? "unknown" : formatBytes(view.diskFree);
  const failure = data.engine?.state === "failed" ? data.engine.failure || "unknown reason" : null;
  el.engineFailure.textContent = failure ? `The engine cannot run: ${failure}` : "";
  el.engineFailure.hidden = !failure;

  // Keep the focused action across a card rebuild (keyboard users).
  const focused = document.activeElement;
  const focusedCard = focused && el.models.contains(focused) ? focused.closest(".model") : null;
  const focusedAction = focusedCard ? [...focused.classList].find((name) => ACTIONS[name]) : null;

  const desired = [];
  const seen = new Set();
  for (const group of GROUPS) {
    const inGroup = models.filter((model) => model.state === group.state);
    if (inGroup.length) desired.push(ensureHeading(group, inGroup.length));
    for (const model of inGroup) desired.push(placeCard(model, view, seen));
  }
  const others = models.filter((model) => !GROUPS.some((group) => group.state === model.state));
  for (const model of others) desired.push(placeCard(model, view, seen));
  for (const id of [...state.cards.keys()]) if (!seen.has(id)) state.cards.delete(id);
  for (const key of [...state.headings.keys()]) if (!desired.includes(state.headings.get(key))) state.headings.delete(key);

  const current = [...el.models.children];
  if (current.length !== desired.length || current.some((node, index) => node !== desired[index])) {
    el.models.replaceChildren(...desired);
  }
  el.modelsEmpty.hidden = models.length > 0;

  if (focusedCard && !focusedCard.isConnected) {
    const card = state.cards.get(focusedCard.dataset.id)?.element;
    const target = card?.querySelector(focusedAction ? `.${focusedAction}` : "button") ?? card?.querySelector("button");
    target?.focus();
  }
}

function placeCard(model, view, seen) {
  seen.add(model.id);
  const key = computeCardKey(model, view);
  const known = state.cards.get(model.id);
  if (known && known.key === key) {
    if (isJobRunning(model)) {
      const box = known.element.querySelector(".install-progress");
      if (box) updateProgress(box, model.job);
    }
    return known.element;
  }
  const element = buildCard(model, view);
  state.cards.set(model.id, { key, element });
  return element;
}

// ---------- model actions ----------

function findModel(id) {
  return state.data?.models?.find((model) => model.id === id) ?? null;
}

function disarm() {
  window.clearTimeout(state.armedTimer);
  state.armed = null;
}

async function runAction(id, action, request) {
  if (state.pending.has(id)) return;
  state.pending.set(id, action);
  state.cardErrors.delete(id);
  render();
  try {
    await request();
  } catch (error) {
    if (isSessionEnded(error)) {
      showSignIn(SESSION_ENDED);
      return;
    }
    state.cardErrors.set(id, describeError(error, "Something went wrong."));
  } finally {
    state.pending.delete(id);
  }
  if (!state.signedIn) return;
  render();
  await refresh();
}

function armRemove(id) {
  disarm();
  state.armed = id;
  state.armedTimer = window.setTimeout(() => {
    if (state.armed !== id) return;
    state.armed = null;
    render();
  }, REMOVE_CONFIRM_MS);
  render();
}

const ACTIONS = {
  install: (id) => runAction(id, "install", () => startInstall(id)),
  "trust-mesh": (id) => runAction(id, "install", () => startInstall(id, { trustMesh: true })),
  cancel: (id) => runAction(id, "cancel", () => cancelInstall(id)),
  use: (id) => runAction(id, "use", () => chooseDefaultModel(id)),
  remove: (id) => {
    // Two taps, like deleting a chat: the first arms the button, the second (within a few seconds) removes.
    if (state.armed !== id) return armRemove(id);
    disarm();
    return runAction(id, "remove", () => removeModel(id));
  },
};

function handleModelsClick(event) {
  const button = event.target.closest("button");
  const card = event.target.closest(".model");
  if (!button || !card || button.getAttribute("aria-disabled") === "true") return;
  const id = card.dataset.id;
  if (!findModel(id)) return;
  const action = Object.keys(ACTIONS).find((name) => button.classList.contains(name));
  if (!action) return;
  if (action !== "remove" && state.armed) disarm();
  ACTIONS[action](id);
}

// ---------- sign-in, sign-out, PIN ----------

async function submitSignIn(event) {
  event.preventDefault();
  const pin = el.pin.value.trim();
  if (!pin) {
    el.pin.setAttribute("aria-invalid", "true");
    showError("Enter the admin PIN.");
    el.pin.focus();
    return;
  }
  setBusy(el.signIn, true);
  try {
    await signIn(pin);
  } catch (error) {
    el.pin.value = "";
    if (error?.code === "wrong_pin") el.pin.setAttribute("aria-invalid", "true");
    showError(describeError(error, "Could not sign in."));
    el.pin.focus();
    return;
  } finally {
    setBusy(el.signIn, false);
  }
  el.pin.value = "";
  el.pin.removeAttribute("aria-invalid");
  hideError();
  showAdmin();
}

async function submitSignOut() {
  setBusy(el.signOut, true);
  try {
    await signOut();
  } catch (error) {
    showError(`Could not sign out: ${describeError(error, "unknown error")}`);
    return;
  } finally {
    setBusy(el.signOut, false);
  }
  hideError();
  el.pinForm.reset();
  setPinMessage("");
  showSignIn();
}

function setPinMessage(text, kind = "") {
  el.pinMessage.textContent = text;
  el.pinMessage.dataset.kind = kind;
}

async function submitPinChange(event) {
  event.preventDefault();
  el.pinCurrent.removeAttribute("aria-invalid");
  el.pinNew.removeAttribute("aria-invalid");
  const current = el.pinCurrent.value.trim();
  const next = el.pinNew.value.trim();
  if (!current) {
    el.pinCurrent.setAttribute("aria-invalid", "true");
    setPinMessage("Enter the current PIN.", "error");
    el.pinCurrent.focus();
    return;
  }
  const problem = checkPin(next);
  if (problem) {
    el.pinNew.setAttribute("aria-invalid", "true");
    setPinMessage(`New PIN: ${problem}`, "error");
    el.pinNew.focus();
    return;
  }
  setBusy(el.pinChange, true);
  setPinMessage("");
  try {
    await changePin(current, next);
  } catch (error) {
    if (isSessionEnded(error)) return showSignIn(SESSION_ENDED);
    const field = error?.param === "new" || error?.code === "invalid_pin" ? el.pinNew : el.pinCurrent;
    field.setAttribute("aria-invalid", "true");
    setPinMessage(describeError(error, "Could not change the PIN."), "error");
    return;
  } finally {
    setBusy(el.pinChange, false);
  }
  el.pinForm.reset();
  setPinMessage("PIN changed. Use the new PIN from now on.", "ok");
}

// ---------- chats kept ----------

function showChatStorage(storage) {
  const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  el.chatsUsage.textContent =
    `${storage.conversations} chats, ${megabytes(storage.bytes)} of text (at most ${megabytes(storage.total_bytes)}; ` +
    `the oldest go first). ${megabytes(storage.free_bytes)} free on the disk.`;
  if (document.activeElement !== el.chatsRetention) el.chatsRetention.value = String(storage.retention_days);
}

async function loadChatStorage() {
  if (!el.chatsSection.open) return;
  try {
    showChatStorage(await fetchChatStorage());
  } catch (error) {
    if (isSessionEnded(error)) return showSignIn(SESSION_ENDED);
    el.chatsMessage.textContent = describeError(error, "Could not read the chat storage.");
    el.chatsMessage.dataset.kind = "error";
  }
}

async function submitChatRetention(event) {
  event.preventDefault();
  const days = Number(el.chatsRetention.value);
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    el.chatsRetention.setAttribute("aria-invalid", "true");
    el.chatsMessage.textContent = "A whole number of days from 1 to 3650.";
    el.chatsMessage.dataset.kind = "error";
    return;
  }
  el.chatsRetention.removeAttribute("aria-invalid");
  setBusy(el.chatsSave, true);
  try {
    showChatStorage(await setChatRetention(days));
    el.chatsMessage.textContent = `Chats are now deleted ${days} days after their last message.`;
    el.chatsMessage.dataset.kind = "ok";
  } catch (error) {
    if (isSessionEnded(error)) return showSignIn(SESSION_ENDED);
    el.chatsMessage.textContent = describeError(error, "Could not save.");
    el.chatsMessage.dataset.kind = "error";
  } finally {
    setBusy(el.chatsSave, false);
  }
}

// ---------- start ----------

function wireEvents() {
  el.themeToggle.addEventListener("click", toggleTheme);
  el.errorDismiss.addEventListener("click", hideError);
  el.signInForm.addEventListener("submit", submitSignIn);
  el.pin.addEventListener("input", () => el.pin.removeAttribute("aria-invalid"));
  el.signOut.addEventListener("click", submitSignOut);
  el.pinForm.addEventListener("submit", submitPinChange);
  el.chatsForm.addEventListener("submit", submitChatRetention);
  el.chatsSection.addEventListener("toggle", loadChatStorage);
  el.models.addEventListener("click", handleModelsClick);
  // <details> toggles do not bubble: listen while capturing, to keep them open across rebuilds.
  el.models.addEventListener(
    "toggle",
    (event) => {
      const card = event.target.closest?.(".model");
      if (!card || !event.target.matches?.("details")) return;
      if (event.target.open) state.openDetails.add(card.dataset.id);
      else state.openDetails.delete(card.dataset.id);
    },
    true,
  );
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.signedIn && !state.pollTimer) refresh();
  });
}

async function start() {
  applyTheme();
  wireEvents();
  let session;
  try {
    session = await fetchAdminSession();
  } catch (error) {
    showSignIn(`Could not reach the unit's admin API: ${describeError(error, "unknown error")}`);
    return;
  }
  if (session?.admin) showAdmin();
  else showSignIn();
}

start();
