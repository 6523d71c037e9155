// Body views: pretty JSON (collapsible, faithful), form fields, multipart parts, text, hex,
// and an HTML preview inside a sandboxed iframe. All DOM is built with textContent.

import { asText, clear, el, humanSize } from "./util.js";

export const TEXT_LIMIT = 256 * 1024; // shown as text; beyond, download
export const JSON_LIMIT = 2 * 1024 * 1024; // parsed for the tree
export const HEX_LIMIT = 64 * 1024;
const OPEN_BUDGET = 400; // nodes rendered open at first; deeper levels open on click

// -- a JSON parser that keeps what JSON.parse loses ------------------------------------------
// Number literals stay as written (12345678901234567890, 1.0, -0), duplicate keys stay, in
// order: this is a viewer for debugging senders, not a data loader.

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const SPACE = /[ \t\r\n]*/y;
const MAX_DEPTH = 256;

export function parseJSON(text) {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at character ${i}`);
  };
  const ws = () => {
    SPACE.lastIndex = i;
    SPACE.exec(text);
    i = SPACE.lastIndex;
  };
  const match = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return null;
    i = re.lastIndex;
    return m[0];
  };
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const entries = [];
      ws();
      if (text[i] === "}") {
        i++;
        return { t: "o", e: entries };
      }
      for (;;) {
        ws();
        const raw = match(STRING);
        if (raw === null) fail("expected a key");
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        entries.push([JSON.parse(raw), value(depth + 1)]);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return { t: "o", e: entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items = [];
      ws();
      if (text[i] === "]") {
        i++;
        return { t: "a", e: items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return { t: "a", e: items };
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') {
      const raw = match(STRING);
      if (raw === null) fail("bad string");
      return { t: "s", v: JSON.parse(raw) };
    }
    for (const word of ["true", "false", "null"]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return word === "null" ? { t: "z" } : { t: "b", v: word };
      }
    }
    const num = match(NUMBER);
    if (num === null) fail("unexpected input");
    return { t: "n", v: num };
  };
  const root = value(0);
  ws();
  if (i < text.length) fail("trailing data");
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
    node.e.forEach((entry, index) => {
      const [k, v] = isObject ? entry : [index, entry];
      children.append(renderJSON(v, k, depth + 1, budget));
    });
  };
  // Open the first levels while the budget lasts; the rest render when opened.
  if (depth < 2 || budget.left > 0) {
    budget.left -= count;
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

function table(head, rows) {
  return el(
    "table",
    { class: "kv" },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))),
  );
}

export function formView(text) {
  const rows = [];
  for (const [k, v] of new URLSearchParams(text)) rows.push([el("code", { text: k }), el("code", { class: "wrap", text: v })]);
  if (!rows.length) return null;
  return table(["field", "value"], rows);
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
  const delim = new TextEncoder().encode(`--${boundary}`);
  const parts = [];
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
    parts.push({ headers, name: name ? name[1] : "", filename: filename ? filename[1] : "", type, body });
    if (next === -1) break;
    at = next;
  }
  return parts;
}

export function multipartView(bytes, contentType) {
  const boundary = boundaryOf(contentType);
  if (!boundary) return null;
  const parts = parseMultipart(bytes, boundary);
  if (!parts.length) return null;
  return table(
    ["name", "file", "type", "size", "content"],
    parts.map((p) => {
      const text = p.body.length <= 16 * 1024 ? asText(p.body) : null;
      const content = text !== null ? el("pre", { class: "part", text }) : el("pre", { class: "part hex", text: hexDump(p.body.subarray(0, 64)) + (p.body.length > 64 ? "\n…" : "") });
      return [el("code", { text: p.name }), p.filename, p.type, humanSize(p.body.length), content];
    }),
  );
}

export function textView(text) {
  return el("pre", { class: "text-body", text });
}

export function hexDump(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const chunk = bytes.subarray(offset, offset + 16);
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

export function hexView(bytes) {
  return el("pre", { class: "hex", text: hexDump(bytes.subarray(0, HEX_LIMIT)) });
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
 * `bytes` holds at most TEXT_LIMIT (or JSON_LIMIT when JSON) of the `size` bytes.
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
  if (text !== null && !cut && type.startsWith("application/x-www-form-urlencoded")) {
    views.push({ key: "form", label: "Form", render: () => formView(text) || textView(text) });
  }
  if (type.startsWith("multipart/") && !cut && boundaryOf(type)) {
    views.push({ key: "multipart", label: "Parts", render: () => multipartView(bytes, contentType) || hexView(bytes) });
  }
  if (text !== null) views.push({ key: "text", label: "Text", render: () => textView(text) });
  if (text !== null && type.startsWith("text/html")) {
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
