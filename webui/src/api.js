import { createSseParser } from "./sse.js";

// Same origin only; the portal sets an anonymous HttpOnly cookie that identifies this phone.
const FETCH_DEFAULTS = { credentials: "same-origin", cache: "no-store" };

/** An API failure with a message fit to show to the person. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

function describeNetworkError(error) {
  if (error?.name === "AbortError") return error;
  return new ApiError("Cannot reach the unit. Check that this phone is still on its Wi-Fi.", { code: "network" });
}

async function readErrorResponse(response) {
  let message = `The unit answered with an error (HTTP ${response.status}).`;
  let code = null;
  let param = null;
  try {
    const body = await response.json();
    const error = body?.error;
    if (typeof error === "string") message = error;
    else if (error?.message) message = String(error.message);
    if (error?.code !== undefined) code = error.code;
    if (error?.param !== undefined) param = error.param;
  } catch {
    /* not JSON: keep the generic message */
  }
  return new ApiError(message, { status: response.status, code, param });
}

/** One JSON request to the portal: the parsed body (null when empty), or ApiError / AbortError. */
export async function requestJson(method, path, body, signal) {
  const init = { ...FETCH_DEFAULTS, method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw describeNetworkError(error);
  }
  if (!response.ok) throw await readErrorResponse(response);
  let text = "";
  try {
    if (response.status !== 204) text = await response.text();
  } catch (error) {
    throw describeNetworkError(error);
  }
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError("The unit sent an answer this page cannot read.", { status: response.status });
  }
}

const conversationPath = (id) => `/api/conversations/${encodeURIComponent(id)}`;

/** GET /captive-portal/api (RFC 8908; DHCP option 114 names it): only a unit on its own Wi-Fi answers it. */
export const fetchCaptiveStatus = (signal) => requestJson("GET", "/captive-portal/api", undefined, signal);

/** POST /captive-portal/open: the page is in front of a person, so the unit may now tell the OS "online". */
export const reportPortalOpened = () =>
  fetch("/captive-portal/open", { method: "POST", credentials: "same-origin" }).catch(() => undefined);

/** GET /api/unit: name, models, defaults and limits. */
export const fetchUnit = (signal) => requestJson("GET", "/api/unit", undefined, signal);

/** GET /api/conversations: this phone's conversations, newest first. */
export const listConversations = async (signal) =>
  (await requestJson("GET", "/api/conversations", undefined, signal))?.conversations ?? [];

/** POST /api/conversations: create one (title and model optional). */
export const createConversation = (fields, signal) => requestJson("POST", "/api/conversations", fields, signal);

/** GET /api/conversations/<id>: the conversation with its messages. */
export const fetchConversation = (id, signal) => requestJson("GET", conversationPath(id), undefined, signal);

/** PATCH /api/conversations/<id>: rename. */
export const renameConversation = (id, title) => requestJson("PATCH", conversationPath(id), { title });

/** DELETE /api/conversations/<id>. */
export const deleteConversation = (id) => requestJson("DELETE", conversationPath(id));

/** Deletes every chat of this phone on the unit; resolves to { deleted: count }. */
export const deleteAllConversations = () => requestJson("DELETE", "/api/conversations");

/**
 * POST /api/conversations/<id>/messages and stream the reply.
 * onOpen() is called once the unit has accepted the message (HTTP 2xx);
 * onEvent receives each parsed event ({type: "delta"|"done"|"error", ...}).
 * Resolves when the stream ends; rejects with ApiError on HTTP errors, AbortError on abort.
 */
export async function streamMessage(id, payload, { signal, onOpen, onEvent }) {
  let response;
  try {
    response = await fetch(`${conversationPath(id)}/messages`, {
      ...FETCH_DEFAULTS,
      method: "POST",
      signal,
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(payload),
    });
  } catch (error) {
    throw describeNetworkError(error);
  }
  if (!response.ok) throw await readErrorResponse(response);
  onOpen?.();

  const contentType = response.headers.get("Content-Type") || "";
  if (contentType.includes("application/json")) {
    // Not a stream: treat as a single event (or an error object).
    const body = await response.json().catch(() => null);
    if (body?.error) throw new ApiError(body.error.message || "The unit reported an error.", { code: body.error.code });
    if (body) onEvent(body);
    return;
  }

  const parser = createSseParser(onEvent);
  const reader = response.body?.getReader?.();
  if (!reader) {
    // Old WebViews without streaming bodies: the whole reply arrives at once.
    parser.push(await response.text());
    parser.end();
    return;
  }
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
    parser.end();
  } catch (error) {
    throw describeNetworkError(error);
  } finally {
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }
}
