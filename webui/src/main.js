import "@picocss/pico/css/pico.min.css";
import "./style.css";

import {
  createConversation,
  deleteAllConversations,
  deleteConversation,
  fetchCaptiveStatus,
  reportPortalOpened,
  fetchConversation,
  fetchUnit,
  listConversations,
  renameConversation,
  streamMessage,
} from "./api.js";
import { describeWifi, isAndroidUserAgent, readCaptiveStatus } from "./captive.js";
import { renderMarkdown } from "./markdown.js";
import { renderPieces, startPieces, updatePieces } from "./pieces.js";
import { PARAMS, buildMessagePayload, getLimits, parseParam, selectParams } from "./settings.js";
import { readStored, writeStored } from "./storage.js";
import { applyTheme, toggleTheme } from "./theme.js";

const MODEL_KEY = "iplm.model";
const PARAMS_KEY = "iplm.params";
const SPLIT_KEY = "iplm.split"; // false: this phone asks for every prompt to be answered whole
const THINK_KEY = "iplm.think"; // true: this phone asks the unit to think deeply (slower), off by default
const CAPTIVE_DISMISSED_KEY = "iplm.captiveDismissed";
const DELETE_CONFIRM_MS = 4000;

const $ = (id) => document.getElementById(id);
const el = {
  app: document.querySelector(".app"),
  historyToggle: $("history-toggle"),
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  history: $("history"),
  historyEmpty: $("history-empty"),
  unitName: $("unit-name"),
  model: $("model"),
  newChat: $("new-chat"),
  settingsOpen: $("settings-open"),
  settings: $("settings"),
  settingsForm: $("settings-form"),
  settingsReset: $("settings-reset"),
  split: $("split-prompts"),
  think: $("think-deeply"),
  deleteAllChats: $("delete-all-chats"),
  retentionNote: $("retention-note"),
  themeToggle: $("theme-toggle"),
  messages: $("messages"),
  welcome: $("welcome"),
  error: $("error"),
  errorText: $("error-text"),
  errorDismiss: $("error-dismiss"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  captiveBanner: $("captive-banner"),
  captiveWhere: $("captive-where"),
  captiveAndroidTip: $("captive-android-tip"),
  captiveBrowser: $("captive-browser"),
  captiveOpenBrowser: $("captive-open-browser"),
  captiveDismiss: $("captive-dismiss"),
};

// The page's only mutable state; everything shown is derived from it or from the DOM it built.
const state = {
  unit: null,
  conversations: [],
  currentId: null,
  streaming: null, // { controller, element, text, renderQueued, thinking?, thinkingElement?, progressElement? }
  loadToken: 0,
};

const nextFrame = window.requestAnimationFrame
  ? (fn) => window.requestAnimationFrame(fn)
  : (fn) => window.setTimeout(fn, 16);

// ---------- errors ----------

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

// ---------- drawer (phones) ----------

function setDrawerOpen(open) {
  document.body.classList.toggle("drawer-open", open);
  el.historyToggle.setAttribute("aria-expanded", String(open));
  el.scrim.hidden = !open;
}

// ---------- unit, models, settings ----------

function readOverrides() {
  const stored = readStored(PARAMS_KEY, {});
  return stored && typeof stored === "object" ? stored : {};
}

function fillModelSelect(unit) {
  const models = Array.isArray(unit?.models) ? unit.models : [];
  el.model.replaceChildren();
  if (models.length === 0) {
    const option = new Option(unit ? "No model installed" : "Model", "");
    el.model.append(option);
    el.model.disabled = true;
    return;
  }
  for (const model of models) el.model.append(new Option(model.id, model.id));
  const ids = models.map((model) => model.id);
  const stored = readStored(MODEL_KEY, null);
  const chosen = ids.includes(stored) ? stored : ids.includes(unit.default_model) ? unit.default_model : ids[0];
  el.model.value = chosen;
  el.model.disabled = false;
}

function selectModelIfKnown(modelId) {
  if (!modelId) return;
  if ([...el.model.options].some((option) => option.value === modelId)) el.model.value = modelId;
}

function fillSettingsForm() {
  el.split.checked = readStored(SPLIT_KEY, true) !== false;
  el.think.checked = readStored(THINK_KEY, false) === true;
  const overrides = readOverrides();
  for (const param of PARAMS) {
    const input = $(param.inputId);
    const [min, max] = getLimits(state.unit, param);
    const fallback = state.unit?.defaults?.[param.name];
    input.min = String(min);
    input.max = String(max);
    input.placeholder = fallback !== undefined ? String(fallback) : "";
    const value = overrides[param.name] ?? fallback;
    input.value = value !== undefined && value !== null ? String(value) : "";
    input.removeAttribute("aria-invalid");
    const range = document.querySelector(`[data-range-for="${param.name}"]`);
    if (range) range.textContent = `${min}–${max}${fallback !== undefined ? `, unit default ${fallback}` : ""}`;
  }
}

function storeSettingFromInput(param) {
  const input = $(param.inputId);
  const parsed = parseParam(state.unit, param, input.value);
  if (parsed.error) {
    input.setAttribute("aria-invalid", "true");
    input.title = parsed.error;
    return;
  }
  input.removeAttribute("aria-invalid");
  input.removeAttribute("title");
  const overrides = { ...readOverrides() };
  if (parsed.value === null || parsed.value === state.unit?.defaults?.[param.name]) delete overrides[param.name];
  else overrides[param.name] = parsed.value;
  writeStored(PARAMS_KEY, overrides);
}

function openSettings() {
  fillSettingsForm();
  if (typeof el.settings.showModal === "function") el.settings.showModal();
  else el.settings.setAttribute("open", "");
}

function closeSettings() {
  for (const param of PARAMS) storeSettingFromInput(param);
  if (typeof el.settings.close === "function" && el.settings.open) el.settings.close();
  else el.settings.removeAttribute("open");
}

function resetSettings() {
  writeStored(PARAMS_KEY, null);
  writeStored(SPLIT_KEY, null);
  writeStored(THINK_KEY, null);
  fillSettingsForm();
}

async function loadUnit() {
  try {
    state.unit = await fetchUnit();
  } catch (error) {
    showError(`Could not load this unit's details: ${describeError(error, "unknown error")}`);
    state.unit = null;
  }
  fillModelSelect(state.unit);
  fillSettingsForm();
  if (state.unit?.engine_state === "failed") {
    // Say it before anyone types: no chat can be answered until the unit's owner fixes the engine.
    showError(`This unit cannot answer chats right now: ${state.unit.engine_failure || "its engine failed"}`);
  }
  const days = state.unit?.chat_retention_days;
  if (Number.isInteger(days)) {
    el.retentionNote.textContent = `This unit deletes a chat ${days} ${days === 1 ? "day" : "days"} after its last message.`;
  }
  const name = state.unit?.name;
  el.unitName.textContent = name || "";
  if (name) document.title = `iplm · ${name}`;
}

// ---------- the unit's Wi-Fi banner ----------

async function showCaptiveBanner(unitLoaded) {
  if (readStored(CAPTIVE_DISMISSED_KEY, false) === true) return;
  let status = null;
  try {
    status = readCaptiveStatus(await fetchCaptiveStatus(), window.location.origin);
  } catch {
    return; // no captive API: not on a unit's Wi-Fi (a development server), so nothing to say
  }
  if (!status) return;
  await unitLoaded;
  el.captiveWhere.textContent = describeWifi(state.unit?.name);
  el.captiveAndroidTip.hidden = !isAndroidUserAgent(navigator.userAgent);
  if (status.portalUrl) {
    // A plain link: inside an OS sign-in sheet it opens in the sheet, so the address is shown to type elsewhere.
    el.captiveOpenBrowser.href = status.portalUrl;
    el.captiveOpenBrowser.textContent = status.portalUrl;
  }
  el.captiveBrowser.hidden = !status.portalUrl;
  el.captiveBanner.hidden = false;
}

function dismissCaptiveBanner() {
  el.captiveBanner.hidden = true;
  writeStored(CAPTIVE_DISMISSED_KEY, true);
}

// ---------- history ----------

function titleOf(conversation) {
  return conversation?.title?.trim() || "New chat";
}

function upsertConversation(conversation, { toTop = false } = {}) {
  if (!conversation?.id) return;
  const { messages: _messages, ...summary } = conversation;
  const index = state.conversations.findIndex((item) => item.id === summary.id);
  if (index === -1) {
    state.conversations = [summary, ...state.conversations];
  } else if (toTop) {
    const merged = { ...state.conversations[index], ...summary };
    state.conversations = [merged, ...state.conversations.filter((item) => item.id !== summary.id)];
  } else {
    state.conversations = state.conversations.map((item) => (item.id === summary.id ? { ...item, ...summary } : item));
  }
  renderHistory();
}

function createIconButton(className, label, svgPath) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `${className} icon-button secondary outline`;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.innerHTML = `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${svgPath}" /></svg>`;
  return button;
}

function renderHistory() {
  const items = state.conversations.map((conversation) => {
    const item = document.createElement("li");
    item.className = "conv";
    item.dataset.id = conversation.id;
    if (conversation.id === state.currentId) item.setAttribute("aria-current", "true");

    const open = document.createElement("button");
    open.type = "button";
    open.className = "conv-open";
    const title = document.createElement("span");
    title.className = "conv-title";
    title.textContent = titleOf(conversation);
    open.append(title);

    const rename = createIconButton("conv-rename", "Rename", "M4 20h4L19 9l-4-4L4 16zM14 6l4 4");
    const remove = createIconButton("conv-delete", "Delete", "M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13");
    item.append(open, rename, remove);
    return item;
  });
  el.history.replaceChildren(...items);
  el.historyEmpty.hidden = items.length > 0;
}

async function loadHistory() {
  try {
    state.conversations = await listConversations();
  } catch (error) {
    showError(`Could not load your chats: ${describeError(error, "unknown error")}`);
  }
  renderHistory();
}

function beginRename(item) {
  const id = item.dataset.id;
  const conversation = state.conversations.find((entry) => entry.id === id);
  const open = item.querySelector(".conv-open");
  if (!conversation || !open) return;
  const input = document.createElement("input");
  input.type = "text";
  input.className = "conv-title-input";
  input.value = conversation.title || "";
  input.maxLength = 200;
  input.setAttribute("aria-label", "Chat title");
  open.replaceWith(input);
  input.focus();
  input.select();

  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (!save || !title || title === conversation.title) {
      renderHistory();
      return;
    }
    try {
      upsertConversation(await renameConversation(id, title));
    } catch (error) {
      renderHistory();
      showError(`Could not rename the chat: ${describeError(error, "unknown error")}`);
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

async function confirmDelete(item, button) {
  // Two taps: the first arms the button, the second (within a few seconds) deletes.
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.setAttribute("aria-label", "Tap again to delete");
    button.title = "Tap again to delete";
    window.setTimeout(() => {
      if (!button.isConnected) return;
      button.classList.remove("armed");
      button.setAttribute("aria-label", "Delete");
      button.title = "Delete";
    }, DELETE_CONFIRM_MS);
    return;
  }
  const id = item.dataset.id;
  try {
    await deleteConversation(id);
  } catch (error) {
    showError(`Could not delete the chat: ${describeError(error, "unknown error")}`);
    return;
  }
  state.conversations = state.conversations.filter((entry) => entry.id !== id);
  if (state.currentId === id) startNewChat();
  else renderHistory();
}

async function deleteAllChats() {
  const button = el.deleteAllChats;
  // Two taps, as for one chat: the first arms the button, the second deletes.
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = "Tap again: delete every chat of this phone";
    window.setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = "Delete all my chats";
    }, DELETE_CONFIRM_MS);
    return;
  }
  button.classList.remove("armed");
  button.textContent = "Delete all my chats";
  if (state.streaming) state.streaming.controller.abort();
  try {
    await deleteAllConversations();
  } catch (error) {
    showError(`Could not delete the chats: ${describeError(error, "unknown error")}`);
    return;
  }
  state.conversations = [];
  startNewChat();
  closeSettings();
}

// ---------- messages ----------

function updateWelcome() {
  el.welcome.hidden = el.messages.querySelector(".msg") !== null;
}

function isNearBottom() {
  const box = el.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToBottom() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

function setAssistantContent(element, text) {
  element.querySelector(".content").innerHTML = renderMarkdown(text);
}

function addNote(element, text) {
  const note = document.createElement("p");
  note.className = "msg-note";
  note.textContent = text;
  element.append(note);
}

function createMessageElement(role, content, { messageState, id } = {}) {
  const element = document.createElement("article");
  element.className = `msg ${role}`;
  element.dataset.role = role;
  if (id) element.dataset.id = id;
  const body = document.createElement("div");
  body.className = "content";
  element.append(body);
  if (role === "assistant") {
    element.dataset.state = messageState || "done";
    if (content) setAssistantContent(element, content);
  } else {
    body.textContent = content; // user text is shown as typed, never as HTML
  }
  return element;
}

function appendMessage(role, content, options) {
  const element = createMessageElement(role, content, options);
  el.messages.append(element);
  updateWelcome();
  return element;
}

function clearMessages() {
  for (const message of el.messages.querySelectorAll(".msg")) message.remove();
  updateWelcome();
}

function stateFromFinishReason(reason) {
  if (reason === "error") return "error";
  if (reason === "cancelled" || reason === "canceled" || reason === "abort") return "cancelled";
  return "done";
}

function queueStreamRender() {
  const streaming = state.streaming;
  if (!streaming || streaming.renderQueued) return;
  streaming.renderQueued = true;
  nextFrame(() => {
    streaming.renderQueued = false;
    if (streaming.finished) return;
    const follow = isNearBottom();
    setAssistantContent(streaming.element, streaming.text);
    if (follow) scrollToBottom();
  });
}

// ---------- deep thinking ----------

// The graph code loads on first need (a reply that thinks, a chat that thought): most chats never think,
// and the chat's first load has a byte budget. Until it is here, thinking events are simply not drawn.
let thinkingLib = null;
let thinkingLoad = null;

function loadThinking() {
  if (!thinkingLoad) {
    thinkingLoad = import("./thinking.js").then(
      (lib) => (thinkingLib = lib),
      () => {
        thinkingLoad = null; // try again next time (a unit that restarted with a new build, say)
        return null;
      },
    );
  }
  return thinkingLoad;
}

function drawSafely(draw) {
  // A graph that cannot be drawn must not end the reply it belongs to (a throw here would end the stream).
  try {
    draw();
  } catch {
    /* the answer still shows, without its graph */
  }
}

/** While a reply thinks: the progress line and the live graph, open, above the answer. */
function showThinking(streaming) {
  const element = streaming.element;
  element.dataset.thinking = "true";
  if (!streaming.thinkingElement) {
    const details = document.createElement("details");
    details.className = "thinking";
    details.open = true;
    const progress = document.createElement("p");
    progress.className = "think-progress";
    progress.setAttribute("role", "status");
    element.querySelector(".content").before(details, progress);
    streaming.thinkingElement = details;
    streaming.progressElement = progress;
  }
  streaming.thinkingElement.hidden = !streaming.thinking.graph;
  thinkingLib.renderThinking(streaming.thinkingElement, streaming.thinking);
  thinkingLib.renderProgress(streaming.progressElement, streaming.thinking);
}

/** The graph folded under the answer, one line saying what it did; a tap opens it. */
function placeThinking(element, thinking, details = null) {
  if (!thinking?.graph) {
    details?.remove();
    return;
  }
  const box = details ?? document.createElement("details");
  box.className = "thinking";
  box.hidden = false;
  thinkingLib.renderThinking(box, thinking, { finished: true });
  box.open = false;
  element.dataset.thinking = "true";
  element.querySelector(".content").after(box);
}

/** The end of a thinking reply, however it ended: the progress line goes, the graph folds. */
function finishThinking(streaming) {
  if (!streaming.thinking) return;
  streaming.progressElement?.remove();
  streaming.progressElement = null;
  drawSafely(() => placeThinking(streaming.element, streaming.thinking, streaming.thinkingElement));
}

/** One-tap answers under a clarifying question (free text is always allowed too). */
function addClarifyChoices(element, clarify) {
  element.dataset.clarify = "true";
  if (!clarify?.choices?.length) return;
  element.querySelector(".content").after(thinkingLib.createClarifyChoices(clarify));
}

function setClarifyChoicesDisabled(disabled) {
  for (const button of el.messages.querySelectorAll(".clarify-choice")) button.disabled = disabled;
}

function removeClarifyChoices() {
  // Answered (by a tap or by typing): the question is no longer waiting.
  for (const box of el.messages.querySelectorAll(".clarify-choices")) box.remove();
}

// ---------- chat actions ----------

function setStreamingUi(streaming) {
  el.send.hidden = streaming;
  el.stop.hidden = !streaming;
  el.composer.classList.toggle("is-streaming", streaming);
}

function stopStreaming() {
  state.streaming?.controller.abort();
}

function startNewChat() {
  stopStreaming();
  state.loadToken += 1;
  state.currentId = null;
  el.messages.removeAttribute("data-conversation-id");
  clearMessages();
  hideError();
  renderHistory();
  setDrawerOpen(false);
  focusPromptOnDesktop();
}

async function openConversation(id) {
  if (id === state.currentId && !state.streaming) {
    setDrawerOpen(false);
    return;
  }
  stopStreaming();
  const token = ++state.loadToken;
  state.currentId = id;
  el.messages.dataset.conversationId = id;
  clearMessages();
  hideError();
  renderHistory();
  setDrawerOpen(false);
  el.messages.setAttribute("aria-busy", "true");
  try {
    const conversation = await fetchConversation(id);
    if (token !== state.loadToken) return;
    const messages = Array.isArray(conversation.messages) ? conversation.messages : [];
    if (messages.some((message) => message?.thinking)) await loadThinking();
    if (token !== state.loadToken) return;
    // Only the last message's question still waits for an answer.
    const waiting = thinkingLib?.pendingClarify(messages) ?? null;
    messages.forEach((message, index) => {
      const role = message.role;
      if (role !== "user" && role !== "assistant") return;
      const element = appendMessage(role, message.content ?? "", {
        id: message.id,
        messageState: stateFromFinishReason(message.finish_reason),
      });
      if (message.finish_reason) element.dataset.finishReason = message.finish_reason;
      if (role !== "assistant" || !thinkingLib) return;
      drawSafely(() => placeThinking(element, thinkingLib.readThinking(message)));
      if (waiting && index === messages.length - 1) addClarifyChoices(element, waiting);
    });
    selectModelIfKnown(conversation.model);
    upsertConversation(conversation);
    scrollToBottom();
  } catch (error) {
    if (token !== state.loadToken) return;
    showError(`Could not open the chat: ${describeError(error, "unknown error")}`);
  } finally {
    if (token === state.loadToken) el.messages.removeAttribute("aria-busy");
  }
}

function restorePrompt(text) {
  if (el.prompt.value.trim() === "") {
    el.prompt.value = text;
    resizePrompt();
  }
}

function sendPrompt() {
  const typed = el.prompt.value;
  const content = typed.trim();
  if (!content || state.streaming) return;
  el.prompt.value = "";
  resizePrompt();
  sendMessage(content, typed);
}

/** Send one message (typed, or a tapped answer to a question) and stream the reply; typed comes back on failure. */
async function sendMessage(content, typed = "") {
  if (!content || state.streaming) return;
  hideError();
  setClarifyChoicesDisabled(true);

  const userElement = appendMessage("user", content);
  const assistantElement = appendMessage("assistant", "", { messageState: "streaming" });
  scrollToBottom();

  const controller = new AbortController();
  const streaming = { controller, element: assistantElement, text: "", renderQueued: false, finished: false };
  state.streaming = streaming;
  setStreamingUi(true);

  const model = el.model.value || undefined;
  let accepted = false; // the unit took the message: from here on it is part of the conversation
  let outcome = null; // { kind: "done" } or { kind: "error", message }

  const finishStreaming = (messageState) => {
    streaming.finished = true;
    assistantElement.dataset.state = messageState;
  };

  const handleEvent = (event) => {
    if (streaming.finished || outcome) return;
    if (event?.type === "plan") {
      // A split answer: cards for its pieces above the answer, which fills in section by section.
      streaming.pieces = startPieces(event);
      if (streaming.pieces.length === 0) return;
      streaming.piecesElement = document.createElement("details");
      streaming.piecesElement.className = "pieces";
      streaming.piecesElement.open = true;
      assistantElement.prepend(streaming.piecesElement);
      renderPieces(streaming.piecesElement, streaming.pieces);
    } else if (event?.type === "piece" && streaming.piecesElement) {
      streaming.pieces = updatePieces(streaming.pieces, event);
      renderPieces(streaming.piecesElement, streaming.pieces);
    } else if ((event?.type === "thinking" || event?.type === "clarify") && thinkingLib) {
      streaming.thinking = thinkingLib.updateThinking(streaming.thinking ?? thinkingLib.startThinking(), event);
      if (event.type === "clarify") return; // its question streams as the text; its choices show when done
      const follow = isNearBottom();
      drawSafely(() => showThinking(streaming));
      if (follow) scrollToBottom();
    } else if (event?.type === "delta" && typeof event.text === "string") {
      streaming.text += event.text;
      queueStreamRender();
    } else if (event?.type === "done") {
      const message = event.message ?? {};
      const text = typeof message.content === "string" ? message.content : streaming.text;
      streaming.text = text;
      const follow = isNearBottom();
      setAssistantContent(assistantElement, text);
      if (message.id) assistantElement.dataset.id = message.id;
      if (message.finish_reason) assistantElement.dataset.finishReason = message.finish_reason;
      if (thinkingLib && (streaming.thinking || event.graph || event.clarify)) {
        streaming.thinking = thinkingLib.updateThinking(streaming.thinking ?? thinkingLib.startThinking(), event);
        finishThinking(streaming);
        if (streaming.thinking.clarify) drawSafely(() => addClarifyChoices(assistantElement, streaming.thinking.clarify));
      }
      if (message.finish_reason === "length") addNote(assistantElement, "Reply cut at the max tokens setting.");
      if (event.dropped_messages > 0) {
        addNote(assistantElement, `The model no longer saw the ${event.dropped_messages} oldest messages of this chat.`);
      }
      if (typeof event.unit === "string" && event.unit) addNote(assistantElement, `Answered by ${event.unit}, a unit nearby.`);
      if (event.conversation) upsertConversation(event.conversation, { toTop: true });
      if (streaming.piecesElement) {
        // Done: the pieces fold into one line above the answer; a tap opens them again.
        renderPieces(streaming.piecesElement, streaming.pieces, { finished: true });
        streaming.piecesElement.open = false;
      }
      outcome = { kind: "done" };
      finishStreaming("done");
      if (follow) scrollToBottom();
    } else if (event?.type === "error") {
      outcome = { kind: "error", message: event.error?.message || "The model stopped with an error." };
    }
  };

  try {
    let id = state.currentId;
    if (!id) {
      const conversation = await createConversation(model ? { model } : {}, controller.signal);
      if (!conversation?.id) throw new Error("The unit did not create the chat.");
      id = conversation.id;
      if (state.streaming === streaming) {
        state.currentId = id;
        el.messages.dataset.conversationId = id;
      }
      upsertConversation(conversation, { toTop: true });
    }
    const think = readStored(THINK_KEY, false) === true;
    if (think) await loadThinking(); // no graph without it, but the message goes all the same
    const payload = buildMessagePayload({
      content,
      model,
      params: selectParams(state.unit, readOverrides()),
      split: readStored(SPLIT_KEY, true) !== false,
      think,
    });

    await streamMessage(id, payload, {
      signal: controller.signal,
      onOpen: () => {
        accepted = true;
        removeClarifyChoices();
      },
      onEvent: handleEvent,
    });
    if (!outcome) outcome = { kind: "error", message: "The reply stopped before it finished." };
  } catch (error) {
    if (error?.name === "AbortError") outcome = { kind: "cancelled" };
    else outcome = { kind: "error", message: describeError(error, "Something went wrong.") };
  }

  if (state.streaming === streaming) {
    state.streaming = null;
    setStreamingUi(false);
  }
  if (outcome.kind === "done") return;

  const follow = isNearBottom();
  if (!accepted) {
    // The unit never took the message: take it back out and give the text back.
    userElement.remove();
    assistantElement.remove();
    streaming.finished = true;
    updateWelcome();
    setClarifyChoicesDisabled(false);
    if (typed) restorePrompt(typed);
    if (outcome.kind === "error") showError(outcome.message);
  } else {
    setAssistantContent(assistantElement, streaming.text);
    finishThinking(streaming);
    if (outcome.kind === "cancelled") {
      finishStreaming("cancelled");
      addNote(assistantElement, "Stopped.");
    } else {
      finishStreaming("error");
      addNote(assistantElement, `Error: ${outcome.message}`);
      if (assistantElement.isConnected) {
        showError(outcome.message);
        if (typed) restorePrompt(typed);
      }
    }
  }
  if (follow) scrollToBottom();
}

// ---------- composer ----------

function resizePrompt() {
  el.prompt.style.height = "auto";
  const max = Math.round(window.innerHeight * 0.35);
  el.prompt.style.height = `${Math.min(el.prompt.scrollHeight + 2, max)}px`;
}

function focusPromptOnDesktop() {
  // On phones focusing would pop the keyboard over the page.
  if (window.matchMedia?.("(pointer: fine)").matches) el.prompt.focus();
}

// ---------- wiring ----------

function wireEvents() {
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendPrompt();
  });
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    sendPrompt();
  });
  el.prompt.addEventListener("input", resizePrompt);
  el.stop.addEventListener("click", stopStreaming);
  el.newChat.addEventListener("click", startNewChat);
  el.errorDismiss.addEventListener("click", hideError);
  el.captiveDismiss.addEventListener("click", dismissCaptiveBanner);
  el.themeToggle.addEventListener("click", toggleTheme);

  el.historyToggle.addEventListener("click", () => setDrawerOpen(!document.body.classList.contains("drawer-open")));
  el.scrim.addEventListener("click", () => setDrawerOpen(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("drawer-open")) setDrawerOpen(false);
  });

  el.history.addEventListener("click", (event) => {
    const item = event.target.closest("li.conv");
    if (!item) return;
    if (event.target.closest(".conv-rename")) beginRename(item);
    else if (event.target.closest(".conv-delete")) confirmDelete(item, event.target.closest(".conv-delete"));
    else if (event.target.closest(".conv-open")) openConversation(item.dataset.id);
  });

  el.model.addEventListener("change", () => writeStored(MODEL_KEY, el.model.value || null));

  el.settingsOpen.addEventListener("click", openSettings);
  el.settingsReset.addEventListener("click", resetSettings);
  el.deleteAllChats.addEventListener("click", deleteAllChats);
  el.settingsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    closeSettings();
  });
  el.settings.addEventListener("click", (event) => {
    if (event.target === el.settings) closeSettings(); // backdrop tap
  });
  el.settings.addEventListener("cancel", () => {
    for (const param of PARAMS) storeSettingFromInput(param);
  });
  el.split.addEventListener("change", () => writeStored(SPLIT_KEY, el.split.checked ? null : false));
  el.think.addEventListener("change", () => {
    writeStored(THINK_KEY, el.think.checked ? true : null);
    if (el.think.checked) loadThinking(); // ready before the first message
  });
  el.messages.addEventListener("click", (event) => {
    const button = event.target.closest?.(".clarify-choice");
    if (button && !button.disabled && !state.streaming) sendMessage(button.dataset.choice || button.textContent.trim());
  });
  for (const param of PARAMS) {
    const input = $(param.inputId);
    input.addEventListener("input", () => storeSettingFromInput(param));
    input.addEventListener("change", () => storeSettingFromInput(param));
  }
}

function registerServiceWorker() {
  // Only where the browser allows it (HTTPS or localhost); the app never depends on it.
  if (!window.isSecureContext || !("serviceWorker" in navigator)) return;
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  });
}

function start() {
  applyTheme();
  wireEvents();
  setStreamingUi(false);
  fillSettingsForm();
  updateWelcome();
  renderHistory();
  reportPortalOpened();
  showCaptiveBanner(loadUnit());
  loadHistory();
  registerServiceWorker();
  focusPromptOnDesktop();
  if (readStored(THINK_KEY, false) === true) loadThinking();
}

start();
