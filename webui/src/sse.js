/**
 * Create an incremental parser for a text/event-stream body.
 * push(text) accepts any slice of the stream (lines may be split anywhere, CRLF or LF);
 * onData(json) is called once per complete event with its parsed `data:` payload.
 * Events whose data is not JSON are passed to onData as {type: "raw", data}.
 */
export function createSseParser(onData) {
  let buffer = "";
  let dataLines = [];

  function dispatchEvent() {
    if (dataLines.length === 0) return;
    const data = dataLines.join("\n");
    dataLines = [];
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      parsed = { type: "raw", data };
    }
    onData(parsed);
  }

  function handleLine(line) {
    if (line === "") {
      dispatchEvent();
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") dataLines.push(value);
    // event:, id:, retry: are not used by this API.
  }

  function push(text) {
    buffer += text;
    let start = 0;
    for (;;) {
      const lf = buffer.indexOf("\n", start);
      const cr = buffer.indexOf("\r", start);
      let end;
      let next;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A lone CR at the very end may be the first half of CRLF: wait for more.
        if (cr === buffer.length - 1) break;
        end = cr;
        next = buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      handleLine(buffer.slice(start, end));
      start = next;
    }
    buffer = buffer.slice(start);
  }

  function end() {
    if (buffer.length > 0) {
      const rest = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer;
      buffer = "";
      handleLine(rest);
    }
    dispatchEvent();
  }

  return { push, end };
}
