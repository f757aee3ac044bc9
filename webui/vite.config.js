import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
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

// Every text file of the build also as .gz and .br, made once here at the best level: the portal sends the
// one the phone accepts (browsers take br only over HTTPS, so gzip is what phones on the unit's Wi-Fi get).
// Kept only where it saves at least a tenth: tiny files are not worth a second round of bookkeeping.
const COMPRESSIBLE = /\.(js|css|html|svg|webmanifest|json|txt)$/;
const precompress = {
  name: "iplm-precompress",
  apply: "build",
  writeBundle(options) {
    const walk = (dir) =>
      readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? walk(path) : [path];
      });
    for (const path of walk(options.dir).filter((file) => COMPRESSIBLE.test(file))) {
      const data = readFileSync(path);
      const variants = {
        gz: gzipSync(data, { level: 9 }),
        br: brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
      };
      for (const [suffix, packed] of Object.entries(variants)) {
        if (packed.length <= data.length * 0.9) writeFileSync(`${path}.${suffix}`, packed);
      }
    }
  },
};

// The Flask portal serves this folder: / → index.html, /admin → admin.html, /assets/*, /manifest.webmanifest,
// /sw.js, /icons/*.
export default defineConfig({
  base: "/",
  plugins: [serveAdminPath, precompress],
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
