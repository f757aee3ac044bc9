// A split answer's pieces, shown side by side while they fill in (the unit answers them in parallel,
// here and on units nearby). The state is plain data changed by one pure function; the cards are drawn
// from it, text only (never HTML: a piece is model output, as untrusted as any reply).

const MAX_PIECES = 6;
const MAX_PIECE_TEXT = 20000;

/** The pieces of a plan event ({type: "plan", pieces: [titles]}), each waiting; [] when it does not fit. */
export function startPieces(event) {
  const titles = Array.isArray(event?.pieces) ? event.pieces : [];
  if (titles.length < 2 || titles.length > MAX_PIECES) return [];
  return titles.map((title) => ({ title: String(title).slice(0, 120), text: "", unit: "", state: "waiting" }));
}

/** The pieces after one piece event ({type: "piece", index, text, unit?, finish_reason?}). */
export function updatePieces(pieces, event) {
  const index = event?.index;
  if (!Number.isInteger(index) || index < 0 || index >= pieces.length) return pieces;
  const piece = { ...pieces[index] };
  const reason = typeof event.finish_reason === "string" ? event.finish_reason : "";
  if (reason === "restarted") {
    Object.assign(piece, { text: "", unit: "", state: "waiting" }); // run again, elsewhere
  } else {
    if (piece.state === "waiting") piece.state = "running";
    if (typeof event.unit === "string" && event.unit) piece.unit = event.unit.slice(0, 64);
    if (typeof event.text === "string") piece.text = (piece.text + event.text).slice(0, MAX_PIECE_TEXT);
    if (reason) piece.state = reason === "failed" ? "failed" : "done";
  }
  return pieces.map((old, i) => (i === index ? piece : old));
}

/** One line saying how the pieces went, for the collapsed view under the answer. */
export function describePieces(pieces) {
  const units = new Set(pieces.map((piece) => piece.unit || "this unit"));
  const failed = pieces.filter((piece) => piece.state === "failed").length;
  const where = units.size > 1 ? `on ${units.size} units` : units.has("this unit") ? "on this unit" : `on ${[...units][0]}`;
  return `Answered in ${pieces.length} pieces side by side, ${where}${failed ? `; ${failed} could not be answered` : ""}`;
}

/** Draw the pieces into container (a <details> the caller placed), replacing what was there. */
export function renderPieces(container, pieces, { finished = false } = {}) {
  let summary = container.querySelector("summary");
  if (!summary) {
    summary = document.createElement("summary");
    container.append(summary);
  }
  summary.textContent = finished ? describePieces(pieces) : `Working on ${pieces.length} pieces side by side…`;
  let grid = container.querySelector(".pieces-grid");
  if (!grid) {
    grid = document.createElement("div");
    grid.className = "pieces-grid";
    container.append(grid);
  }
  while (grid.children.length < pieces.length) {
    const card = document.createElement("section");
    card.className = "piece";
    const title = document.createElement("h4");
    const text = document.createElement("p");
    text.className = "piece-text";
    const unit = document.createElement("small");
    unit.className = "piece-unit";
    card.append(title, text, unit);
    grid.append(card);
  }
  pieces.forEach((piece, i) => {
    const card = grid.children[i];
    card.dataset.state = piece.state;
    card.querySelector("h4").textContent = piece.title;
    card.querySelector(".piece-text").textContent = piece.text || (piece.state === "failed" ? "Could not be answered." : "…");
    card.querySelector(".piece-unit").textContent = piece.unit ? `by ${piece.unit}` : "";
  });
}
