// Replays in the detail pane: the request's replays, mirrors and proxy exchanges, newest
// first (click one for what came back), and the form that starts a replay — target URL
// (remembered per endpoint as its `replay_to`), method, re-sign, header overrides, body.
// The body goes as the captured raw bytes unless it was edited here. Values from the server
// reach the DOM through textContent only.

import { TEXT_LIMIT } from "./body.js";
import { showDiff } from "./diff.js";
import { ApiError, answerOf, api, asText, clear, clock, decodeBase64, el, elapsed, humanSize, kvTable, pairsTable, parseTime } from "./util.js";

const EDIT_LIMIT = 256 * 1024; // bodies below this (and UTF-8 text) can be edited
const LIST_LIMIT = 50;
const PLACEHOLDER = "http://localhost:3000/webhook";
const KIND_CLASS = { replay: "info", mirror: "muted", proxy: "warn" };
const KIND_TITLE = {
  replay: "Replayed from the page, the API or the CLI",
  mirror: "A copy sent to the endpoint's forward_to (mirror mode)",
  proxy: "Relayed to the endpoint's forward_to; the sender got this answer (proxy mode)",
};

// State that outlives a re-render of the same request (a stream update, a resync); it is
// reset when another request is shown.
let mounted = null; // the widget in the detail pane: {id, item, parts}
let draft = null; // the form as left: {id, url, urlTyped, method, resign, headers, body, sending, result, error}
let listed = { id: null, items: null, more: false, error: null }; // the last list fetched
const expanded = new Set(); // replay ids unfolded in the list
const fulls = new Map(); // replay id -> GET /api/replays/{id}
let listToken = 0;
let formOpen = false; // kept from request to request in this tab

// -- the captured body ---------------------------------------------------------------------

/** What the form can do with the captured body: {editable, text, crlf, note}. `item.body`
 * holds its first bytes (detail.js `loadRequest`); a body kept whole is `item.size` bytes. */
function originalBody(item) {
  const size = item.size;
  if (item.truncated) {
    return { editable: true, text: "", crlf: false, note: `The body was not captured in full (${item.note || "cut short"}): type the body to send.` };
  }
  if (size >= EDIT_LIMIT) return { editable: false, text: null, note: `The body (${humanSize(size)}) is sent unchanged: only text bodies under ${humanSize(EDIT_LIMIT)} can be edited here.` };
  const text = size ? asText(item.body) : "";
  if (text === null) return { editable: false, text: null, note: `The binary body is sent unchanged (${humanSize(size)}).` };
  // A textarea keeps line ends as LF: a CRLF body gets its CRLFs back when edited.
  const crlf = text.includes("\r\n") && !/(^|[^\r])\n/.test(text) && !/\r(?!\n)/.test(text);
  return { editable: true, text, crlf, note: null };
}

// -- header overrides ----------------------------------------------------------------------

/** "Name: value" lines -> {Name: "v" | ["v1", "v2"] | null}; "Name:" alone removes it. */
export function parseHeaderLines(text) {
  const found = new Map(); // lower-case name -> [name as first typed, values]
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim() : "";
    if (!name) throw new Error(`Header overrides, line ${index + 1}: write "Name: value" (or "Name:" to remove the header).`);
    const value = line.slice(colon + 1).trim();
    const entry = found.get(name.toLowerCase()) || [name, []];
    if (value) entry[1].push(value);
    found.set(name.toLowerCase(), entry);
  });
  return Object.fromEntries([...found.values()].map(([name, values]) => [name, values.length === 0 ? null : values.length === 1 ? values[0] : values]));
}

// -- the list ------------------------------------------------------------------------------

function statusBadge(r) {
  if (r.status === null || r.status === undefined) return el("span", { class: "badge bad", title: r.error || "No answer" }, "no answer");
  const [text, cls] = answerOf({ status: r.status });
  return el("span", { class: `badge ${cls}`, title: `Your app answered ${r.status}` }, text);
}

function bodyBlock(b64, size, truncated) {
  if (!b64) return [el("p", { class: "muted", text: "No body." })];
  const bytes = decodeBase64(b64, TEXT_LIMIT);
  const cut = bytes.length < size;
  const text = asText(bytes, cut);
  const out = [];
  if (text === null) out.push(el("p", { class: "note", text: `Binary body, ${humanSize(size)} (${size} bytes): not shown as text.` }));
  else {
    out.push(el("pre", { class: "text-body", text }));
    if (cut) out.push(el("p", { class: "note", text: `Showing the first ${humanSize(bytes.length)} of ${humanSize(size)}.` }));
  }
  if (truncated) out.push(el("p", { class: "note warn", text: "The answer was longer: only its first 1 MiB was kept." }));
  return out;
}

function fullView(r) {
  const sent = parseTime(r.sent_at);
  const parts = [
    kvTable([
      ["Status", r.status === null || r.status === undefined ? "no answer" : String(r.status)],
      r.error ? ["Error", r.error] : null,
      ["Took", elapsed(r.elapsed_ms) || "—"],
      ["Sent", Number.isNaN(sent.getTime()) ? r.sent_at : `${sent.toLocaleDateString()} ${clock(r.sent_at)}`],
      ["To", el("code", { class: "wrap", text: `${r.method} ${r.url}` })],
      ["Body sent", r.edited ? "edited" : "the captured bytes, unchanged"],
      r.insecure ? ["Certificate", "NOT verified (insecure)"] : null,
    ]),
  ];
  if (r.status !== null && r.status !== undefined) {
    parts.push(el("h4", { text: `Response headers (${(r.headers || []).length})` }), pairsTable(r.headers || [], "No headers."));
    parts.push(el("h4", { text: `Response body · ${humanSize(r.response_size || 0)}` }), ...bodyBlock(r.body_base64, r.response_size || 0, r.response_truncated));
  }
  if (r.request_headers) {
    parts.push(el("details", { class: "r-sent" }, el("summary", {}, `Headers sent (${r.request_headers.length})`), pairsTable(r.request_headers, "No headers.")));
  }
  return parts;
}

async function loadFull(r, holder) {
  if (holder.dataset.state) return; // loading or loaded
  const cached = fulls.get(r.id);
  if (cached) {
    holder.dataset.state = "loaded";
    clear(holder).append(...fullView(cached));
    return;
  }
  holder.dataset.state = "loading";
  clear(holder).append(el("p", { class: "muted", text: "Loading…" }));
  try {
    const full = await api(`/api/replays/${r.id}`);
    fulls.set(r.id, full);
    holder.dataset.state = "loaded";
    clear(holder).append(...fullView(full));
  } catch (error) {
    delete holder.dataset.state; // a later unfold tries again
    clear(holder).append(el("p", { class: "form-error", text: `Could not load replay #${r.id}: ${error.detail || error}` }));
  }
}

function entry(r) {
  const holder = el("div", { class: "replay-more" });
  const when = parseTime(r.sent_at);
  const line = el(
    "summary",
    { class: "replay-line" },
    el("span", { class: `badge ${KIND_CLASS[r.kind] || "muted"}`, title: KIND_TITLE[r.kind] || "" }, r.kind),
    el("time", { class: "r-time", datetime: r.sent_at, title: r.sent_at }, Number.isNaN(when.getTime()) ? r.sent_at : clock(r.sent_at)),
    el("span", { class: "r-method", text: r.method }),
    el("span", { class: "r-url", text: r.url, title: r.url }),
    statusBadge(r),
    el("span", { class: "r-ms", text: elapsed(r.elapsed_ms) }),
    r.edited ? el("span", { class: "badge muted", title: "The body was edited before sending" }, "edited") : null,
    r.insecure ? el("span", { class: "badge bad", title: "Sent without verifying the target's certificate (insecure)" }, "insecure") : null,
    r.error ? el("span", { class: "r-error", text: r.error }) : null,
    el("button", { type: "button", class: "small link r-diff", title: "What this sent, against the captured request", onclick: (event) => {
      event.preventDefault(); // a button in a <summary>: compare, do not unfold
      showDiff(`/api/replays/${r.id}/diff`);
    } }, "vs original"),
  );
  const item = el("details", { class: "replay", "data-id": r.id }, line, holder);
  item.addEventListener("toggle", () => {
    if (item.open) {
      expanded.add(r.id);
      loadFull(r, holder);
    } else expanded.delete(r.id);
  });
  if (expanded.has(r.id)) {
    item.open = true;
    loadFull(r, holder);
  }
  return item;
}

function paintList() {
  if (!mounted || listed.id !== mounted.id) return;
  const { list, count } = mounted.parts;
  const items = listed.items || [];
  count.textContent = listed.items === null ? "" : ` · ${items.length}${listed.more ? "+" : ""}`;
  clear(list);
  if (listed.error) list.append(el("li", { class: "form-error", text: `Could not load the replays: ${listed.error}` }));
  else if (listed.items === null) list.append(el("li", { class: "muted", text: "Loading…" }));
  else if (!items.length) list.append(el("li", { class: "muted", text: "None yet. Replay it with the form above; forward_to mirrors or proxies new requests." }));
  else list.append(...items.map(entry));
  if (listed.more) list.append(el("li", { class: "muted small", text: `Showing the newest ${LIST_LIMIT}.` }));
}

/** Re-read the replays of request `id` if it is the one shown (after a stream "update"). */
export async function refreshReplays(id) {
  if (!mounted || mounted.id !== id) return;
  const token = ++listToken;
  let data;
  try {
    data = await api(`/api/requests/${id}/replays?limit=${LIST_LIMIT + 1}`);
  } catch (error) {
    if (token !== listToken || !mounted || mounted.id !== id) return;
    if (error instanceof ApiError && error.status === 404) return; // the request went: app.js says so
    listed = { ...listed, id, error: error.detail || String(error) };
    paintList();
    return;
  }
  if (token !== listToken || !mounted || mounted.id !== id) return;
  listed = { id, items: data.replays.slice(0, LIST_LIMIT), more: data.replays.length > LIST_LIMIT, error: null };
  paintList();
}

/** Put a replay the form just made at the top of the list (the refresh may be behind). */
function addToList(id, result) {
  if (listed.id !== id || listed.items === null) return;
  if (listed.items.some((r) => r.id === result.id)) return;
  listed = { ...listed, items: [result, ...listed.items].slice(0, LIST_LIMIT) };
}

// -- the form ------------------------------------------------------------------------------

function paintStatus() {
  if (!mounted || !draft || draft.id !== mounted.id) return;
  const { send, result, error } = mounted.parts;
  send.disabled = draft.sending;
  send.textContent = draft.sending ? "Sending…" : "Send";
  error.textContent = draft.error || "";
  error.hidden = !draft.error;
  clear(result);
  const r = draft.result;
  if (draft.sending) result.append("Sending…");
  else if (r) {
    result.append(statusBadge(r), " ", r.status === null || r.status === undefined ? r.error || "no answer" : `in ${elapsed(r.elapsed_ms)}`);
    result.title = `${r.method} ${r.url}`;
  }
}

function saveDraft(form) {
  const e = form.elements;
  Object.assign(draft, { url: e.url.value, method: e.method.value, resign: e.resign.checked, headers: e.headers.value });
  if (!e.body.disabled) draft.body = e.body.value;
}

async function send(form, item, body) {
  const e = form.elements;
  draft.error = null;
  draft.result = null;
  const payload = {};
  const url = e.url.value.trim();
  if (!url) {
    draft.error = `Target URL: give the URL of your app, e.g. ${PLACEHOLDER}.`;
    paintStatus();
    e.url.focus();
    return;
  }
  payload.url = url;
  const method = e.method.value.trim();
  if (method && method !== item.method) payload.method = method;
  if (e.resign.checked) payload.resign = true;
  try {
    const headers = parseHeaderLines(e.headers.value);
    if (Object.keys(headers).length) payload.headers = headers;
  } catch (error) {
    draft.error = error.message;
    paintStatus();
    return;
  }
  // Only an edited body goes as text; otherwise the server sends the captured raw bytes.
  if (body.editable && e.body.value !== (body.text || "").replace(/\r\n?/g, "\n")) {
    payload.body_text = body.crlf ? e.body.value.replace(/\n/g, "\r\n") : e.body.value;
  }
  const id = item.id;
  const mine = draft;
  mine.sending = true;
  paintStatus();
  try {
    const result = await api(`/api/requests/${id}/replay`, { method: "POST", json: payload });
    mine.result = result;
    fulls.set(result.id, result);
    expanded.add(result.id);
    addToList(id, result);
    paintList();
  } catch (error) {
    mine.error = error instanceof ApiError ? `${error.detail} (${error.status})` : `Could not send the replay: ${error}`;
  } finally {
    mine.sending = false;
    paintStatus();
  }
}

function replayForm(item) {
  const body = originalBody(item);
  const fresh = !draft || draft.id !== item.id;
  if (fresh) draft = { id: item.id, url: "", urlTyped: false, method: item.method, resign: false, headers: "", body: body.text || "", sending: false, result: null, error: null };

  const urlInput = el("input", { name: "url", class: "r-url", inputmode: "url", spellcheck: "false", placeholder: PLACEHOLDER, "aria-label": "Target URL" });
  const methodInput = el("input", { name: "method", class: "r-method", spellcheck: "false", autocapitalize: "characters", "aria-label": "Method", maxlength: "64" });
  const resign = el("input", { type: "checkbox", name: "resign" });
  const headers = el("textarea", { name: "headers", rows: "3", spellcheck: "false", placeholder: "X-Debug: 1\nX-Unwanted-Header:" });
  const bodyArea = el("textarea", { name: "body", rows: "8", spellcheck: "false", class: "r-body" });
  const remembered = el("span", { class: "muted small" });
  const sendButton = el("button", { type: "submit", class: "primary" }, "Send");
  const reset = el("button", { type: "button", title: "Back to the captured request" }, "Reset");
  const result = el("span", { class: "r-result", role: "status" });
  const error = el("p", { class: "form-error", role: "alert", hidden: true });

  urlInput.value = draft.url;
  methodInput.value = draft.method;
  resign.checked = draft.resign;
  headers.value = draft.headers;
  if (body.editable) bodyArea.value = draft.body;
  else {
    bodyArea.disabled = true;
    bodyArea.placeholder = body.note;
  }

  const form = el(
    "form",
    { class: "replay-form", autocomplete: "off", novalidate: true },
    el("div", { class: "replay-target" }, methodInput, urlInput),
    el("p", { class: "muted small" }, "The capture's sub-path and query string are added to this URL. ", remembered),
    el("label", { class: "check" }, resign, "Re-sign", el("span", { class: "muted small", text: " — fresh signature headers over the body sent; needs the endpoint's secret (Settings)" })),
    el("label", {}, el("span", { text: "Header overrides — one Name: value per line; Name: with nothing after it removes the header" }), headers),
    el("label", {}, el("span", { text: body.editable ? "Body — sent as the captured bytes unless you edit it" : "Body" }), bodyArea),
    body.note ? el("p", { class: "note small r-body-note", text: body.note }) : null,
    error,
    el("div", { class: "actions" }, sendButton, reset, result),
  );
  form.addEventListener("input", (event) => {
    if (event.target === urlInput) {
      draft.urlTyped = true;
      remembered.textContent = "";
    }
    saveDraft(form);
  });
  form.addEventListener("change", () => saveDraft(form));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!draft.sending) send(form, item, body);
  });
  reset.addEventListener("click", () => {
    methodInput.value = item.method;
    resign.checked = false;
    headers.value = "";
    if (body.editable) bodyArea.value = body.text || "";
    draft.error = null;
    draft.result = null;
    saveDraft(form);
    paintStatus();
  });

  // The endpoint's remembered target, unless the user already typed one.
  if (!draft.urlTyped) {
    api(`/api/endpoints/${encodeURIComponent(item.endpoint)}`)
      .then(({ settings }) => {
        if (!settings.replay_to || draft.id !== item.id || draft.urlTyped) return;
        urlInput.value = settings.replay_to;
        draft.url = settings.replay_to;
        remembered.textContent = `Remembered for endpoint ${item.endpoint}.`;
      })
      .catch(() => {
        /* no remembered target: the placeholder stays */
      });
  }
  return { form, send: sendButton, result, error, urlInput };
}

// -- the section ---------------------------------------------------------------------------

/** The "Replays" section for request `item` (the detail API shape). */
export function replaySection(item) {
  if (!mounted || mounted.id !== item.id) {
    expanded.clear();
    fulls.clear();
    if (listed.id !== item.id) listed = { id: item.id, items: null, more: false, error: null };
  }
  const parts = replayForm(item);
  const box = el("details", { class: "replay-box" }, el("summary", {}, "Replay this request…"), parts.form);
  box.open = formOpen;
  box.addEventListener("toggle", () => {
    formOpen = box.open;
  });
  const count = el("span", { class: "muted" });
  const list = el("ol", { class: "replay-list", "aria-label": "Replays, newest first" });
  mounted = { id: item.id, item, box, parts: { ...parts, count, list } };
  paintStatus();
  paintList();
  refreshReplays(item.id);
  return el("section", { class: "d-section replays" }, el("h3", {}, "Replays", count), box, list);
}

/** Unfold the replay form of the request shown and put the cursor in its URL field. */
export function openReplayForm() {
  if (!mounted) return;
  mounted.box.open = true;
  formOpen = true;
  mounted.box.scrollIntoView({ block: "nearest" });
  mounted.parts.urlInput.focus();
}
