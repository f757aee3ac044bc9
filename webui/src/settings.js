// Generation parameters: the unit recommends defaults and allowed ranges; this phone keeps only
// the values the person changed (overrides), so new unit defaults apply to everything else.
export const PARAMS = Object.freeze([
  { name: "max_tokens", inputId: "max-tokens", integer: true, fallbackLimits: [1, 4096] },
  { name: "temperature", inputId: "temperature", integer: false, fallbackLimits: [0, 2] },
  { name: "top_p", inputId: "top-p", integer: false, fallbackLimits: [0, 1] },
  // Deep thinking's budget: the unit sets it from its probe; a phone may ask for less or more, within limits.
  { name: "max_calls", inputId: "think-calls", integer: true, fallbackLimits: [1, 16] },
  { name: "max_seconds", inputId: "think-seconds", integer: false, fallbackLimits: [5, 600] },
]);

/** The [min, max] range the unit allows for a parameter. */
export function getLimits(unit, param) {
  const limits = unit?.limits?.[param.name];
  return Array.isArray(limits) && limits.length === 2 ? limits : param.fallbackLimits;
}

/** Parse a raw input value: {value} when valid, {error} when not, {value: null} when empty. */
export function parseParam(unit, param, raw) {
  const text = String(raw ?? "").trim();
  if (text === "") return { value: null };
  const value = Number(text);
  const [min, max] = getLimits(unit, param);
  if (!Number.isFinite(value)) return { error: "Not a number" };
  if (param.integer && !Number.isInteger(value)) return { error: "Whole number expected" };
  if (value < min || value > max) return { error: `Between ${min} and ${max}` };
  return { value };
}

/** The overrides that differ from the unit's defaults, clamped to its current limits. */
export function selectParams(unit, overrides) {
  const params = {};
  for (const param of PARAMS) {
    const value = overrides?.[param.name];
    if (typeof value !== "number" || !Number.isFinite(value)) continue;
    if (unit?.defaults?.[param.name] === value) continue;
    const [min, max] = getLimits(unit, param);
    params[param.name] = Math.min(max, Math.max(min, value));
  }
  return params;
}

/** The body of POST …/messages: {content, model?, params?, split: false?, think: true?}. */
export function buildMessagePayload({ content, model, params, split = true, think = false }) {
  const payload = { content };
  if (model) payload.model = model;
  if (params && Object.keys(params).length > 0) payload.params = params;
  if (split === false) payload.split = false;
  if (think === true) payload.think = true;
  return payload;
}
