import { requestJson } from "./api.js";

// The admin API. Signing in sets an HttpOnly cookie; every other call answers 401 "admin_required" without it.
const modelPath = (id) => `/api/admin/models/${encodeURIComponent(id)}`;

/** GET /api/admin/session → {admin: bool}. */
export const fetchAdminSession = (signal) => requestJson("GET", "/api/admin/session", undefined, signal);

/** POST /api/admin/session: sign in with the PIN (403 wrong_pin, 429 too_many_attempts). */
export const signIn = (pin) => requestJson("POST", "/api/admin/session", { pin });

/** DELETE /api/admin/session: sign out. */
export const signOut = () => requestJson("DELETE", "/api/admin/session");

/** PUT /api/admin/pin (403 wrong_pin, 400 invalid_pin). */
export const changePin = (current, next) => requestJson("PUT", "/api/admin/pin", { current, new: next });

/** GET /api/admin/models → {models, default_model, disk_free_bytes}. */
export const fetchAdminModels = (signal) => requestJson("GET", "/api/admin/models", undefined, signal);

/** POST /api/admin/models/<id>/install: start or resume (202 {job}); trustMesh: take the content the
 * units of the mesh offer when neither a pin nor the source can vouch for it. */
export const startInstall = (id, { trustMesh = false } = {}) =>
  requestJson("POST", `${modelPath(id)}/install`, trustMesh ? { trust_mesh: true } : undefined);

/** DELETE /api/admin/models/<id>/install: cancel the running install. */
export const cancelInstall = (id) => requestJson("DELETE", `${modelPath(id)}/install`);

/** DELETE /api/admin/models/<id>: remove an installed model. */
export const removeModel = (id) => requestJson("DELETE", modelPath(id));

/** PUT /api/admin/default-model: the model that serves chats (409 with a message when it cannot run here). */
export const chooseDefaultModel = (model) => requestJson("PUT", "/api/admin/default-model", { model });

/** GET /api/admin/mesh → {mesh_id, self, running, key_set, key_error, restart_needed, unit, peers, now}. */
export const fetchMesh = (signal) => requestJson("GET", "/api/admin/mesh", undefined, signal);

/** GET /api/admin/mesh/key → {key}: the mesh's secret, asked for explicitly (404 no_mesh). */
export const fetchMeshKey = () => requestJson("GET", "/api/admin/mesh/key");

/** POST /api/admin/mesh/create → {mesh_id, restart_needed} (409 mesh_exists unless `force`). */
export const createMesh = (force = false) => requestJson("POST", "/api/admin/mesh/create", { force });

/** POST /api/admin/mesh/join → {mesh_id, restart_needed} (400 with what is wrong with the key). */
export const joinMesh = (key) => requestJson("POST", "/api/admin/mesh/join", { key });

/** How much the chat store holds and how long it keeps chats. */
export const fetchChatStorage = (signal) => requestJson("GET", "/api/admin/chats", undefined, signal);

/** Sets how many days chats are kept; resolves to the new storage description. */
export const setChatRetention = (days) => requestJson("PUT", "/api/admin/chats", { retention_days: days });
