import { Marked } from "marked";
import DOMPurify from "dompurify";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

// Model output is untrusted. Raw HTML is shown as text; images become links so that
// nothing is fetched from elsewhere (the unit is offline and nothing should leave the mesh).
const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html({ text, block }) {
      const escaped = escapeHtml(text);
      return block ? `<p>${escaped.trim().replace(/\n/g, "<br>")}</p>\n` : escaped;
    },
    image({ href, text }) {
      const label = escapeHtml(text || href || "image");
      return href ? `<a href="${escapeHtml(href)}">${label}</a>` : label;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("rel", "noopener noreferrer");
    node.removeAttribute("target"); // no new windows: captive-portal sheets cannot open them
  }
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "button", "textarea", "select", "iframe", "video", "audio", "source", "picture"],
  FORBID_ATTR: ["style", "srcset", "formaction"],
  ALLOW_DATA_ATTR: false,
};

/** Render untrusted Markdown to sanitized HTML (safe for innerHTML). */
export function renderMarkdown(text) {
  const html = marked.parse(String(text ?? ""));
  return DOMPurify.sanitize(html, PURIFY_CONFIG);
}
