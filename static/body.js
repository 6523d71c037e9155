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
export const JSON_LIMIT = 16 * 1024 * 1024; // parsed for the tree (forms and parts: any size)
export const HEX_LIMIT = 64 * 1024;
const OPEN_BUDGET = 400; // nodes rendered open at first; deeper levels open on click
const TEXT_PAGE = 64 * 1024; // characters of text, and 4 KiB of hex, per "Show more"
const HEX_PAGE = 4096;

// -- JSON, read lazily, faithful ------------------------------------------------------------
// Number literals stay as written (12345678901234567890, 1.0, -0), duplicate keys stay, in
// order: this is a viewer for debugging senders, not a data loader.
//
// `parseJSON` checks the whole text once, with a scanner over char codes that allocates
// nothing per value, and keeps only where the top container's children start (typed arrays).
// A child is read when it is shown (`nodeAt`): a container is scanned the same way then, a
// scalar decoded. So a million numbers cost one pass and a 4 MB Int32Array, not a million
// objects, and a screenful renders from a handful of them. Nodes:
//   {t: "o" | "a", count, values: Int32Array, keys: Int32Array (objects), total?}
//   {t: "s", v}  {t: "b", v}  {t: "z"}  and a number: the offset of its literal in the text.

const MAX_DEPTH = 256;
const LITERALS = { true: { t: "b", v: "true" }, false: { t: "b", v: "false" }, null: { t: "z" } };
const LITERAL_CODES = { 116: "true", 102: "false", 110: "null" }; // by first char code

const HEX_DIGIT = new Uint8Array(128);
for (const c of "0123456789abcdefABCDEF") HEX_DIGIT[c.charCodeAt(0)] = 1;
const ESCAPE = new Uint8Array(128); // what may follow a backslash
for (const c of '"\\/bfnrtu') ESCAPE[c.charCodeAt(0)] = 1;
const isDigit = (c) => c >= 48 && c <= 57;

function syntaxError(what, at) {
  return new SyntaxError(`${what} at character ${at}`);
}

function spaceEnd(text, i) {
  for (;;) {
    const c = text.charCodeAt(i); // NaN past the end: not a space
    if (c > 32 || !(c === 32 || c === 10 || c === 13 || c === 9)) return i;
    i++;
  }
}

/** Where the number literal starting at `i` ends, or -1 if it is not one. */
export function numberEnd(text, i) {
  // Loops written out, not helper calls: a page's first parse runs unoptimized.
  let c = text.charCodeAt(i);
  if (c === 45) c = text.charCodeAt(++i); // -
  if (c === 48) c = text.charCodeAt(++i); // a leading 0 stands alone
  else if (c >= 49 && c <= 57) {
    do c = text.charCodeAt(++i);
    while (c >= 48 && c <= 57);
  } else return -1;
  if (c === 46) {
    c = text.charCodeAt(++i);
    if (!(c >= 48 && c <= 57)) return -1;
    do c = text.charCodeAt(++i);
    while (c >= 48 && c <= 57);
  }
  if (c === 101 || c === 69) {
    c = text.charCodeAt(++i);
    if (c === 43 || c === 45) c = text.charCodeAt(++i);
    if (!(c >= 48 && c <= 57)) return -1;
    do c = text.charCodeAt(++i);
    while (c >= 48 && c <= 57);
  }
  return i;
}

/** Past the string literal whose opening quote is at `i`; checks its escapes. */
function stringEnd(text, i) {
  for (i++; ; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92) {
      const e = text.charCodeAt(++i);
      if (ESCAPE[e] !== 1) throw syntaxError("bad escape in a string", i - 1);
      if (e === 117) {
        for (let k = 1; k <= 4; k++) if (HEX_DIGIT[text.charCodeAt(i + k)] !== 1) throw syntaxError("bad \\u escape", i - 1);
        i += 4;
      }
    } else if (!(c >= 32)) throw syntaxError(Number.isNaN(c) ? "unterminated string" : "control character in a string", i);
  }
}

/** Past the `"key" :` at `i` (spaces first). */
function keyEnd(text, i) {
  i = spaceEnd(text, i);
  if (text.charCodeAt(i) !== 34) throw syntaxError("expected a key", i);
  i = spaceEnd(text, stringEnd(text, i));
  if (text.charCodeAt(i) !== 58) throw syntaxError("expected ':'", i);
  return i + 1;
}

const kinds = new Uint8Array(MAX_DEPTH); // valueEnd's stack of open containers ({ or [)
let counted = 0; // values valueEnd has passed (the whole document's size, for parseJSON)

/** Past the JSON value at `i` (spaces first), checked to the end; `depth`: how deep it is. */
function valueEnd(text, i, depth) {
  let open = 0;
  for (;;) {
    i = spaceEnd(text, i);
    const c = text.charCodeAt(i);
    counted++;
    if (c === 123 || c === 91) {
      if (depth + open >= MAX_DEPTH) throw syntaxError("nested too deeply", i);
      i = spaceEnd(text, i + 1);
      if (text.charCodeAt(i) === c + 2) i++; // {} or [] (the closer is the opener plus 2)
      else {
        kinds[open++] = c;
        if (c === 123) i = keyEnd(text, i);
        continue;
      }
    } else if (c === 34) i = stringEnd(text, i);
    else if (isDigit(c) || c === 45) {
      const end = numberEnd(text, i);
      if (end === -1) throw syntaxError("bad number", i);
      i = end;
    } else {
      const word = LITERAL_CODES[c];
      if (word === undefined || !text.startsWith(word, i)) throw syntaxError("unexpected input", i);
      i += word.length;
    }
    // A value is done: a comma (and the next value) or the end of its container.
    for (;;) {
      if (open === 0) return i;
      i = spaceEnd(text, i);
      const kind = kinds[open - 1];
      const next = text.charCodeAt(i++);
      if (next === 44) {
        if (kind === 123) i = keyEnd(text, i);
        break;
      }
      if (next !== kind + 2) throw syntaxError(kind === 123 ? "expected ',' or '}'" : "expected ',' or ']'", i - 1);
      open--;
    }
  }
}

/** The container at `at`: where its children (and keys) start, each checked. */
function containerAt(text, at, depth) {
  if (depth >= MAX_DEPTH) throw syntaxError("nested too deeply", at);
  const isObject = text.charCodeAt(at) === 123;
  const close = isObject ? 125 : 93;
  let values = new Int32Array(8);
  let keys = isObject ? new Int32Array(8) : null;
  let count = 0;
  let i = spaceEnd(text, at + 1);
  if (text.charCodeAt(i) === close) i++;
  else {
    for (;;) {
      if (count === values.length) {
        const grown = new Int32Array(count * 2);
        grown.set(values);
        values = grown;
        if (keys) {
          const grownKeys = new Int32Array(count * 2);
          grownKeys.set(keys);
          keys = grownKeys;
        }
      }
      if (keys) {
        keys[count] = i = spaceEnd(text, i);
        i = keyEnd(text, i);
      }
      // Numbers and strings here, the rest by valueEnd: fewer calls per child, which is what
      // a page's first (unoptimized) parse of a million children pays for.
      let c = text.charCodeAt(i);
      if (c <= 32) c = text.charCodeAt((i = spaceEnd(text, i)));
      values[count++] = i;
      if ((c >= 48 && c <= 57) || c === 45) {
        const end = numberEnd(text, i);
        if (end === -1) throw syntaxError("bad number", i);
        i = end;
        counted++;
      } else if (c === 34) {
        i = stringEnd(text, i);
        counted++;
      } else i = valueEnd(text, i, depth + 1);
      c = text.charCodeAt(i);
      if (c <= 32) c = text.charCodeAt((i = spaceEnd(text, i)));
      i++;
      if (c === 44) continue;
      if (c === close) break;
      throw syntaxError(isObject ? "expected ',' or '}'" : "expected ',' or ']'", i - 1);
    }
  }
  return { t: isObject ? "o" : "a", count, values, keys, end: i };
}

/** The string literal at `at`, decoded. */
function stringAt(text, at) {
  const end = stringEnd(text, at);
  const inner = text.slice(at + 1, end - 1);
  return inner.includes("\\") ? JSON.parse(text.slice(at, end)) : inner; // escapes: natively
}

/** The node of the (checked) value at `at`. */
function nodeAt(text, at, depth) {
  const c = text.charCodeAt(at);
  if (c === 123 || c === 91) return containerAt(text, at, depth);
  if (c === 34) return { t: "s", v: stringAt(text, at) };
  if (isDigit(c) || c === 45) return at;
  return LITERALS[LITERAL_CODES[c]];
}

/** The root node of JSON `text`, the whole text checked; a SyntaxError says where it is not
 * JSON. A container root also says how many values the document holds (`total`). */
export function parseJSON(text) {
  const n = text.length;
  const start = spaceEnd(text, text.charCodeAt(0) === 0xfeff ? 1 : 0);
  counted = 0;
  const c = text.charCodeAt(start);
  // The whole text is checked before anything is shown; a container root keeps its children.
  const root = c === 123 || c === 91 ? containerAt(text, start, 0) : null;
  const end = root ? root.end : valueEnd(text, start, 0);
  if (spaceEnd(text, end) < n) throw syntaxError("trailing data", spaceEnd(text, end));
  if (!root) return nodeAt(text, start, 0);
  root.total = counted + 1;
  return root;
}

/** A container's children, read as they are shown: [key or index, node]. */
function* children(text, node, depth) {
  for (let k = 0; k < node.count; k++) {
    yield [node.keys ? stringAt(text, node.keys[k]) : k, nodeAt(text, node.values[k], depth + 1)];
  }
}

function scalar(node, text) {
  if (typeof node === "number") return el("span", { class: "j-num", text: text.slice(node, numberEnd(text, node)) });
  switch (node.t) {
    case "s":
      return el("span", { class: "j-str", text: JSON.stringify(node.v) });
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

/** `node` (under `key`) of the tree of `tree.text`; `tree.left`: nodes still to open. */
function renderJSON(node, key, depth, tree) {
  if (typeof node === "number" || node.count === undefined) {
    return el("div", { class: "j-line" }, label(key), scalar(node, tree.text));
  }
  const isObject = node.t === "o";
  const count = node.count;
  const [open, close] = isObject ? ["{", "}"] : ["[", "]"];
  if (count === 0) return el("div", { class: "j-line" }, label(key), `${open}${close}`);
  const noun = isObject ? (count === 1 ? "key" : "keys") : count === 1 ? "item" : "items";
  const details = el("details", { class: "j-node" });
  details.append(el("summary", {}, label(key), open, el("span", { class: "j-count", text: ` ${count.toLocaleString("en-US")} ${noun} ` }), close));
  const holder = el("div", { class: "j-children" });
  details.append(holder);
  let rendered = false;
  const fill = () => {
    if (rendered) return;
    rendered = true;
    const child = ([k, v]) => renderJSON(v, k, depth + 1, tree);
    showMore(holder, children(tree.text, node, depth), child, { total: count, noun: isObject ? "keys" : "items" });
  };
  // Open the first levels while the budget lasts; the rest render when opened.
  if (depth < 2 || tree.left > 0) {
    tree.left -= Math.min(count, PAGE);
    details.open = true;
    fill();
  }
  details.addEventListener("toggle", fill);
  return details;
}

/** The tree `root` of JSON `text` (`parseJSON`), a screenful open (all of a small one). */
export function jsonView(root, text) {
  const budget = { text, left: (root.total || 1) <= OPEN_BUDGET ? Infinity : OPEN_BUDGET };
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
 * `bytes` holds at most VIEW_LIMIT of the `size` bytes; `whole()`, if given, reads them all
 * (for the tree of a JSON body larger than that, on demand).
 */
export function bodyViews(bytes, size, contentType, whole = null) {
  const type = (contentType || "").toLowerCase();
  const cut = bytes.length < size;
  const text = asText(bytes, cut);
  const views = [];
  const jsonish = text !== null && (type.includes("json") || /^\s*[[{]/.test(text));
  if (jsonish && !cut) {
    try {
      const root = parseJSON(text);
      views.push({ key: "json", label: "JSON", render: () => jsonView(root, text) });
    } catch {
      /* not JSON after all: text view below */
    }
  } else if (jsonish && whole && size <= JSON_LIMIT) {
    // The first screenful shows as text; the tree needs the whole body, read when asked for.
    views.push({ key: "json-whole", label: "JSON", render: () => wholeJsonView(whole, size) });
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

/** The tree of a body cut for the first screenful: `whole()` reads all `size` bytes. */
function wholeJsonView(whole, size) {
  const box = el("div", {}, el("p", { class: "muted", text: `Reading the whole body (${humanSize(size)}) for the tree…` }));
  const note = (text) => clear(box).append(el("p", { class: "note warn", text }));
  whole().then(
    (bytes) => {
      const text = asText(bytes);
      if (text === null) return note("Not JSON: the body is not UTF-8 text.");
      let root;
      try {
        root = parseJSON(text);
      } catch (error) {
        return note(`Not JSON: ${error.message}.`);
      }
      clear(box).append(jsonView(root, text));
    },
    (error) => note(`Could not read the body: ${error.detail || error}`),
  );
  return box;
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
