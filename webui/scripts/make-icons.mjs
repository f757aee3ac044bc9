// Writes the app icons into public/icons/: icon.svg, icon-192.png, icon-512.png, apple-touch-icon.png (180).
// No dependencies: the PNGs are drawn pixel by pixel (4x4 supersampling) and encoded with zlib.
// Run once after changing the design: `npm run icons`, then commit the files.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "..", "public", "icons");

// Design in a 512 unit square: a chat bubble with three dots on a full-bleed background
// (full bleed and a centred shape keep it valid as a maskable icon).
const BACKGROUND = [1, 114, 173]; // Pico azure primary, #0172ad
const BUBBLE = [255, 255, 255];
const DOT = [1, 114, 173];
const BOX = { x0: 104, y0: 136, x1: 408, y1: 336, r: 64 };
const TAIL = [
  [150, 320],
  [250, 330],
  [136, 404],
];
const DOTS = [
  [184, 236],
  [256, 236],
  [328, 236],
];
const DOT_R = 24;

function insideRoundedBox(x, y) {
  const cx = Math.min(Math.max(x, BOX.x0 + BOX.r), BOX.x1 - BOX.r);
  const cy = Math.min(Math.max(y, BOX.y0 + BOX.r), BOX.y1 - BOX.r);
  return x >= BOX.x0 && x <= BOX.x1 && y >= BOX.y0 && y <= BOX.y1 && (x - cx) ** 2 + (y - cy) ** 2 <= BOX.r ** 2;
}

function insideTriangle(x, y, [a, b, c]) {
  const side = (p, q) => (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]);
  const d1 = side(a, b);
  const d2 = side(b, c);
  const d3 = side(c, a);
  const negative = d1 < 0 || d2 < 0 || d3 < 0;
  const positive = d1 > 0 || d2 > 0 || d3 > 0;
  return !(negative && positive);
}

function colourAt(x, y) {
  if (DOTS.some(([dx, dy]) => (x - dx) ** 2 + (y - dy) ** 2 <= DOT_R ** 2)) return DOT;
  if (insideRoundedBox(x, y) || insideTriangle(x, y, TAIL)) return BUBBLE;
  return BACKGROUND;
}

function drawPixels(size) {
  const samples = 4;
  const scale = 512 / size;
  const rows = [];
  for (let py = 0; py < size; py += 1) {
    const row = Buffer.alloc(1 + size * 3); // filter byte 0, then RGB
    for (let px = 0; px < size; px += 1) {
      const sum = [0, 0, 0];
      for (let sy = 0; sy < samples; sy += 1) {
        for (let sx = 0; sx < samples; sx += 1) {
          const colour = colourAt((px + (sx + 0.5) / samples) * scale, (py + (sy + 0.5) / samples) * scale);
          for (let i = 0; i < 3; i += 1) sum[i] += colour[i];
        }
      }
      for (let i = 0; i < 3; i += 1) row[1 + px * 3 + i] = Math.round(sum[i] / samples ** 2);
    }
    rows.push(row);
  }
  return Buffer.concat(rows);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function computeCrc32(buffer) {
  let crc = 0xffffffff;
  for (const byte of buffer) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function encodeChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(computeCrc32(body));
  return Buffer.concat([length, body, crc]);
}

function encodePng(size) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  header[10] = 0; // compression
  header[11] = 0; // filter
  header[12] = 0; // no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    encodeChunk("IHDR", header),
    encodeChunk("IDAT", deflateSync(drawPixels(size), { level: 9 })),
    encodeChunk("IEND", Buffer.alloc(0)),
  ]);
}

function renderSvg() {
  const hex = (rgb) => `#${rgb.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
  const dots = DOTS.map(([x, y]) => `<circle cx="${x}" cy="${y}" r="${DOT_R}"/>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">
<rect width="512" height="512" rx="112" fill="${hex(BACKGROUND)}"/>
<g fill="${hex(BUBBLE)}"><rect x="${BOX.x0}" y="${BOX.y0}" width="${BOX.x1 - BOX.x0}" height="${BOX.y1 - BOX.y0}" rx="${BOX.r}"/><path d="M${TAIL.map((p) => p.join(" ")).join("L")}Z"/></g>
<g fill="${hex(DOT)}">${dots}</g>
</svg>
`;
}

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "icon.svg"), renderSvg());
for (const [name, size] of [
  ["icon-192.png", 192],
  ["icon-512.png", 512],
  ["apple-touch-icon.png", 180],
]) {
  writeFileSync(join(OUT, name), encodePng(size));
}
console.log(`icons written to ${OUT}`);
