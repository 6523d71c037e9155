// Small helpers shared by the page's modules. Every captured byte reaches the DOM as text:
// `el` only ever sets textContent and attributes, never HTML.

/** Build an element: el("a", {class: "x", href: "/"}, "text", otherNode). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** A two-column table: [[label, value node or text], ...] (null rows are skipped). */
export function kvTable(rows, head) {
  return el(
    "table",
    { class: "kv" },
    head ? el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))) : null,
    el("tbody", {}, rows.filter(Boolean).map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", {}, v)))),
  );
}

/** Name/value pairs (headers, query) in order, duplicates kept; `empty` when there are none.
 * A page of rows at first, more on demand: a capture may carry any number of them. */
export function pairsTable(pairs, empty) {
  if (!pairs.length) return el("p", { class: "muted", text: empty });
  const body = el("tbody");
  const row = ([k, v]) => el("tr", {}, el("th", { scope: "row" }, el("code", { text: k })), el("td", {}, el("code", { class: "wrap", text: v })));
  showMore(body, pairs.values(), row, { total: pairs.length, wrap: moreRow(2) });
  return el("table", { class: "kv pairs" }, body);
}

// -- big things, a screenful at a time ---------------------------------------------------------

export const PAGE = 200; // rows, keys, items or parts rendered at a time

/** A table row holding a "show more" button (for `showMore`'s `wrap`). */
export function moreRow(columns) {
  return (button) => el("tr", { class: "more-row" }, el("td", { colspan: columns }, button));
}

/**
 * Render what `items` (an iterator) yields into `container`, `page` at a time: the first page
 * now, the next when "Show more" is pressed, so the DOM only ever holds what was asked for.
 * `render(item, index)` makes one node; `total`, when known, words the button; `wrap` puts
 * the button in what the container may hold (a table row for a tbody).
 */
export function showMore(container, items, render, { page = PAGE, total = null, wrap = (b) => b, noun = "more" } = {}) {
  let pending = items.next();
  let shown = 0;
  const button = el("button", { type: "button", class: "small show-more" });
  const holder = wrap(button);
  const step = () => {
    holder.remove();
    for (let n = 0; n < page && !pending.done; n++) {
      container.append(render(pending.value, shown++));
      pending = items.next();
    }
    if (pending.done) return;
    const left = total === null ? null : total - shown;
    button.textContent = left === null ? `Show ${noun}` : `Show ${Math.min(page, left)} ${noun} (${left.toLocaleString("en-US")} not shown)`;
    container.append(holder);
  };
  button.addEventListener("click", step);
  step();
  return container;
}

// -- formatting ----------------------------------------------------------------------------

/** 1536 -> "1.5 KiB": the page's one size formatter (the CLI's is pinned to it by a test). */
export function humanSize(n) {
  if (n < 1024) return `${n} B`;
  let value = n;
  for (const unit of ["KiB", "MiB", "GiB", "TiB"]) {
    value /= 1024;
    if (value < 1024 || unit === "TiB") return `${value.toFixed(1).replace(/\.0$/, "")} ${unit}`;
  }
  return `${n} B`;
}

/** "2026-11-28T07:30:00.123456Z" -> Date (the server's timestamps are UTC). */
export function parseTime(received) {
  return new Date(received.replace(/(\.\d{3})\d*Z$/, "$1Z"));
}

export function clock(received) {
  const d = parseTime(received);
  if (Number.isNaN(d.getTime())) return received;
  const pad = (v, n = 2) => String(v).padStart(n, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function ago(received) {
  if (!received) return "";
  const seconds = Math.max(0, (Date.now() - parseTime(received).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A measured duration: "4.2 ms", "87 ms"; "" when there is none. */
export function elapsed(ms) {
  return ms === null || ms === undefined ? "" : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** [label, class, title] for the answer the inspector gave: the one description of it on the
 * page (rows, detail, replays); the CLI's is pinned to this one by a test. */
export function answerOf(response) {
  if (response.in_progress) {
    const delay = response.delay_ms ? ` for ${seconds(response.delay_ms)}` : "";
    return ["stalling…", "pending", `Stalling${delay} before answering`];
  }
  if (response.dropped) return ["dropped", "bad", "Closed the connection without an answer"];
  if (response.client_gave_up_after_ms !== null && response.client_gave_up_after_ms !== undefined) {
    const text = `sender gave up after ${seconds(response.client_gave_up_after_ms)}`;
    return [text, "bad", "The sender hung up before the answer was sent: it was not delivered"];
  }
  const status = response.status;
  if (status === null || status === undefined) return ["—", "muted", "No answer recorded"];
  const cls = { 2: "ok", 3: "info", 4: "warn" }[Math.floor(status / 100)] || "bad";
  const delay = response.delay_ms ? ` after a ${seconds(response.delay_ms)} stall` : "";
  return [String(status), cls, `Answered ${status}${delay}`];
}

const SIGNATURE_CLASSES = { valid: "ok", invalid: "bad", malformed: "bad", no_secret: "muted" };

/** The doctor's finding on a failed signature; it runs after the answer, so it may be due. */
export function doctorSays(sig) {
  return sig.doctor === "pending" ? "the doctor is looking into it…" : sig.diagnosis;
}

export function signatureOf(sig) {
  if (!sig) return null;
  const cls = SIGNATURE_CLASSES[sig.status] || "warn";
  const title = [sig.reason, doctorSays(sig)].filter(Boolean).join(" — ");
  return [`sig ${sig.status}`, cls, title];
}

// -- bytes -----------------------------------------------------------------------------------

/** The first `limit` bytes of base64 data, decoded (without decoding the rest). */
export function decodeBase64(b64, limit = Infinity) {
  const chars = limit === Infinity ? b64.length : Math.min(b64.length, Math.ceil(limit / 3) * 4);
  const binary = atob(b64.slice(0, chars));
  const n = Math.min(binary.length, limit);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The bytes as text if they are UTF-8 without control characters (tab/CR/LF allowed). */
export function asText(bytes, cutAtEnd = false) {
  let text;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    if (!cutAtEnd) return null;
    // A display cut may split a multi-byte character: retry without the last 1-3 bytes.
    for (let trim = 1; trim <= 3 && text === undefined; trim++) {
      try {
        text = strictUtf8.decode(bytes.subarray(0, bytes.length - trim));
      } catch {
        /* keep trimming */
      }
    }
    if (text === undefined) return null;
  }
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text) ? null : text;
}

// -- the API ---------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * The first `limit` bytes of a download route (`/api/requests/{id}/body`), as a Uint8Array:
 * one Range request, so the server reads and sends only those bytes — no base64, no JSON.
 * An empty body (nothing to send from byte 0: 416) is an empty array.
 */
export async function apiBytes(path, limit) {
  const response = await fetch(path, { headers: { range: `bytes=0-${limit - 1}` } });
  if (response.status === 416) return new Uint8Array(0);
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not JSON: the status says it */
    }
    throw new ApiError(response.status, detail);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  return bytes.length > limit ? bytes.subarray(0, limit) : bytes; // a server that sent it all
}

/** fetch() a JSON API route. Writes send JSON (the CSRF guard refuses form content types). */
export async function api(path, { method = "GET", json } = {}) {
  const init = { method, headers: { accept: "application/json" } };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

// -- clipboard -------------------------------------------------------------------------------

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Older browsers, or no focus: a hidden textarea and execCommand.
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/** Briefly change a button's label ("Copied"). */
export function flash(button, text, ms = 1200) {
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = text;
  clearTimeout(button._flash);
  button._flash = setTimeout(() => {
    button.textContent = button.dataset.label;
  }, ms);
}

/** A fresh endpoint name: "hook-5f2a9c". */
export function randomEndpoint() {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return `hook-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
