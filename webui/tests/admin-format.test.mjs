// node --test tests/admin-format.test.mjs — the admin page's pure helpers.
import assert from "node:assert/strict";
import test from "node:test";

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
  formatEta,
  formatMemory,
  formatRate,
  isOffered,
  shortenHash,
  sortModels,
} from "../src/admin-format.js";

test("formatBytes", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(340_000), "340 KB");
  assert.equal(formatBytes(98_362_432), "98.4 MB");
  assert.equal(formatBytes(280_000_000), "280 MB");
  assert.equal(formatBytes(1_480_000_000), "1.48 GB");
  assert.equal(formatBytes(12_000_000_000), "12 GB");
  assert.equal(formatBytes(3_200_000_000), "3.2 GB");
  assert.equal(formatBytes(null), "?");
  assert.equal(formatBytes(-1), "?");
  assert.equal(formatBytes(Number.NaN), "?");
});

test("formatMemory rounds binary GB up to a half", () => {
  assert.equal(formatMemory(8 * 1024 ** 3), "8 GB");
  assert.equal(formatMemory(1.2 * 1024 ** 3), "1.5 GB");
  assert.equal(formatMemory(6 * 1024 ** 3 + 1), "6.5 GB");
  assert.equal(formatMemory(0), "?");
});

test("formatRate", () => {
  assert.equal(formatRate(3_400_000), "3.4 MB/s");
  assert.equal(formatRate(0), "");
  assert.equal(formatRate(undefined), "");
});

test("formatEta", () => {
  assert.equal(formatEta(0), "0 s left");
  assert.equal(formatEta(44.2), "45 s left");
  assert.equal(formatEta(200), "3 min 20 s left");
  assert.equal(formatEta(180), "3 min left");
  assert.equal(formatEta(15 * 60 + 7), "15 min left");
  assert.equal(formatEta(2 * 3600 + 5 * 60), "2 h 5 min left");
  assert.equal(formatEta(3 * 3600), "3 h left");
  assert.equal(formatEta(null), "");
  assert.equal(formatEta(Infinity), "");
  assert.equal(formatEta(-3), "");
});

test("computePercent never shows 100 before the end", () => {
  assert.equal(computePercent(0, 100), 0);
  assert.equal(computePercent(42, 100), 42);
  assert.equal(computePercent(999, 1000), 99);
  assert.equal(computePercent(1000, 1000), 100);
  assert.equal(computePercent(5, 0), null);
  assert.equal(computePercent(null, 100), null);
});

test("describeProgress", () => {
  const job = { state: "running", done_bytes: 296_000_000, total_bytes: 700_000_000, rate_bps: 3_100_000, eta_s: 130, rejected_pieces: 0 };
  assert.equal(describeProgress(job), "42% of 700 MB · 3.1 MB/s · 2 min 10 s left");
  assert.equal(describeProgress({ ...job, rate_bps: 0, eta_s: null }), "42% of 700 MB · waiting for data");
  assert.equal(describeProgress({ ...job, eta_s: null }), "42% of 700 MB · 3.1 MB/s · estimating time left");
  assert.equal(describeProgress({ ...job, rejected_pieces: 1 }), "42% of 700 MB · 3.1 MB/s · 2 min 10 s left · 1 bad piece rejected");
  assert.equal(describeProgress({ ...job, total_bytes: 0 }), "296 MB · 3.1 MB/s · 2 min 10 s left");
  assert.equal(describeProgress(null), "");
});

test("shortenHash", () => {
  const hash = "b7c3d6907564b901bb5faa516cc5608abb1d02259e84cc0a05a248998572acd9";
  assert.equal(shortenHash(hash), "b7c3d690…acd9");
  assert.equal(shortenHash("abcdef"), "abcdef");
  assert.equal(shortenHash(null), "");
});

test("sortModels: installed, partial, available; stable inside a group", () => {
  const models = [
    { id: "a", state: "available" },
    { id: "p", state: "partial" },
    { id: "i1", state: "installed" },
    { id: "b", state: "available" },
    { id: "i2", state: "installed" },
    { id: "x", state: "weird" },
    null,
    { state: "installed" },
  ];
  assert.deepEqual(sortModels(models).map((m) => m.id), ["i1", "i2", "p", "a", "b", "x"]);
  assert.deepEqual(sortModels(undefined), []);
});

test("choosePollDelay: fast only while an install runs", () => {
  assert.equal(choosePollDelay([{ job: null }, { job: { state: "failed" } }]), 10000);
  assert.equal(choosePollDelay([{ job: null }, { job: { state: "running" } }]), 1000);
  assert.equal(choosePollDelay(undefined), 10000);
});

test("checkPin", () => {
  assert.equal(checkPin("12345678"), null);
  assert.equal(checkPin(" 123456789012 "), null);
  assert.match(checkPin("1234567"), /8 to 12/);
  assert.match(checkPin("1234567890123"), /8 to 12/);
  assert.match(checkPin("12a4"), /digits only/);
  assert.match(checkPin(""), /Enter/);
});

test("describeFit and describeFormat", () => {
  assert.equal(describeFit({ fits: true, min_memory_bytes: 8 * 1024 ** 3 }), "fits this unit");
  assert.equal(describeFit({ fits: false, min_memory_bytes: 8 * 1024 ** 3 }), "needs 8 GB memory");
  assert.equal(describeFormat({ format: "gguf", engine: "llama.cpp" }), "GGUF · llama.cpp");
  assert.equal(describeFormat({ format: "mlc", engine: "mlc" }), "MLC · MLC LLM");
});

test("chooseInstallLabel", () => {
  assert.equal(chooseInstallLabel({ state: "available" }), "Install");
  assert.equal(chooseInstallLabel({ state: "partial" }), "Resume");
  assert.equal(chooseInstallLabel({ state: "partial", job: { state: "failed" } }), "Resume");
  assert.equal(chooseInstallLabel({ state: "partial", job: { state: "running" } }), null);
  assert.equal(chooseInstallLabel({ state: "installed" }), null);
  assert.equal(chooseInstallLabel({ state: "available", embedded: true }), null);
});

test("checkDiskRoom", () => {
  const model = { state: "partial", size_bytes: 2_000_000_000, done_bytes: 500_000_000 };
  assert.equal(checkDiskRoom(model, 2_000_000_000), null);
  assert.equal(checkDiskRoom(model, 1_000_000_000), "Not enough free disk: needs 1.5 GB, 1 GB free.");
  assert.equal(checkDiskRoom({ ...model, state: "installed" }, 0), null);
  assert.equal(checkDiskRoom(model, null), null);
});

test("models this unit cannot run are not offered, and a line says why", () => {
  const mlc = { id: "a", state: "available", engine: "mlc", runnable: false, fits: false };
  const big = { id: "b", state: "available", engine: "llama.cpp", runnable: true, fits: false, min_memory_bytes: 8 * 1024 ** 3 };
  const ok = { id: "c", state: "available", engine: "llama.cpp", runnable: true, fits: true };
  const held = { ...mlc, id: "d", state: "installed" };
  const added = { ...mlc, id: "e", pinned_by: "admin" };
  assert.deepEqual([mlc, big, ok, held, added].filter(isOffered).map((m) => m.id), ["c", "d", "e"]);
  assert.equal(describeFit(mlc), "needs MLC LLM, not on this unit");
  assert.equal(describeFit(big), "needs 8 GB memory");
  assert.equal(describeNotOffered([mlc, big, ok]), "2 more models need MLC LLM or more memory than this unit has: not offered here.");
  assert.equal(describeNotOffered([mlc]), "1 more model needs MLC LLM: not offered here.");
  assert.equal(describeNotOffered([ok, held]), null);
});

test("describeJobError: a corrupt source is not worth retrying, a broken download is", () => {
  const corrupt = describeJobError({ code: "source_corrupt", message: "the source's copy of a.bin is corrupt" });
  assert.match(corrupt, /will not help/);
  assert.doesNotMatch(corrupt, /Resume continues/);
  const broken = describeJobError({ code: "source_interrupted", message: "the download broke off" });
  assert.match(broken, /Resume continues where it stopped/);
  assert.match(describeJobError(null), /unknown error/);
});

test("describeJobError: content only one unit vouches for may be installed trusting the mesh, a dispute not", () => {
  const lone = { code: "peer_manifest_unverified", message: "only 1 unit of the mesh vouches for Toy." };
  assert.ok(canTrustMesh(lone));
  assert.match(describeJobError(lone), /trusting the mesh/);
  const dispute = { code: "peer_manifests_disagree", message: "the units of the mesh disagree on Toy" };
  assert.ok(!canTrustMesh(dispute));
  assert.match(describeJobError(dispute), /different content/);
  assert.ok(!canTrustMesh({ code: "source_corrupt" }) && !canTrustMesh(null));
});
