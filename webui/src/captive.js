// Pure helpers of the "you're on the unit's Wi-Fi" banner (tested with node --test).

function chooseWebUrl(...candidates) {
  for (const candidate of candidates) {
    if (typeof candidate !== "string" || candidate === "") continue;
    try {
      const url = new URL(candidate);
      // Only a web address may become a link: never javascript: or data: from an answer.
      if (url.protocol === "http:" || url.protocol === "https:") return url.href;
    } catch {
      /* not a URL: try the next */
    }
  }
  return null;
}

/**
 * The unit's captive-portal answer reduced to what the page shows, or null when the answer is not one
 * (then the page is not on a unit's Wi-Fi). portalUrl falls back to the page's own origin.
 */
export function readCaptiveStatus(body, pageOrigin) {
  if (!body || typeof body !== "object" || typeof body.captive !== "boolean") return null;
  const portalUrl = chooseWebUrl(body["user-portal-url"], typeof pageOrigin === "string" ? `${pageOrigin}/` : null);
  return { captive: body.captive, portalUrl };
}

/** Android shows "This network has no internet access" on a Wi-Fi like this one: the tip is for it alone. */
export function isAndroidUserAgent(userAgent) {
  return typeof userAgent === "string" && /\bAndroid\b/i.test(userAgent);
}

/** The banner's first line, naming the unit when its name is known. */
export function describeWifi(unitName) {
  const name = typeof unitName === "string" ? unitName.trim() : "";
  return `You're on ${name ? `${name}'s` : "this unit's"} offline Wi-Fi. Everything stays on this unit.`;
}
