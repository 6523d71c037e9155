// Body views: pretty JSON (collapsible, faithful), form fields, multipart parts, text, hex,
// and an HTML preview inside a sandboxed iframe. All DOM is built with textContent.
//
// Any body the server accepts must open at once, however it is shaped (a JSON array of a
// million numbers, an object of 500,000 keys, a form of a million fields, 100,000 parts):
// every view renders a screenful and grows on "Show more" (`showMore`), and parses only as
// far as it shows (forms and parts are read lazily), so the DOM stays small.

import { PAGE, asText, clear, el, humanSize, moreRow, showMore } from "./util.js";

export const VIEW_LIMIT = 2 * 1024 * 1024; // fetched and decoded for the views; beyond, download
export const TEXT_LIMIT = 256 * 1024; // previewed as HTML
export const JSON_LIMIT = 2 * 1024 * 1024; // parsed for the tree (forms and parts: any size)
export const HEX_LIMIT = 64 * 1024;
const OPEN_BUDGET = 400; // nodes rendered open at first; deeper levels open on click
const TEXT_PAGE = 64 * 1024; // characters of text, and 4 KiB of hex, per "Show more"
const HEX_PAGE = 4096;

// -- a JSON parser that keeps what JSON.parse loses ------------------------------------------
// Number literals stay as written (12345678901234567890, 1.0, -0), duplicate keys stay, in
// order: this is a viewer for debugging senders, not a data loader.

const MAX_DEPTH = 256;
const WORDS = ["true", "false", "null"];
const LITERALS = { true: { t: "b", v: "true" }, false: { t: "b", v: "false" }, null: { t: "z" } };

// A scanner over char codes (not regular expressions): a capture of a million values parses in
// a fraction of a second.
const SPACE = new Uint8Array(128);
for (const c of [9, 10, 13, 32]) SPACE[c] = 1;
const isDigit = (c) => c >= 48 && c <= 57;

export function parseJSON(text) {
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at character ${i}`);
  };
  const ws = () => {
    while (i < n && SPACE[text.charCodeAt(i)] === 1) i++;
  };
  const digits = () => {
    const from = i;
    while (isDigit(text.charCodeAt(i))) i++;
    if (i === from) fail("bad number");
  };
  const number = () => {
    const from = i;
    if (text.charCodeAt(i) === 45) i++; // -
    if (text.charCodeAt(i) === 48) i++; // a leading 0 stands alone
    else digits();
    if (text.charCodeAt(i) === 46) {
      i++;
      digits();
    }
    const e = text.charCodeAt(i);
    if (e === 101 || e === 69) {
      i++;
      const sign = text.charCodeAt(i);
      if (sign === 43 || sign === 45) i++;
      digits();
    }
    return text.slice(from, i);
  };
  const string = () => {
    const from = i++;
    let escaped = false;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 34) break;
      if (c < 32) fail("control character in a string");
      if (c === 92) {
        escaped = true;
        i += 2;
      } else i++;
    }
    i++;
    if (!escaped) return text.slice(from + 1, i - 1);
    try {
      return JSON.parse(text.slice(from, i)); // escapes: checked and decoded natively
    } catch {
      i = from;
      return fail("bad string");
    }
  };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    ws();
    const c = text.charCodeAt(i);
    if (isDigit(c) || c === 45) return number(); // a bare string: no object per number
    if (c === 34) return { t: "s", v: string() };
    if (c === 123) {
      i++;
      const entries = [];
      ws();
      if (text.charCodeAt(i) === 125) {
        i++;
        return { t: "o", e: entries };
      }
      for (;;) {
        ws();
        if (text.charCodeAt(i) !== 34) fail("expected a key");
        const key = string();
        ws();
        if (text.charCodeAt(i) !== 58) fail("expected ':'");
        i++;
        entries.push([key, value(depth + 1)]);
        ws();
        const next = text.charCodeAt(i++);
        if (next === 125) return { t: "o", e: entries };
        if (next !== 44) {
          i--;
          fail("expected ',' or '}'");
        }
      }
    }
    if (c === 91) {
      i++;
      const items = [];
      ws();
      if (text.charCodeAt(i) === 93) {
        i++;
        return { t: "a", e: items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        const next = text.charCodeAt(i++);
        if (next === 93) return { t: "a", e: items };
        if (next !== 44) {
          i--;
          fail("expected ',' or ']'");
        }
      }
    }
    for (const word of WORDS) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return LITERALS[word];
      }
    }
    return fail("unexpected input");
  };
  const root = value(0);
  ws();
  if (i < n) fail("trailing data");
  return root;
}

function countNodes(node, limit) {
  let n = 0;
  const stack = [node];
  while (stack.length && n < limit) {
    const cur = stack.pop();
    n++;
    if (cur.t === "o") for (const [, v] of cur.e) stack.push(v);
    else if (cur.t === "a") for (const v of cur.e) stack.push(v);
  }
  return n;
}

function scalar(node) {
  if (typeof node === "string") return el("span", { class: "j-num", text: node });
  switch (node.t) {
    case "s":
      return el("span", { class: "j-str", text: JSON.stringify(node.v) });
    case "n":
      return el("span", { class: "j-num", text: node.v });
    case "b":
      return el("span", { class: "j-bool", text: node.v });
    default:
      return el("span", { class: "j-null", text: "null" });
  }
}

function label(key) {
  if (key === undefined) return null;
  return [el("span", { class: typeof key === "number" ? "j-index" : "j-key", text: typeof key === "number" ? String(key) : JSON.stringify(key) }), ": "];
}

function renderJSON(node, key, depth, budget) {
  if (node.t !== "o" && node.t !== "a") {
    return el("div", { class: "j-line" }, label(key), scalar(node));
  }
  const isObject = node.t === "o";
  const count = node.e.length;
  const [open, close] = isObject ? ["{", "}"] : ["[", "]"];
  if (count === 0) return el("div", { class: "j-line" }, label(key), `${open}${close}`);
  const noun = isObject ? (count === 1 ? "key" : "keys") : count === 1 ? "item" : "items";
  const details = el("details", { class: "j-node" });
  details.append(el("summary", {}, label(key), open, el("span", { class: "j-count", text: ` ${count} ${noun} ` }), close));
  const children = el("div", { class: "j-children" });
  details.append(children);
  let rendered = false;
  const fill = () => {
    if (rendered) return;
    rendered = true;
    const child = (entry, index) => {
      const [k, v] = isObject ? entry : [index, entry];
      return renderJSON(v, k, depth + 1, budget);
    };
    showMore(children, node.e.values(), child, { total: count, noun: isObject ? "keys" : "items" });
  };
  // Open the first levels while the budget lasts; the rest render when opened.
  if (depth < 2 || budget.left > 0) {
    budget.left -= Math.min(count, PAGE);
    details.open = true;
    fill();
  }
  details.addEventListener("toggle", fill);
  return details;
}

export function jsonView(root) {
  const budget = { left: countNodes(root, OPEN_BUDGET + 1) <= OPEN_BUDGET ? Infinity : OPEN_BUDGET };
  const tree = el("div", { class: "json-tree" }, renderJSON(root, undefined, 0, budget));
  const toggleAll = (open) => () => {
    // Opening renders lazily (toggle events), level by level.
    for (let pass = 0; pass < 64; pass++) {
      const closed = [...tree.querySelectorAll("details")].filter((d) => d.open !== open);
      if (!closed.length) break;
      for (const d of closed) {
        d.open = open;
        d.dispatchEvent(new Event("toggle"));
      }
      if (!open) break;
    }
  };
  const tools = el(
    "div",
    { class: "view-tools" },
    el("button", { type: "button", class: "small", onclick: toggleAll(true) }, "Expand all"),
    el("button", { type: "button", class: "small", onclick: toggleAll(false) }, "Collapse all"),
  );
  return el("div", {}, tools, tree);
}

// -- form, multipart, text, hex, html --------------------------------------------------------

/** A table whose rows (`rows`, an iterator of cell lists) render a page at a time. */
function table(head, rows, noun) {
  const body = el("tbody");
  showMore(body, rows, (cells) => el("tr", {}, cells.map((c) => el("td", {}, c))), { wrap: moreRow(head.length), noun });
  return el("table", { class: "kv" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))), body);
}

/** A form body's fields, read one at a time (a million fields are never all decoded). */
export function* formFields(text) {
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf("&", start);
    if (end === -1) end = text.length;
    if (end > start) yield* new URLSearchParams(text.slice(start, end));
    start = end + 1;
  }
}

export function formView(text) {
  const fields = formFields(text);
  const first = fields.next();
  if (first.done) return null;
  const rows = (function* () {
    for (let field = first; !field.done; field = fields.next()) {
      const [k, v] = field.value;
      yield [el("code", { text: k }), el("code", { class: "wrap", text: v })];
    }
  })();
  return table(["field", "value"], rows, "more fields");
}

function indexOf(bytes, needle, from) {
  outer: for (let i = from; i <= bytes.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const latin1 = new TextDecoder("latin1");

export function boundaryOf(contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType || "");
  return m ? m[1] || m[2] : null;
}

export function parseMultipart(bytes, boundary) {
  return [...multipartParts(bytes, boundary)];
}

/** The parts of a multipart body, found one at a time. */
export function* multipartParts(bytes, boundary) {
  const delim = new TextEncoder().encode(`--${boundary}`);
  let at = indexOf(bytes, delim, 0);
  while (at !== -1) {
    let start = at + delim.length;
    if (bytes[start] === 0x2d && bytes[start + 1] === 0x2d) break; // closing --boundary--
    if (bytes[start] === 0x0d && bytes[start + 1] === 0x0a) start += 2;
    const next = indexOf(bytes, delim, start);
    let end = next === -1 ? bytes.length : next;
    if (bytes[end - 2] === 0x0d && bytes[end - 1] === 0x0a) end -= 2;
    const part = bytes.subarray(start, end);
    const split = indexOf(part, [13, 10, 13, 10], 0);
    const head = split === -1 ? "" : latin1.decode(part.subarray(0, split));
    const body = split === -1 ? part : part.subarray(split + 4);
    const headers = head.split("\r\n").filter(Boolean).map((line) => {
      const colon = line.indexOf(":");
      return colon === -1 ? [line, ""] : [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
    });
    const disposition = (headers.find(([k]) => k.toLowerCase() === "content-disposition") || [])[1] || "";
    const type = (headers.find(([k]) => k.toLowerCase() === "content-type") || [])[1] || "";
    const name = /\bname="([^"]*)"/i.exec(disposition);
    const filename = /\bfilename="([^"]*)"/i.exec(disposition);
    yield { headers, name: name ? name[1] : "", filename: filename ? filename[1] : "", type, body };
    if (next === -1) break;
    at = next;
  }
}

export function multipartView(bytes, contentType) {
  const boundary = boundaryOf(contentType);
  if (!boundary) return null;
  const parts = multipartParts(bytes, boundary);
  const first = parts.next();
  if (first.done) return null;
  const rows = (function* () {
    for (let part = first; !part.done; part = parts.next()) {
      const p = part.value;
      const text = p.body.length <= 16 * 1024 ? asText(p.body) : null;
      const content = text !== null ? el("pre", { class: "part", text }) : el("pre", { class: "part hex", text: hexDump(p.body.subarray(0, 64)) + (p.body.length > 64 ? "\n…" : "") });
      yield [el("code", { text: p.name }), p.filename, p.type, humanSize(p.body.length), content];
    }
  })();
  return table(["name", "file", "type", "size", "content"], rows, "more parts");
}

/** `total` units cut into pieces of `size`, as [start, end] pairs. */
function* pieces(total, size) {
  for (let start = 0; start < total; start += size) yield [start, Math.min(total, start + size)];
}

export function textView(text) {
  const pre = el("pre", { class: "text-body" });
  const piece = ([start, end]) => document.createTextNode(text.slice(start, end));
  return showMore(pre, pieces(text.length, TEXT_PAGE), piece, { page: 1, noun: "more text" });
}

export function hexDump(bytes, base = 0) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const chunk = bytes.subarray(offset, offset + 16);
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${(base + offset).toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

export function hexView(bytes) {
  const shown = bytes.subarray(0, HEX_LIMIT);
  const pre = el("pre", { class: "hex" });
  // Each piece starts at a multiple of 16, so the offsets it prints are the body's.
  const piece = ([start, end]) => document.createTextNode((start ? "\n" : "") + hexDump(shown.subarray(start, end), start));
  return showMore(pre, pieces(shown.length, HEX_PAGE), piece, { page: 1, noun: "more bytes" });
}

// Nothing the previewed HTML names is fetched: no tracking pixels, no requests to anywhere.
const PREVIEW_CSP = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:">';

/** An HTML body rendered with every privilege off: an empty `sandbox` (no scripts, no
 * same-origin, no forms, no popups), content from srcdoc, set as properties, under a CSP
 * that loads nothing (on top of the page's own, which srcdoc documents inherit). */
export function htmlPreview(text) {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.className = "html-preview";
  frame.title = "HTML preview (sandboxed: no scripts, nothing loaded)";
  frame.srcdoc = PREVIEW_CSP + text;
  return frame;
}

// -- choosing views --------------------------------------------------------------------------

/**
 * The views that make sense for a body: [{key, label, render}], best first.
 * `bytes` holds at most VIEW_LIMIT of the `size` bytes.
 */
export function bodyViews(bytes, size, contentType) {
  const type = (contentType || "").toLowerCase();
  const cut = bytes.length < size;
  const text = asText(bytes, cut);
  const views = [];
  if (text !== null && !cut && size <= JSON_LIMIT && (type.includes("json") || /^\s*[[{]/.test(text))) {
    try {
      const root = parseJSON(text);
      views.push({ key: "json", label: "JSON", render: () => jsonView(root) });
    } catch {
      /* not JSON after all: text view below */
    }
  }
  if (text !== null && type.startsWith("application/x-www-form-urlencoded")) {
    views.push({ key: "form", label: "Form", render: () => formView(text) || textView(text) });
  }
  if (type.startsWith("multipart/") && boundaryOf(type)) {
    views.push({ key: "multipart", label: "Parts", render: () => multipartView(bytes, contentType) || hexView(bytes) });
  }
  if (text !== null) views.push({ key: "text", label: "Text", render: () => textView(text) });
  if (text !== null && type.startsWith("text/html") && size <= TEXT_LIMIT) {
    views.push({ key: "html", label: "Preview", render: () => htmlPreview(text) });
  }
  views.push({ key: "hex", label: "Hex", render: () => hexView(bytes) });
  return views;
}

/** A tab strip over the views; the chosen view renders on demand. */
export function viewSwitcher(views, preferred) {
  const holder = el("div", { class: "view" });
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const show = (view) => {
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.key === view.key));
    clear(holder).append(view.render());
  };
  for (const view of views) {
    tabs.append(el("button", { type: "button", role: "tab", class: "tab", "data-key": view.key, onclick: () => show(view) }, view.label));
  }
  show(views.find((v) => v.key === preferred) || views[0]);
  return el("div", { class: "views" }, tabs, holder);
}
