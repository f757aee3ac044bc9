import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const page = (name) => fileURLToPath(new URL(name, import.meta.url));

// In `npm run dev`, answer /admin like the portal does (it serves admin.html there).
const serveAdminPath = {
  name: "iplm-admin-path",
  configureServer(server) {
    server.middlewares.use((req, _res, next) => {
      if (req.url === "/admin" || req.url?.startsWith("/admin?")) req.url = req.url.replace("/admin", "/admin.html");
      next();
    });
  },
};

// The Flask portal serves this folder: / → index.html, /admin → admin.html, /assets/*, /manifest.webmanifest,
// /sw.js, /icons/*.
export default defineConfig({
  base: "/",
  plugins: [serveAdminPath],
  build: {
    outDir: "../appliance/portal/webui_dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // Older phones in captive-portal sheets: stay on Vite's conservative default targets.
    target: "modules",
    sourcemap: false,
    // Two pages sharing the CSS and the API helpers: the chat and the admin page.
    rollupOptions: {
      input: { main: page("index.html"), admin: page("admin.html") },
      // What both pages load (Pico, the shared CSS, API helpers, storage, theme) in one "shared" chunk.
      output: {
        manualChunks: (id) =>
          /[\\/]node_modules[\\/]@picocss[\\/]|[\\/]src[\\/](style\.css|api\.js|sse\.js|storage\.js|theme\.js)$/.test(id)
            ? "shared"
            : undefined,
      },
    },
  },
  server: {
    host: "127.0.0.1",
    // `npm run dev` + `npm run mock` in another shell: the mock answers /api on 8787.
    proxy: { "/api": "http://127.0.0.1:8787", "/captive-portal": "http://127.0.0.1:8787" },
  },
});
