// The live request page. State comes from the server-rendered data block (#boot), then from
// /api/stream: new captures are shown within a frame of their arrival, and after any
// reconnect the stream resumes from the last request id seen (Last-Event-ID), so none is
// missed. Every row, the first page's too, is drawn here (rowView + fillRow on a clone of
// _row.html): one renderer, so a first-paint row and a live row cannot differ. Captured data
// only ever reaches the DOM through textContent.

import { loadRequest, renderDetail, sameRequest } from "./detail.js";
import { refreshReplays } from "./replay.js";
import { openSettings } from "./settings.js";
import { ApiError, answerOf, api, clear, clock, copyText, el, flash, humanSize, randomEndpoint, signatureOf } from "./util.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const $ = (id) => document.getElementById(id);

const MAX_ROWS = 1000; // live rows beyond this fall off the bottom ("Load older" brings them back)
const MAX_PENDING = 5000; // events waiting for the next frame; more and we reload instead
// The server's filter names (views.FILTER_KEYS): the data block echoes each one.
const FILTER_KEYS = Object.freeze(Object.keys(boot.filters));

const state = {
  items: new Map(), // id -> list item, for every row shown
  rows: new Map(), // id -> <li>
  rowGen: new Map(), // id -> list generation that added it
  generation: 0, // bumped when the filters change (a new list)
  filters: { ...boot.filters },
  nextBefore: boot.next_before,
  endpoints: new Map(boot.endpoints.map((e) => [e.name, e])),
  counted: boot.head, // endpoint counts include every request up to this id
  cursor: boot.head, // the stream resumes after this request id
  selected: null,
  unseen: 0,
};

const rowsEl = $("rows");
const template = $("row-template");
const filtersForm = $("filters");

// -- rows ------------------------------------------------------------------------------------

function rowView(item) {
  const [answer, answerClass, answerTitle] = answerOf(item.response);
  const sig = signatureOf(item.signature);
  let what = item.event_type || item.content_type || (item.size ? "" : "no body");
  if (item.event_type && item.summary) what = `${item.event_type} — ${item.summary}`;
  const meta = [`#${item.id}`, item.endpoint, humanSize(item.size)];
  if (item.attempt > 1) meta.push(`attempt ${item.attempt}`);
  return {
    method: item.method,
    target: item.path + (item.query ? `?${item.query}` : ""),
    what,
    meta: meta.join(" · "),
    time: clock(item.received_at),
    answer: [answer, answerClass, answerTitle],
    sig,
  };
}

function fillRow(li, item) {
  const view = rowView(item);
  const field = (name) => li.querySelector(`[data-field="${name}"]`);
  li.dataset.id = item.id;
  field("link").href = `#${item.id}`;
  field("method").textContent = view.method;
  field("target").textContent = view.target;
  field("target").title = view.target;
  field("what").textContent = view.what;
  field("what").title = view.what;
  field("meta").textContent = view.meta;
  const time = field("time");
  time.textContent = view.time;
  time.dateTime = item.received_at;
  time.title = item.received_at;
  const answer = field("answer");
  answer.textContent = view.answer[0];
  answer.className = `badge ${view.answer[1]}`;
  answer.title = view.answer[2];
  const sig = field("sig");
  const [sigText, sigClass, sigTitle] = view.sig || ["", "", ""];
  sig.hidden = !view.sig;
  sig.textContent = sigText;
  sig.className = `badge ${sigClass}`.trim();
  sig.title = sigTitle;
  li.classList.toggle("selected", item.id === state.selected);
  li.classList.toggle("retry", item.attempt > 1);
}

function makeRow(item) {
  const li = template.content.firstElementChild.cloneNode(true);
  fillRow(li, item);
  return li;
}

function setItem(item) {
  const old = state.items.get(item.id);
  if (old && item.summary === undefined) item.summary = old.summary;
  state.items.set(item.id, item);
}

/** Add (or refresh) a row, keeping the list newest first. */
function insertRow(item) {
  setItem(item);
  const existing = state.rows.get(item.id);
  if (existing) {
    fillRow(existing, item);
    return;
  }
  const li = makeRow(item);
  state.rows.set(item.id, li);
  state.rowGen.set(item.id, state.generation);
  let before = rowsEl.firstElementChild;
  while (before && Number(before.dataset.id) > item.id) before = before.nextElementSibling;
  rowsEl.insertBefore(li, before);
}

function removeRow(id) {
  const li = state.rows.get(id);
  if (li) li.remove();
  state.rows.delete(id);
  state.items.delete(id);
  state.rowGen.delete(id);
}

function trimRows() {
  while (state.rows.size > MAX_ROWS) {
    const last = rowsEl.lastElementChild;
    const id = Number(last.dataset.id);
    removeRow(id);
    state.nextBefore = Math.min(...state.rows.keys());
  }
}

function renderList(items) {
  clear(rowsEl);
  state.items.clear();
  state.rows.clear();
  state.rowGen.clear();
  const fragment = document.createDocumentFragment();
  for (const item of [...items].sort((a, b) => b.id - a.id)) {
    setItem(item);
    const li = makeRow(item);
    state.rows.set(item.id, li);
    state.rowGen.set(item.id, state.generation);
    fragment.append(li);
  }
  rowsEl.append(fragment);
}

// -- filters ---------------------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) if (state.filters[key]) params.set(key, state.filters[key]);
  return params;
}

/** Whether a list item passes the filters the page can check itself (all but `q`). */
function matchesLocal(item) {
  const f = state.filters;
  if (f.endpoint && item.endpoint !== f.endpoint) return false;
  if (f.method && item.method !== f.method.toUpperCase()) return false;
  if (f.status && item.response.status !== Number(f.status)) return false;
  if (f.signature) {
    const status = item.signature ? item.signature.status : null;
    if (f.signature === "none" ? status !== null : status !== f.signature) return false;
  }
  if (f.event_type && item.event_type !== f.event_type) return false;
  return true;
}

function readFilters() {
  const data = new FormData(filtersForm);
  const next = {};
  for (const key of FILTER_KEYS) next[key] = String(data.get(key) || "").trim();
  if (next.status && !/^[1-5]\d\d$/.test(next.status)) next.status = state.filters.status;
  return next;
}

async function applyFilters(next) {
  if (FILTER_KEYS.every((k) => (next[k] || "") === (state.filters[k] || ""))) return;
  state.filters = next;
  for (const key of FILTER_KEYS) {
    const input = filtersForm.elements[key];
    if (input && input.value !== next[key]) input.value = next[key];
  }
  const query = filterParams().toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
  renderEndpoints();
  await reloadList();
}

async function reloadList() {
  const generation = ++state.generation;
  unresolved.clear(); // the reload brings those rows (or not) with their summaries
  const params = filterParams();
  params.set("limit", String(boot.page_size));
  let data;
  try {
    data = await api(`/api/requests?${params}`);
  } catch (error) {
    showListError(error);
    return;
  }
  if (generation !== state.generation) return; // a newer reload is on its way
  const newest = data.requests.length ? data.requests[0].id : 0;
  // Live rows that arrived (under these filters) while the list loaded.
  const arrived = [...state.items.values()].filter((it) => it.id > newest && state.rowGen.get(it.id) === generation);
  renderList([...arrived, ...data.requests]);
  state.nextBefore = data.next_before;
  updateChrome();
}

async function loadOlder() {
  if (state.nextBefore === null || loadOlder.busy) return;
  loadOlder.busy = true;
  const generation = state.generation;
  const params = filterParams();
  params.set("limit", String(boot.page_size));
  params.set("before", String(state.nextBefore));
  try {
    const data = await api(`/api/requests?${params}`);
    if (generation === state.generation) {
      for (const item of data.requests) insertRow(item);
      state.nextBefore = data.next_before;
    }
  } catch (error) {
    showListError(error);
  } finally {
    loadOlder.busy = false;
    updateChrome();
  }
}

function showListError(error) {
  const box = $("no-match");
  box.hidden = false;
  box.textContent = error instanceof ApiError ? error.detail : `Could not load requests: ${error}`;
}

// -- endpoints -------------------------------------------------------------------------------

function totalCount() {
  let total = 0;
  for (const e of state.endpoints.values()) total += e.count;
  return total;
}

function renderEndpoints() {
  const list = $("endpoints");
  const current = state.filters.endpoint;
  const entries = [...state.endpoints.values()].sort((a, b) => (b.last_id || 0) - (a.last_id || 0) || a.name.localeCompare(b.name));
  if (current && !state.endpoints.has(current)) entries.unshift({ name: current, count: 0, last_seen: null });
  const item = (name, label, count, title) =>
    el(
      "li",
      {},
      el("a", { class: `ep${name === current ? " current" : ""}`, href: name ? `/?endpoint=${encodeURIComponent(name)}` : "/", "data-endpoint": name, title }, el("span", { class: "ep-name", text: label }), el("span", { class: "count", text: String(count) })),
    );
  clear(list).append(
    item("", "All endpoints", totalCount()),
    ...entries.map((e) => item(e.name, e.name, e.count, e.last_seen ? `last request ${e.last_seen}` : "no request yet")),
  );
}

function countEndpoint(item) {
  if (item.id <= state.counted) return;
  state.counted = item.id;
  const entry = state.endpoints.get(item.endpoint) || { name: item.endpoint, count: 0 };
  entry.count += 1;
  entry.last_seen = item.received_at;
  entry.last_id = item.id;
  state.endpoints.set(item.endpoint, entry);
}

let endpointsTimer = null;
function refreshEndpointsSoon() {
  clearTimeout(endpointsTimer);
  endpointsTimer = setTimeout(async () => {
    try {
      const data = await api("/api/endpoints");
      state.endpoints = new Map(data.endpoints.map((e) => [e.name, e]));
      renderEndpoints();
      updateChrome();
    } catch {
      /* the next event retries */
    }
  }, 300);
}

// -- chrome: empty states, the endpoint bar, the title ---------------------------------------

function captureUrl(name) {
  return `${boot.capture_base}${name}`;
}

/** The capture URL over HTTPS (serve --https), when the page was reached over plain HTTP. */
function httpsCaptureUrl(name) {
  return boot.https_base ? `${boot.https_base}${name}` : null;
}

function updateChrome() {
  const filtered = FILTER_KEYS.some((k) => state.filters[k]);
  const empty = state.rows.size === 0;
  $("welcome").hidden = !(totalCount() === 0 && !filtered && empty);
  const noMatch = $("no-match");
  noMatch.hidden = !(empty && (filtered || totalCount() > 0));
  if (!noMatch.hidden) {
    noMatch.textContent = state.filters.endpoint && !FILTER_KEYS.some((k) => k !== "endpoint" && state.filters[k]) ? `Nothing captured at ${state.filters.endpoint} yet: send a request to the URL above.` : "No request matches these filters.";
  }
  $("older").hidden = state.nextBefore === null || empty;
  $("reset-filters").hidden = !filtered;
  const bar = $("endpoint-bar");
  bar.hidden = !state.filters.endpoint;
  if (state.filters.endpoint) {
    $("endpoint-url").textContent = captureUrl(state.filters.endpoint);
    if (boot.https_base) $("endpoint-url-https").textContent = httpsCaptureUrl(state.filters.endpoint);
  }
  document.title = `${state.unseen ? `(${state.unseen}) ` : ""}Requests · webhook-inspector`;
}

// -- the stream ------------------------------------------------------------------------------

const pending = [];
let flushTimer = null;

function enqueue(event) {
  pending.push(event);
  if (pending.length > MAX_PENDING) {
    pending.length = 0;
    stream.resync();
    return;
  }
  if (flushTimer === null) flushTimer = setTimeout(flush, 16);
}

function flush() {
  flushTimer = null;
  const batch = pending.splice(0);
  const fresh = [];
  let endpointsChanged = false;
  for (const event of batch) {
    if (event.kind === "request") {
      countEndpoint(event.item);
      endpointsChanged = true;
      if (document.hidden) state.unseen += 1;
      if (matchesLocal(event.item)) fresh.push(event.item);
    } else if (event.kind === "update") {
      applyUpdate(event.item);
    } else if (event.kind === "deleted") {
      removeRow(event.data.id);
      if (state.selected === event.data.id) showGone(event.data.id);
      refreshEndpointsSoon();
    } else if (event.kind === "cleared") {
      for (const item of [...state.items.values()]) {
        if (!event.data.endpoint || item.endpoint === event.data.endpoint) {
          removeRow(item.id);
          if (state.selected === item.id) showGone(item.id);
        }
      }
      refreshEndpointsSoon();
    }
  }
  if (fresh.length) {
    if (!state.filters.q) fresh.forEach(insertRow);
    resolveLater(fresh);
    trimRows();
  }
  if (endpointsChanged) renderEndpoints();
  updateChrome();
}

// At most one resolving query in flight, and a few per second: a busy stream must not turn
// into a busy page hammering the server.
const unresolved = new Map();
let resolveTimer = null;
let resolving = false;

function resolveLater(items) {
  for (const item of items) unresolved.set(item.id, item);
  if (resolveTimer === null && !resolving) resolveTimer = setTimeout(runResolve, 50);
}

async function runResolve() {
  resolveTimer = null;
  const items = [...unresolved.values()];
  unresolved.clear();
  resolving = true;
  try {
    await resolveFromServer(items);
  } finally {
    resolving = false;
    if (unresolved.size) resolveTimer = setTimeout(runResolve, 250);
  }
}

/**
 * Live items the page cannot finish alone: under a text search (which only the server can
 * run over headers and bodies) and event summaries (read from the stored body). One list
 * query per batch, whatever its size: the newest matching requests up to the batch's last id.
 */
async function resolveFromServer(items) {
  const need = state.filters.q ? items : items.filter((it) => it.event_type && it.summary === undefined);
  if (!need.length) return;
  const ids = new Set(need.map((it) => it.id));
  const params = filterParams();
  params.set("before", String(Math.max(...ids) + 1));
  params.set("limit", String(Math.min(need.length, 1000)));
  const generation = state.generation;
  let data;
  try {
    data = await api(`/api/requests?${params}`);
  } catch {
    return;
  }
  if (generation !== state.generation) return;
  for (const item of data.requests) {
    if (!ids.has(item.id)) continue;
    if (state.filters.q || state.rows.has(item.id)) insertRow(item);
  }
  trimRows();
  updateChrome();
}

function applyUpdate(item) {
  if (state.items.has(item.id)) {
    setItem(item);
    if (matchesLocal(item)) insertRow(state.items.get(item.id));
    else removeRow(item.id);
  } else if (matchesLocal(item) && (state.nextBefore === null || item.id > state.nextBefore)) {
    if (state.filters.q) resolveLater([item]);
    else insertRow(item);
  }
  if (state.selected === item.id) {
    // A replay, mirror or proxy exchange leaves the request as it was: only its replays are
    // refreshed (a re-render would also cost the reader their scroll and focus).
    if (sameRequest(shownItem, item)) refreshReplays(item.id);
    else showDetail(item.id);
  }
}

const conn = $("conn");
function setConn(status, text) {
  conn.dataset.state = status;
  conn.textContent = text;
}

const stream = {
  source: null,
  retryTimer: null,
  backoff: 1000,
  onReady: null,

  connect(after) {
    this.close();
    const url = after === null || after === undefined ? "/api/stream" : `/api/stream?after=${after}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("ready", (e) => {
      if (e.lastEventId) state.cursor = Number(e.lastEventId);
      this.backoff = 1000;
      setConn("live", "live");
      const ready = this.onReady;
      this.onReady = null;
      if (ready) ready();
    });
    source.addEventListener("request", (e) => {
      state.cursor = Number(e.lastEventId);
      enqueue({ kind: "request", item: JSON.parse(e.data) });
    });
    source.addEventListener("update", (e) => enqueue({ kind: "update", item: JSON.parse(e.data) }));
    source.addEventListener("deleted", (e) => enqueue({ kind: "deleted", data: JSON.parse(e.data) }));
    source.addEventListener("cleared", (e) => enqueue({ kind: "cleared", data: JSON.parse(e.data) }));
    source.addEventListener("resync", (e) => {
      const data = JSON.parse(e.data);
      this.resync(data.reason === "unknown_id");
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an error status while the server restarted): retry
        // ourselves, from the last request seen.
        setConn("offline", "offline — retrying");
        this.retryTimer = setTimeout(() => this.connect(state.cursor), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      } else {
        setConn("reconnecting", "reconnecting…");
      }
    });
  },

  /** Our view is stale (we fell behind, or the server has another store): subscribe anew,
   * then reload the list from the store; rows arriving meanwhile are merged by id. */
  resync(storeChanged = false) {
    setConn("reconnecting", "catching up…");
    if (storeChanged) {
      renderList([]);
      state.counted = 0;
    }
    this.onReady = () => {
      state.counted = Math.max(state.counted, state.cursor);
      reloadList();
      refreshEndpointsSoon();
      if (state.selected !== null) showDetail(state.selected);
    };
    this.connect(null);
  },

  close() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  },
};

// -- selection and detail --------------------------------------------------------------------

const detailView = $("detail-view");
const detailEmpty = $("detail-empty");
let detailToken = 0;
let shownItem = null; // the request rendered in the detail pane (detail API shape)

function markSelected() {
  for (const [id, li] of state.rows) li.classList.toggle("selected", id === state.selected);
}

function showGone(id) {
  shownItem = null;
  detailView.hidden = true;
  detailEmpty.hidden = false;
  detailEmpty.textContent = `Request #${id} is not in the store (deleted, cleared or evicted by retention).`;
}

async function showDetail(id) {
  const token = ++detailToken;
  let item;
  try {
    item = await loadRequest(id); // its fields, and a screenful's worth of body bytes
  } catch (error) {
    if (token !== detailToken) return;
    if (error instanceof ApiError && error.status === 404) showGone(id);
    else {
      detailView.hidden = true;
      detailEmpty.hidden = false;
      detailEmpty.textContent = `Could not load request #${id}: ${error.detail || error}`;
    }
    return;
  }
  if (token !== detailToken) return;
  shownItem = item;
  const scroll = detailView.parentElement.scrollTop;
  renderDetail(detailView, item, state.items.get(id), {
    deleted(gone) {
      removeRow(gone);
      showGone(gone);
      refreshEndpointsSoon();
      updateChrome();
    },
  });
  detailEmpty.hidden = true;
  detailView.hidden = false;
  if (id === Number(detailView.dataset.id)) detailView.parentElement.scrollTop = scroll;
  detailView.dataset.id = String(id);
}

function select(id) {
  state.selected = id;
  markSelected();
  if (id === null) {
    detailView.hidden = true;
    detailEmpty.hidden = false;
    detailEmpty.textContent = "Select a request to see its headers, body and the answer it got.";
    return;
  }
  const li = state.rows.get(id);
  if (li) li.scrollIntoView({ block: "nearest" });
  showDetail(id);
}

function idFromHash() {
  const m = /^#(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function moveSelection(step) {
  const ids = [...rowsEl.children].map((li) => Number(li.dataset.id));
  if (!ids.length) return;
  const at = ids.indexOf(state.selected);
  const next = at === -1 ? ids[0] : ids[Math.max(0, Math.min(ids.length - 1, at + step))];
  location.hash = `#${next}`;
}

// -- wiring ----------------------------------------------------------------------------------

function setWelcomeName(name) {
  const url = captureUrl(name);
  $("welcome-url").textContent = url;
  if (boot.https_base) $("welcome-url-https").textContent = httpsCaptureUrl(name);
  $("welcome-curl").textContent = `curl -X POST '${url}' -H 'Content-Type: application/json' -d '${JSON.stringify(sampleEvent())}'`;
}

function sampleEvent() {
  return {
    event: "message.received",
    timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    data: { channelId: "C1234567890", messageId: `msg_${Date.now()}`, sender: { userId: "U1234567890", displayName: "王小明" }, type: "text", content: "大家早安!" },
  };
}

document.addEventListener("click", async (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const copy = target.closest("[data-copy]");
  if (copy) {
    const text = $(copy.dataset.copy).textContent;
    flash(copy, (await copyText(text)) ? "Copied" : "Copy failed");
    return;
  }
  const endpointLink = target.closest("a.ep");
  if (endpointLink) {
    event.preventDefault();
    applyFilters({ ...state.filters, endpoint: endpointLink.dataset.endpoint });
  }
});

filtersForm.addEventListener("submit", (event) => event.preventDefault());
let searchTimer = null;
filtersForm.addEventListener("input", (event) => {
  const name = event.target.name;
  clearTimeout(searchTimer);
  if (name === "q" || name === "status") searchTimer = setTimeout(() => applyFilters(readFilters()), 250);
  else applyFilters(readFilters());
});
$("reset-filters").addEventListener("click", () => applyFilters(Object.fromEntries(FILTER_KEYS.map((k) => [k, ""]))));

$("older").addEventListener("click", loadOlder);
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) loadOlder();
}).observe($("older"));

$("new-endpoint").addEventListener("click", () => applyFilters({ ...state.filters, endpoint: randomEndpoint() }));
$("open-settings").addEventListener("click", () => openSettings(state.filters.endpoint));
const clearButton = $("clear-endpoint");
clearButton.addEventListener("click", async () => {
  // Two clicks, no native confirm(): the first arms the button for a few seconds.
  if (!clearButton.dataset.armed) {
    clearButton.dataset.armed = "1";
    flash(clearButton, "Click again to delete all", 3000);
    setTimeout(() => delete clearButton.dataset.armed, 3000);
    return;
  }
  delete clearButton.dataset.armed;
  try {
    const { deleted } = await api(`/api/requests?endpoint=${encodeURIComponent(state.filters.endpoint)}`, { method: "DELETE" });
    flash(clearButton, `Deleted ${deleted}`);
  } catch (error) {
    flash(clearButton, "Failed");
    showListError(error);
  }
});

$("welcome-new").addEventListener("click", () => setWelcomeName(randomEndpoint()));
$("welcome-send").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  try {
    const response = await fetch($("welcome-url").textContent, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(sampleEvent()) });
    flash(button, response.ok ? "Sent" : `Answered ${response.status}`);
  } catch {
    flash(button, "Failed");
  }
});

window.addEventListener("hashchange", () => select(idFromHash()));
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLElement && event.target.closest("input, textarea, select, dialog")) return;
  if (event.key === "j" || event.key === "ArrowDown") {
    moveSelection(1);
    event.preventDefault();
  } else if (event.key === "k" || event.key === "ArrowUp") {
    moveSelection(-1);
    event.preventDefault();
  } else if (event.key === "/") {
    filtersForm.elements.q.focus();
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    state.unseen = 0;
    updateChrome();
  }
});

// Start: the first page from the data block, drawn before the first frame (the script is
// render-blocking), no second fetch; then live from the head the page was rendered at.
renderList(boot.requests);
renderEndpoints();
setWelcomeName(boot.suggestion);
updateChrome();
stream.connect(boot.head);
select(idFromHash());
window.inspector = { state, stream }; // for the curious (and the browser tests)
