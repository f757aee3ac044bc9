// node --test tests/captive.test.mjs — the Wi-Fi banner's pure helpers.
import assert from "node:assert/strict";
import test from "node:test";

import { describeWifi, isAndroidUserAgent, readCaptiveStatus } from "../src/captive.js";

const ANDROID_CHROME =
  "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
const ANDROID_WEBVIEW =
  "Mozilla/5.0 (Linux; Android 11; SM-A515F Build/RP1A.200720.012; wv) AppleWebKit/537.36 (KHTML, like Gecko) " +
  "Version/4.0 Chrome/120.0.0.0 Mobile Safari/537.36";
const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

test("readCaptiveStatus keeps captive and the portal URL", () => {
  assert.deepEqual(readCaptiveStatus({ captive: false, "user-portal-url": "http://198.18.0.1/" }, "http://x"), {
    captive: false,
    portalUrl: "http://198.18.0.1/",
  });
  assert.deepEqual(readCaptiveStatus({ captive: true, "user-portal-url": "http://198.18.0.1" }, null), {
    captive: true,
    portalUrl: "http://198.18.0.1/",
  });
});

test("readCaptiveStatus falls back to the page's origin for a missing or unsafe portal URL", () => {
  const origin = "http://198.18.0.1";
  assert.equal(readCaptiveStatus({ captive: false }, origin).portalUrl, "http://198.18.0.1/");
  assert.equal(readCaptiveStatus({ captive: false, "user-portal-url": "javascript:alert(1)" }, origin).portalUrl,
    "http://198.18.0.1/");
  assert.equal(readCaptiveStatus({ captive: false, "user-portal-url": "not a url" }, origin).portalUrl,
    "http://198.18.0.1/");
  assert.equal(readCaptiveStatus({ captive: false, "user-portal-url": 42 }, undefined).portalUrl, null);
});

test("readCaptiveStatus rejects answers that are not the captive API's", () => {
  for (const body of [null, undefined, "captive", [], {}, { captive: "false" }, { error: { message: "not found" } }]) {
    assert.equal(readCaptiveStatus(body, "http://198.18.0.1"), null);
  }
});

test("isAndroidUserAgent", () => {
  assert.equal(isAndroidUserAgent(ANDROID_CHROME), true);
  assert.equal(isAndroidUserAgent(ANDROID_WEBVIEW), true);
  assert.equal(isAndroidUserAgent(IPHONE), false);
  assert.equal(isAndroidUserAgent(undefined), false);
});

test("describeWifi names the unit when it can", () => {
  assert.equal(describeWifi("iplm-1a2b"), "You're on iplm-1a2b's offline Wi-Fi. Everything stays on this unit.");
  assert.equal(describeWifi("  "), "You're on this unit's offline Wi-Fi. Everything stays on this unit.");
  assert.equal(describeWifi(null), "You're on this unit's offline Wi-Fi. Everything stays on this unit.");
});
