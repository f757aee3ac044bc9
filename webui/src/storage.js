// localStorage may be missing or throw (captive-portal sheets, private modes, disabled storage):
// every access is guarded and falls back to memory for this page's lifetime.
const memory = new Map();

function getLocalStorage() {
  try {
    const store = window.localStorage;
    const probe = "__iplm_probe__";
    store.setItem(probe, probe);
    store.removeItem(probe);
    return store;
  } catch {
    return null;
  }
}

const local = getLocalStorage();

/** Read a JSON value stored under key, or fallback when absent or unreadable. */
export function readStored(key, fallback) {
  let raw = memory.has(key) ? memory.get(key) : null;
  if (raw === null && local) {
    try {
      raw = local.getItem(key);
    } catch {
      raw = null;
    }
  }
  if (raw === null || raw === undefined) return fallback;
  try {
    return JSON.parse(raw);
  } catch {
    return fallback;
  }
}

/** Store value as JSON under key (memory always, localStorage when it works); null/undefined removes it. */
export function writeStored(key, value) {
  if (value === null || value === undefined) {
    memory.delete(key);
    try {
      local?.removeItem(key);
    } catch {
      /* memory already updated */
    }
    return;
  }
  const raw = JSON.stringify(value);
  memory.set(key, raw);
  try {
    local?.setItem(key, raw);
  } catch {
    /* quota or disabled: memory keeps it */
  }
}
