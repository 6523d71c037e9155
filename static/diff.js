// The "Compare" section of the detail pane: the natural pairs of a request in one click (the
// previous attempt of its event, the capture before it on its endpoint, any capture by id;
// a replay against its original from the Replays list) and the diff view. Everything the
// server found is shown as text (`el` sets textContent only).

import { ApiError, api, clear, el, humanSize } from "./util.js";

const MARK = { added: "+", removed: "−", changed: "~", moved: "⇅" };
const KIND = { added: "added", removed: "removed", changed: "changed", moved: "in another order" };

let mounted = null; // { id, view, ignore, url } of the section shown

function changesTable(changes, more) {
  const rows = changes.map((c) =>
    el(
      "tr",
      { class: `diff-${c.kind}`, title: KIND[c.kind] || c.kind },
      el("td", { class: "diff-mark", text: MARK[c.kind] || "?" }),
      el("th", { scope: "row" }, el("code", { class: "wrap", text: c.where })),
      el("td", {}, c.a === null ? el("span", { class: "muted", text: "—" }) : el("code", { class: "wrap diff-a", text: c.a })),
      el("td", {}, c.b === null ? el("span", { class: "muted", text: "—" }) : el("code", { class: "wrap diff-b", text: c.b })),
    ),
  );
  const table = el("table", { class: "diff-changes" }, el("thead", {}, el("tr", {}, el("th", {}), el("th", { text: "where" }), el("th", { text: "A" }), el("th", { text: "B" }))), el("tbody", {}, rows));
  return more ? [table, el("p", { class: "muted", text: `… and ${more} more.` })] : [table];
}

function part(title, ...content) {
  return el("div", { class: "diff-part" }, el("h4", { text: title }), ...content);
}

function bodyPart(body, ignoring) {
  const sizes = body.size_a === body.size_b ? humanSize(body.size_a) : `${humanSize(body.size_a)} → ${humanSize(body.size_b)}`;
  if (body.equal) return part(`Body · identical · ${sizes}`);
  const how = { json: "JSON, by path", form: "form, by field", text: "text, by line", bytes: "bytes" }[body.mode] || body.mode;
  const out = part(`Body · ${how}${ignoring && body.mode === "json" ? " (key order ignored)" : ""} · ${sizes}`);
  if (body.changes.length) out.append(...changesTable(body.changes, body.more));
  if (body.note) out.append(el("p", { class: "note diff-note", text: body.note }));
  const span = body.bytes;
  if (span) {
    out.append(
      el("p", { class: "muted diff-bytes-at", text: `Bytes differ from offset ${span.offset}: A ${span.offset}–${span.a_end}, B ${span.offset}–${span.b_end}.` }),
      el("pre", { class: "diff-bytes" }, `A  ${span.a_hex || "(end)"}\nB  ${span.b_hex || "(end)"}`),
    );
  }
  return out;
}

function render(view, result) {
  clear(view);
  const head = el(
    "div",
    { class: "diff-head" },
    el("strong", { class: "diff-title", text: `${result.a} → ${result.b}` }),
    el("button", { type: "button", class: "small link", onclick: () => closeDiff() }, "Close"),
  );
  view.append(head);
  if (result.equal) {
    view.append(el("p", { class: "diff-equal", text: "Identical, byte for byte." }));
    return;
  }
  if (result.line.length) view.append(part("Request line", ...changesTable(result.line, 0)));
  if (result.query.length) view.append(part("Query, by parameter", ...changesTable(result.query, result.more_query)));
  const headers = result.headers;
  if (headers.changes.length || headers.order_changed) {
    const out = part("Headers");
    if (headers.changes.length) out.append(...changesTable(headers.changes, 0));
    if (headers.order_changed) {
      out.append(el("p", { class: "diff-order" }, "In another order: ", el("code", { class: "wrap", text: headers.order_a.join(", ") }), " → ", el("code", { class: "wrap", text: headers.order_b.join(", ") })));
    }
    view.append(out);
  }
  view.append(bodyPart(result.body, result.ignore_key_order));
}

async function load(state) {
  const { view, url } = state;
  const query = state.ignore.checked ? "?ignore_key_order=true" : "";
  view.hidden = false;
  clear(view).append(el("p", { class: "muted", text: "Comparing…" }));
  try {
    const result = await api(url + query);
    if (mounted !== state || state.url !== url) return;
    render(view, result);
  } catch (error) {
    if (mounted !== state || state.url !== url) return;
    const gone = error instanceof ApiError && error.status === 404;
    clear(view).append(el("p", { class: "form-error", text: gone ? `Cannot compare: ${error.detail}` : `Could not compare: ${error.detail || error}` }));
  }
}

/** Show the diff at API path `url` (".../diff/..." or "/api/replays/N/diff") in the section. */
export function showDiff(url) {
  if (!mounted) return;
  mounted.url = url;
  load(mounted);
  mounted.view.scrollIntoView({ block: "nearest" });
}

function closeDiff() {
  if (!mounted) return;
  mounted.url = null;
  mounted.view.hidden = true;
  clear(mounted.view);
}

function pairButton(label, title, url) {
  return el("button", { type: "button", class: "small", title, onclick: () => showDiff(url) }, label);
}

async function fillPairs(state, item, holder) {
  let pairs;
  try {
    pairs = await api(`/api/requests/${item.id}/pairs`);
  } catch {
    return; // gone: app.js says so
  }
  if (mounted !== state) return;
  const buttons = [];
  if (pairs.previous_attempt !== null) {
    buttons.push(pairButton(`vs previous attempt #${pairs.previous_attempt}`, `Attempt ${item.attempt - 1} of the same event, against this one`, `/api/requests/${pairs.previous_attempt}/diff/${item.id}`));
  }
  if (pairs.previous !== null && pairs.previous !== pairs.previous_attempt) {
    buttons.push(pairButton(`vs previous capture #${pairs.previous}`, `The request before this one on /h/${item.endpoint}`, `/api/requests/${pairs.previous}/diff/${item.id}`));
  }
  if (!buttons.length) buttons.push(el("span", { class: "muted", text: "The first capture on this endpoint." }));
  holder.prepend(...buttons);
}

/** The "Compare" section for request `item` (the detail API shape). */
export function compareSection(item) {
  const view = el("div", { class: "diff-view", "aria-live": "polite", hidden: true });
  const ignore = el("input", { type: "checkbox", class: "diff-ignore" });
  const state = { id: item.id, view, ignore, url: null };
  if (mounted && mounted.id === item.id && mounted.url) {
    state.url = mounted.url; // re-rendered by a stream update: keep the diff open
    ignore.checked = mounted.ignore.checked;
  }
  mounted = state;
  ignore.addEventListener("change", () => {
    if (state.url) load(state);
  });
  const other = el("input", { type: "number", min: "1", class: "diff-other", placeholder: "id", "aria-label": "Compare with the capture of this id" });
  const byId = el(
    "form",
    { class: "diff-by-id" },
    "vs #",
    other,
    el("button", { type: "submit", class: "small" }, "Compare"),
  );
  byId.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = Number(other.value);
    if (Number.isInteger(id) && id > 0) showDiff(`/api/requests/${id}/diff/${item.id}`);
  });
  const buttons = el("div", { class: "diff-pairs" }, byId, el("label", { class: "diff-ignore-label" }, ignore, " ignore JSON key order"));
  fillPairs(state, item, buttons);
  if (state.url) load(state);
  return el("section", { class: "d-section compare" }, el("h3", {}, "Compare"), buttons, view);
}
