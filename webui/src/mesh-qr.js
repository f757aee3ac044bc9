// A QR code as one SVG path, made on the page from the text (qrcode-generator, bundled: no network, no canvas).
import qrcode from "qrcode-generator";

// QR's alphanumeric mode holds 0-9, A-Z and " $%*+-./:" only, at 5.5 bits a character instead of 8.
const ALPHANUMERIC = /^[0-9A-Z $%*+\-./:]*$/;
// A mesh key is case-insensitive ("iplm1-" + base32): upper case makes it alphanumeric, so a smaller,
// easier-to-scan code (version 4 instead of 5 at level M). The unit accepts either case.
const MESH_KEY = /^iplm1-[a-z2-7]+$/i;

/**
 * {size, path, text}: the code's width in modules (quiet zone included) and an SVG path of its dark modules,
 * one unit per module; `text` is what the code holds. Error correction M: survives a smudge or a glare.
 */
export function buildQrPath(text, { margin = 4, level = "M" } = {}) {
  const data = MESH_KEY.test(text) ? text.toUpperCase() : String(text);
  const code = qrcode(0, level);
  code.addData(data, ALPHANUMERIC.test(data) ? "Alphanumeric" : "Byte");
  code.make();
  const count = code.getModuleCount();
  const parts = [];
  for (let row = 0; row < count; row += 1) {
    // One rectangle per run of dark modules in a row: a few hundred path commands, not thousands.
    let col = 0;
    while (col < count) {
      if (!code.isDark(row, col)) {
        col += 1;
        continue;
      }
      const start = col;
      while (col < count && code.isDark(row, col)) col += 1;
      parts.push(`M${start + margin} ${row + margin}h${col - start}v1h-${col - start}z`);
    }
  }
  return { size: count + 2 * margin, modules: count, path: parts.join(""), text: data };
}
