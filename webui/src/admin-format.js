// Pure helpers for the admin page: plain data in, text or plain data out (tested in tests/admin-format.test.mjs).

const KB = 1000;
const MB = 1000 * KB;
const GB = 1000 * MB;

/** Bytes as a short decimal size: "512 B", "340 KB", "86.2 MB", "1.4 GB". Unknown → "?". */
export function formatBytes(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "?";
  if (bytes < KB) return `${Math.round(bytes)} B`;
  if (bytes < MB) return `${Math.round(bytes / KB)} KB`;
  if (bytes < GB) return `${trimNumber(bytes / MB)} MB`;
  return `${trimNumber(bytes / GB)} GB`;
}

function trimNumber(value) {
  // Three significant digits at most, no trailing ".0": 86.2, 340, 1.4, 12
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return String(Number(value.toFixed(digits)));
}

/** A memory need in binary GB, rounded up to a half: 8 GiB → "8 GB", 1.2 GiB → "1.5 GB". */
export function formatMemory(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes <= 0) return "?";
  const halves = Math.ceil((bytes / 1024 ** 3) * 2) / 2;
  return `${halves} GB`;
}

/** Bytes per second as "3.4 MB/s"; 0 or unknown → "". */
export function formatRate(bytesPerSecond) {
  if (typeof bytesPerSecond !== "number" || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "";
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds left as "45 s left", "3 min 20 s left", "2 h 5 min left"; unknown → "". */
export function formatEta(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "";
  const total = Math.ceil(seconds);
  if (total < 60) return `${total} s left`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) {
    const rest = total % 60;
    return rest && minutes < 10 ? `${minutes} min ${rest} s left` : `${minutes} min left`;
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min left` : `${hours} h left`;
}

/** Whole percent of done/total, clamped to 0–100 (99 until done really equals total); unknown total → null. */
export function computePercent(done, total) {
  if (typeof total !== "number" || !(total > 0) || typeof done !== "number" || !Number.isFinite(done)) return null;
  if (done >= total) return 100;
  return Math.max(0, Math.min(99, Math.floor((done / total) * 100)));
}

/** The line under a running install's progress bar: "42% · 3.1 MB/s · 1 min 5 s left". */
export function describeProgress(job) {
  if (!job) return "";
  const parts = [];
  const percent = computePercent(job.done_bytes, job.total_bytes);
  parts.push(percent === null ? formatBytes(job.done_bytes) : `${percent}%`);
  if (typeof job.total_bytes === "number" && job.total_bytes > 0) {
    parts[0] += ` of ${formatBytes(job.total_bytes)}`;
  }
  const rate = formatRate(job.rate_bps);
  if (job.state === "running") {
    if (rate) parts.push(rate);
    const eta = formatEta(job.eta_s);
    parts.push(eta || (rate ? "estimating time left" : "waiting for data"));
  }
  if (job.rejected_pieces > 0) {
    parts.push(`${job.rejected_pieces} bad piece${job.rejected_pieces === 1 ? "" : "s"} rejected`);
  }
  return parts.join(" · ");
}

/** A root hash shortened for a phone: first 8 and last 4 characters. */
export function shortenHash(hash, head = 8, tail = 4) {
  if (typeof hash !== "string" || hash === "") return "";
  return hash.length <= head + tail + 1 ? hash : `${hash.slice(0, head)}…${hash.slice(-tail)}`;
}

const STATE_ORDER = { installed: 0, partial: 1, available: 2 };

/** Models ordered installed → partial → available; the unit's own order is kept inside each group. */
export function sortModels(models) {
  const list = Array.isArray(models) ? models.filter((model) => model && typeof model.id === "string") : [];
  return list
    .map((model, index) => ({ model, index }))
    .sort((a, b) => rankState(a.model.state) - rankState(b.model.state) || a.index - b.index)
    .map(({ model }) => model);
}

function rankState(state) {
  return STATE_ORDER[state] ?? 3;
}

/** True when the install job is still going. */
export function isJobRunning(model) {
  return model?.job?.state === "running";
}

/** Milliseconds until the next poll: 1 s while any install runs, 10 s otherwise. */
export function choosePollDelay(models) {
  return Array.isArray(models) && models.some(isJobRunning) ? 1000 : 10000;
}

/** What a new PIN holds wrong, or null when it is 8–12 digits (the unit refuses shorter ones). */
export function checkPin(text) {
  const pin = String(text ?? "").trim();
  if (pin === "") return "Enter a PIN.";
  if (!/^\d+$/.test(pin)) return "A PIN has digits only.";
  if (pin.length < 8 || pin.length > 12) return "A PIN has 8 to 12 digits.";
  return null;
}

/** "fits this unit" or "needs 8 GB memory". */
const FORMAT_NAMES = { mlc: "MLC", gguf: "GGUF" };
const ENGINE_NAMES = { mlc: "MLC LLM", "llama.cpp": "llama.cpp" };

export function describeFit(model) {
  if (model?.runnable === false) {
    return `needs ${ENGINE_NAMES[model.engine] ?? model.engine ?? "another engine"}, not on this unit`;
  }
  if (model?.fits !== false) return "fits this unit";
  return `needs ${formatMemory(model.min_memory_bytes)} memory`;
}

/**
 * Whether the list offers a model: everything held (installed, partial) or added by the admin, and of the
 * rest only what this unit can run in its memory.
 */
export function isOffered(model) {
  if (!model) return false;
  if (model.state !== "available" || model.pinned_by === "admin") return true;
  return model.fits !== false;
}

/** "2 more models need MLC LLM or more memory than this unit has: not offered here." or null. */
export function describeNotOffered(models) {
  const hidden = (Array.isArray(models) ? models : []).filter((model) => !isOffered(model));
  if (!hidden.length) return null;
  const engines = [...new Set(hidden.filter((m) => m.runnable === false).map((m) => ENGINE_NAMES[m.engine] ?? m.engine))];
  const reasons = [...engines, ...(hidden.some((m) => m.runnable !== false) ? ["more memory than this unit has"] : [])];
  const count = hidden.length === 1 ? "1 more model needs" : `${hidden.length} more models need`;
  return `${count} ${reasons.join(" or ")}: not offered here.`;
}

/** "GGUF · llama.cpp", "MLC · MLC LLM". */
export function describeFormat(model) {
  const format = FORMAT_NAMES[model?.format] ?? String(model?.format ?? "").toUpperCase();
  const engine = ENGINE_NAMES[model?.engine] ?? String(model?.engine ?? "");
  return [format, engine].filter(Boolean).join(" · ");
}

/** The install button's label for a model, or null when there is nothing to install. */
export function chooseInstallLabel(model) {
  if (!model || model.embedded || isJobRunning(model)) return null;
  if (model.state === "partial") return "Resume";
  if (model.state === "available") return "Install";
  return null;
}

/** Why the unit lacks disk room for the rest of a model, or null when it has room (or cannot tell). */
export function checkDiskRoom(model, diskFreeBytes) {
  if (!model || model.state === "installed" || typeof diskFreeBytes !== "number") return null;
  const size = typeof model.size_bytes === "number" ? model.size_bytes : 0;
  const done = typeof model.done_bytes === "number" ? model.done_bytes : 0;
  const needed = size - done;
  if (!(needed > diskFreeBytes)) return null;
  return `Not enough free disk: needs ${formatBytes(needed)}, ${formatBytes(diskFreeBytes)} free.`;
}

// Failures where the source's own copy is wrong: the same source gives the same bytes again.
const SOURCE_FAULTS = new Set(["source_corrupt", "source_wrong_size", "source_missing_file", "root_mismatch", "source_mismatch"]);

/** Whether a failed install may go on if the admin trusts the units of the mesh for the model's content. */
export const canTrustMesh = (error) => error?.code === "peer_manifest_unverified";

/** What a failed install job says, with advice that is true for its kind of failure. */
export function describeJobError(error) {
  const message = error?.message || "unknown error";
  if (canTrustMesh(error)) {
    return `Install failed: ${message.replace(/\.$/, "")}. Only one unit vouches for this content and the ` +
      "source cannot be asked: install it trusting the mesh if you trust its units for this model.";
  }
  if (error?.code === "peer_manifests_disagree") {
    return `Install failed: ${message}. Units of the mesh offer different content for this model: install it ` +
      "from its source, or add the manifest you trust with iplm models add.";
  }
  if (SOURCE_FAULTS.has(error?.code)) {
    return `Install failed: ${message}. Trying again from the same source will not help (verified pieces are kept): ` +
      "install it from a unit of the mesh that holds it, or from another source with iplm models install.";
  }
  return `Install failed: ${message}. Resume continues where it stopped.`;
}
