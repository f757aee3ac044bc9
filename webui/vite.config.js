import { defineConfig } from "vite";

// The Flask portal serves this folder: / → index.html, /assets/*, /manifest.webmanifest, /sw.js, /icons/*.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../appliance/portal/webui_dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // Older phones in captive-portal sheets: stay on Vite's conservative default targets.
    target: "modules",
    sourcemap: false,
  },
  server: {
    host: "127.0.0.1",
    // `npm run dev` + `npm run mock` in another shell: the mock answers /api on 8787.
    proxy: { "/api": "http://127.0.0.1:8787" },
  },
});
