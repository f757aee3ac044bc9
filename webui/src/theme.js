import { readStored, writeStored } from "./storage.js";

const KEY = "iplm.theme";
const COLORS = { light: "#ffffff", dark: "#13171f" };
const darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

function getSystemTheme() {
  return darkQuery?.matches ? "dark" : "light";
}

function getChosenTheme() {
  const stored = readStored(KEY, null);
  return stored === "light" || stored === "dark" ? stored : null;
}

function paintTheme(chosen) {
  const root = document.documentElement;
  if (chosen) root.setAttribute("data-theme", chosen);
  else root.removeAttribute("data-theme");
  const effective = chosen ?? getSystemTheme();
  for (const meta of document.querySelectorAll('meta[name="theme-color"]')) {
    if (chosen) meta.setAttribute("content", COLORS[effective]);
    else meta.setAttribute("content", meta.media.includes("dark") ? COLORS.dark : COLORS.light);
  }
  const toggle = document.getElementById("theme-toggle");
  if (toggle) {
    const next = effective === "dark" ? "light" : "dark";
    toggle.setAttribute("aria-label", `Switch to ${next} theme`);
    toggle.title = `Switch to ${next} theme`;
  }
}

/** Apply the stored theme choice (or follow the system) and keep following system changes. */
export function applyTheme() {
  paintTheme(getChosenTheme());
  darkQuery?.addEventListener?.("change", () => paintTheme(getChosenTheme()));
}

/** Flip between light and dark and remember the choice on this phone. */
export function toggleTheme() {
  const effective = getChosenTheme() ?? getSystemTheme();
  const next = effective === "dark" ? "light" : "dark";
  writeStored(KEY, next);
  paintTheme(next);
}
