// The live request page. State comes from the server-rendered data block (#boot), then from
// /api/stream: after any reconnect the stream resumes from the last request id seen
// (Last-Event-ID), so none is missed. Rows are drawn by rows.js (one renderer, the first page
// included); hold.js decides when the list holds still for its reader. Captured data only
// ever reaches the DOM through textContent.
//
// Order: the page reads the store and the stream, and a read may answer after events newer
// than what it read. So a read's answer takes its place in the queue of events where the read
// began, and the events behind it wait for it: an event is sent only after its commit, so a
// read begun after an event arrived already holds that event's state, and events that arrive
// later are applied after it. What the page shows only moves forward.

import { renderDetail, sameRequest } from "./detail.js";
import { Hold, NewCount } from "./hold.js";
import { refreshReplays } from "./replay.js";
import { RowList } from "./rows.js";
import { openSettings } from "./settings.js";
import { ApiError, api, copyText, el, flash, randomEndpoint } from "./util.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const $ = (id) => document.getElementById(id);

// At the live head the list keeps this many rows; older ones come back from the store.
const LIVE_ROWS = boot.page_size;
// ms between list updates: an idle page shows a capture at once; a busy stream becomes a few
// list updates a second (nobody reads 300 rows a second; every update costs a layout).
const FLUSH_GAP = 100;
const BUSY_GAP = 250; // after an update that brought this many captures or more:
const BUSY_BATCH = 10;
const CALM_GAP = 1000; // ms without arrivals before a new row is highlighted again
const SUMMARY_ROWS = 50; // rows whose summaries one query fills in
const MAX_PENDING = 5000; // events waiting to be applied; more and we resync instead
// The server's filter names (views.FILTER_KEYS): the data block echoes each one.
const FILTER_KEYS = Object.freeze(Object.keys(boot.filters));

const state = {
  generation: 0, // bumped for every new list (filters, reload)
  filters: { ...boot.filters },
  nextBefore: boot.next_before, // older matches come back with ?before=
  top: boot.head, // the list shows every match up to this id
  applied: boot.head, // the newest request id the page has applied
  endpoints: new Map(boot.endpoints.map((e) => [e.name, e])),
  counted: boot.head, // endpoint counts include every request up to this id
  cursor: boot.head, // the stream resumes after this request id
  selected: null,
  unseen: 0,
  reads: 0, // list reads in flight (events wait for them)
  reloading: false, // a new list is on its way
  stale: false, // the list missed changes while it held still
};

const listPane = $("list-pane");
const rowsEl = $("rows");
const rows = new RowList(rowsEl, $("row-template"), listPane, $("list-head"));
const filtersForm = $("filters");
const pill = $("new-pill");
const newCount = new NewCount(countNew, showPill);
const hold = new Hold(listPane, rowsEl, holdChanged);

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
  await jumpToHead();
}

// -- reading the list from the store ---------------------------------------------------------

/**
 * Read `path` from the store; `apply(data, error)` runs in the flush, in the queue of events
 * where the read began: after the events that arrived before it, before those after it.
 * Resolves once it has run.
 */
async function read(path, apply) {
  const at = pending.length;
  state.reads += 1;
  let data = null;
  let error = null;
  try {
    data = await api(path);
  } catch (failure) {
    error = failure;
  }
  state.reads -= 1;
  return new Promise((done) => {
    const entry = {
      kind: "read",
      apply() {
        try {
          apply(data, error);
        } finally {
          done();
        }
      },
    };
    pending.splice(Math.min(at, pending.length), 0, entry);
    scheduleFlush();
  });
}

/** The newest page from the store: a new list, at the head. */
function reloadList() {
  const generation = ++state.generation;
  state.reloading = true;
  unresolved.clear();
  const params = filterParams();
  params.set("limit", String(boot.page_size));
  return read(`/api/requests?${params}`, (data, error) => {
    if (generation !== state.generation) return; // a newer list is on its way
    state.reloading = false;
    if (error) {
      showListError(error);
      return;
    }
    rows.replace(data.requests);
    state.nextBefore = data.next_before;
    // Matches up to what the page had applied when the read began were committed before it,
    // so they are in this page; events after it are newer than this top.
    state.top = Math.max(state.applied, data.requests.length ? data.requests[0].id : 0);
    state.stale = false;
    newCount.reset(state.top);
    watchSelected();
  });
}

/** Back to the live head: the top of the list, reloaded from the store. */
function jumpToHead() {
  listPane.scrollTop = 0;
  return reloadList();
}

function loadOlder() {
  if (state.nextBefore === null || loadOlder.busy) return;
  loadOlder.busy = true;
  const generation = state.generation;
  const params = filterParams();
  params.set("limit", String(boot.page_size));
  params.set("before", String(state.nextBefore));
  read(`/api/requests?${params}`, (data, error) => {
    loadOlder.busy = false;
    if (error) showListError(error);
    else if (generation === state.generation) {
      rows.addOlder(data.requests);
      state.nextBefore = data.next_before;
      watchSelected();
    }
  });
}

function countNew(after, before) {
  const params = filterParams();
  params.set("after", String(after));
  params.set("before", String(before));
  return api(`/api/requests/count?${params}`).then((data) => data.count);
}

function showListError(error) {
  const box = $("no-match");
  box.hidden = false;
  box.textContent = error instanceof ApiError ? error.detail : `Could not load requests: ${error}`;
}

// -- reading mode ----------------------------------------------------------------------------

function holdChanged(active) {
  if (active) {
    newCount.reset(state.top);
    if (state.filters.q && (unresolved.size || resolving.size)) newCount.recount(() => state.applied);
    unresolved.clear();
  } else if (!state.reloading && (newCount.value || newCount.unsure || state.stale)) {
    jumpToHead();
  }
  showPill();
}

const groups = new Intl.NumberFormat("en-US");
let pillText = "";
function showPill() {
  const n = hold.active ? newCount.value : 0;
  const text = n ? `▲ ${groups.format(n)} new` : "";
  if (text === pillText) return;
  pillText = text;
  pill.textContent = text;
  pill.hidden = !n;
}

function watchSelected() {
  hold.watch(rows.row(state.selected));
}

// -- endpoints -------------------------------------------------------------------------------

function totalCount() {
  let total = 0;
  for (const e of state.endpoints.values()) total += e.count;
  return total;
}

const sidebar = { order: null, links: new Map() }; // the rendered order; name -> {link, counter}

/** The endpoint list: rebuilt when its order changes, else only its counts are updated. */
function renderEndpoints() {
  const list = $("endpoints");
  const current = state.filters.endpoint;
  const entries = [...state.endpoints.values()].sort((a, b) => (b.last_id || 0) - (a.last_id || 0) || a.name.localeCompare(b.name));
  if (current && !state.endpoints.has(current)) entries.unshift({ name: current, count: 0, last_seen: null });
  const title = (e) => (e.last_seen ? `last request ${e.last_seen}` : "no request yet");
  const order = JSON.stringify([current, ...entries.map((e) => e.name)]);
  if (order === sidebar.order) {
    setCount(sidebar.links.get(""), totalCount());
    for (const e of entries) setCount(sidebar.links.get(e.name), e.count, title(e));
    return;
  }
  sidebar.order = order;
  sidebar.links.clear();
  const item = (name, label, count, tip) => {
    const counter = el("span", { class: "count", text: String(count) });
    const attrs = { class: `ep${name === current ? " current" : ""}`, href: name ? `/?endpoint=${encodeURIComponent(name)}` : "/", "data-endpoint": name, title: tip, "aria-current": name === current ? "true" : null };
    const link = el("a", attrs, el("span", { class: "ep-name", text: label }), counter);
    sidebar.links.set(name, { link, counter });
    return el("li", {}, link);
  };
  list.replaceChildren(item("", "All endpoints", totalCount()), ...entries.map((e) => item(e.name, e.name, e.count, title(e))));
}

function setCount(entry, count, tip) {
  if (!entry) return;
  const text = String(count);
  if (entry.counter.textContent !== text) entry.counter.textContent = text;
  if (tip !== undefined && entry.link.title !== tip) entry.link.title = tip;
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

function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

function updateChrome() {
  const filtered = FILTER_KEYS.some((k) => state.filters[k]);
  const empty = rows.size === 0;
  setHidden($("welcome"), !(totalCount() === 0 && !filtered && empty));
  const noMatch = $("no-match");
  setHidden(noMatch, !(empty && (filtered || totalCount() > 0)));
  if (!noMatch.hidden) {
    noMatch.textContent = state.filters.endpoint && !FILTER_KEYS.some((k) => k !== "endpoint" && state.filters[k]) ? `Nothing captured at ${state.filters.endpoint} yet: send a request to the URL above.` : "No request matches these filters.";
  }
  setHidden($("older"), state.nextBefore === null || empty);
  setHidden($("reset-filters"), !filtered);
  setHidden($("endpoint-bar"), !state.filters.endpoint);
  if (state.filters.endpoint) {
    $("endpoint-url").textContent = captureUrl(state.filters.endpoint);
    if (boot.https_base) $("endpoint-url-https").textContent = httpsCaptureUrl(state.filters.endpoint);
  }
  const title = `${state.unseen ? `(${state.unseen}) ` : ""}Requests · webhook-inspector`;
  if (document.title !== title) document.title = title;
}

// -- the stream ------------------------------------------------------------------------------

const pending = [];
let flushTimer = null;
let lastFlush = -Infinity;
let lastArrival = -Infinity;
let flushGap = FLUSH_GAP;

function enqueue(event) {
  pending.push(event);
  if (pending.length > MAX_PENDING) {
    // Too far behind: drop the stream's events (the store has them) but not the reads'.
    const reads = pending.filter((e) => e.kind === "read");
    pending.length = 0;
    pending.push(...reads);
    stream.resync();
    return;
  }
  scheduleFlush();
}

/** Apply waiting events soon: at once when the page was quiet, else a gap after the last
 * update (a busy stream becomes a few list updates a second, not one per capture or frame). */
function scheduleFlush() {
  if (flushTimer !== null) return;
  flushTimer = setTimeout(flush, Math.max(0, lastFlush + flushGap - performance.now()));
}

function flush() {
  flushTimer = null;
  if (state.reads) return; // the events wait for the read's answer (see read())
  const now = performance.now();
  const calm = now - lastArrival > CALM_GAP && now - lastFlush > CALM_GAP;
  lastFlush = now;
  const batch = pending.splice(0);
  flushGap = batch.length >= BUSY_BATCH ? BUSY_GAP : FLUSH_GAP;
  const search = Boolean(state.filters.q);
  let fresh = [];
  let recount = false;
  let endpointsChanged = false;
  const addFresh = () => {
    if (!fresh.length) return;
    if (search) resolveLater(fresh);
    else {
      rows.addNewest(fresh, LIVE_ROWS, calm && fresh.length === 1);
      resolveLater(fresh.filter((it) => it.event_type));
    }
    fresh = [];
  };
  for (const event of batch) {
    const holding = hold.active;
    if (event.kind === "request") {
      const item = event.item;
      lastArrival = now;
      countEndpoint(item);
      endpointsChanged = true;
      if (document.hidden) state.unseen += 1;
      state.applied = Math.max(state.applied, item.id);
      if (item.id <= state.top || rows.has(item.id)) continue; // shown, or not a match
      if (holding) {
        if (search) recount = true;
        else if (matchesLocal(item)) newCount.seen(item.id);
      } else if (matchesLocal(item)) fresh.push(item);
    } else if (event.kind === "read") {
      addFresh();
      event.apply();
    } else if (event.kind === "update") {
      applyUpdate(event.item, holding);
    } else if (event.kind === "deleted") {
      rows.remove(event.data.id);
      if (state.selected === event.data.id) showGone(event.data.id);
      recount = recount || holding;
      refreshEndpointsSoon();
    } else if (event.kind === "cleared") {
      for (const id of rows.ids()) {
        const item = rows.item(id);
        if (!event.data.endpoint || item.endpoint === event.data.endpoint) {
          rows.remove(id);
          if (state.selected === id) showGone(id);
        }
      }
      recount = recount || holding;
      refreshEndpointsSoon();
    }
  }
  addFresh();
  if (!hold.active) {
    if (rows.size > LIVE_ROWS) state.nextBefore = rows.trim(LIVE_ROWS);
    advanceTop();
    watchSelected();
  } else if (recount) newCount.recount(() => state.applied);
  if (endpointsChanged) renderEndpoints();
  showPill();
  updateChrome();
}

/** At the live head the list covers everything applied, but for searched captures the
 * server has not judged yet. */
function advanceTop() {
  if (hold.active) return;
  let top = state.applied;
  if (state.filters.q) for (const id of [...unresolved.keys(), ...resolving.keys()]) top = Math.min(top, id - 1);
  state.top = Math.max(state.top, top);
}

// At most one resolving query in flight, and a few per second: a busy stream must not turn
// into a busy page hammering the server.
const unresolved = new Map(); // id -> item, waiting for the next query
const resolving = new Map(); // id -> item, in the query in flight
let resolveTimer = null;

function resolveLater(items) {
  for (const item of items) unresolved.set(item.id, item);
  if (resolveTimer === null && !resolving.size) resolveTimer = setTimeout(runResolve, 50);
}

async function runResolve() {
  resolveTimer = null;
  for (const [id, item] of unresolved) resolving.set(id, item);
  unresolved.clear();
  await resolveFromServer([...resolving.values()]);
  resolving.clear();
  advanceTop();
  if (unresolved.size) resolveTimer = setTimeout(runResolve, 250);
}

/**
 * Live items the page cannot finish alone: under a text search (which only the server can
 * run over headers and bodies) and event summaries (read from the stored body). One list
 * query per batch, whatever its size: the newest matching requests up to the batch's last id.
 */
async function resolveFromServer(items) {
  const search = Boolean(state.filters.q);
  let need = search ? items : items.filter((it) => rows.has(it.id) && rows.item(it.id).summary === undefined);
  if (!search) need = need.sort((a, b) => b.id - a.id).slice(0, SUMMARY_ROWS); // the rest scrolled off
  if (!need.length) return;
  const ids = new Set(need.map((it) => it.id));
  const params = filterParams();
  params.set("before", String(Math.max(...ids) + 1));
  params.set("limit", String(Math.min(need.length, 1000)));
  const generation = state.generation;
  await read(`/api/requests?${params}`, (data, error) => {
    if (error || generation !== state.generation) return;
    if (search && hold.active) return; // counted by the pill instead (see holdChanged)
    for (const item of data.requests) {
      if (!ids.has(item.id)) continue;
      if (search || rows.has(item.id)) rows.put(item);
    }
    if (search && !hold.active && rows.size > LIVE_ROWS) state.nextBefore = rows.trim(LIVE_ROWS);
  });
}

function applyUpdate(item, holding) {
  if (rows.has(item.id)) {
    // While the list holds still a row is refreshed in place but never removed for no
    // longer matching: the list is reloaded when the reader comes back.
    if (holding || matchesLocal(item)) rows.put(item);
    else rows.remove(item.id);
    if (holding && !matchesLocal(item)) state.stale = true;
  } else if (matchesLocal(item) && item.id <= state.top && (state.nextBefore === null || item.id > state.nextBefore)) {
    if (holding) state.stale = true;
    else if (state.filters.q) resolveLater([item]);
    else rows.put(item);
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
   * then read the list from the store again — or, while the list holds still, only count
   * what is new, and reload when the reader comes back. */
  resync(storeChanged = false) {
    setConn("reconnecting", "catching up…");
    if (storeChanged) {
      rows.replace([]);
      state.counted = 0;
      state.top = 0;
      state.applied = 0;
    }
    this.onReady = () => {
      // Everything up to the new head is read from the store, not from the stream.
      state.counted = Math.max(state.counted, state.cursor);
      state.applied = Math.max(state.applied, state.cursor);
      if (hold.active && !storeChanged) {
        state.stale = true;
        newCount.recount(() => state.applied);
      } else {
        reloadList();
      }
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

const detailPane = $("detail");
const detailView = $("detail-view");
const detailEmpty = $("detail-empty");
let detailToken = 0;
let shownItem = null; // the request rendered in the detail pane (detail API shape)

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
    item = await api(`/api/requests/${id}`);
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
  const scroll = detailPane.scrollTop;
  renderDetail(detailView, item, rows.item(id), {
    deleted(gone) {
      rows.remove(gone);
      showGone(gone);
      refreshEndpointsSoon();
      updateChrome();
    },
  });
  detailEmpty.hidden = true;
  detailView.hidden = false;
  if (id === Number(detailView.dataset.id)) detailPane.scrollTop = scroll;
  detailView.dataset.id = String(id);
}

/** On narrow screens the detail is a panel over the list, open while a request is shown. */
function openPanel(open) {
  document.body.classList.toggle("detail-open", open);
}

function select(id) {
  state.selected = id;
  rows.select(id);
  watchSelected();
  openPanel(id !== null);
  if (id === null) {
    detailView.hidden = true;
    detailEmpty.hidden = false;
    detailEmpty.textContent = "Select a request to see its headers, body and the answer it got.";
    return;
  }
  rows.reveal(id);
  showDetail(id);
}

function idFromHash() {
  const m = /^#(\d+)$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

/** `j`/`k`: the next or previous row from the selected one; focus and view follow. */
function moveSelection(step) {
  const ids = rows.ids();
  if (!ids.length) return;
  const at = ids.indexOf(state.selected);
  const next = at === -1 ? ids[0] : ids[Math.max(0, Math.min(ids.length - 1, at + step))];
  rows.row(next).querySelector("a").focus({ preventScroll: true });
  if (next !== state.selected) location.hash = `#${next}`;
  rows.reveal(next);
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
    return;
  }
  const rowLink = target.closest("#rows a.row-link");
  if (rowLink && Number(rowLink.closest("li").dataset.id) === state.selected) openPanel(true); // same hash: no hashchange
});

filtersForm.addEventListener("submit", (event) => event.preventDefault());
let searchTimer = null;
filtersForm.addEventListener("input", (event) => {
  const name = event.target.name;
  clearTimeout(searchTimer);
  if (name === "q" || name === "status") searchTimer = setTimeout(() => applyFilters(readFilters()), 250);
  else applyFilters(readFilters());
});
filtersForm.elements.q.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  event.preventDefault();
  const row = rows.row(state.selected);
  if (row) row.querySelector("a").focus({ preventScroll: true });
  else event.target.blur();
});
$("reset-filters").addEventListener("click", () => applyFilters(Object.fromEntries(FILTER_KEYS.map((k) => [k, ""]))));
pill.addEventListener("click", jumpToHead);

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

$("skip-detail").addEventListener("click", (event) => {
  event.preventDefault(); // "#detail" is not a request: the hash keeps the selection
  detailPane.focus();
});
$("detail-back").addEventListener("click", () => {
  openPanel(false);
  const row = rows.row(state.selected);
  if (row) row.querySelector("a").focus({ preventScroll: true });
});

window.addEventListener("hashchange", () => {
  if (location.hash === "" || idFromHash() !== null) select(idFromHash());
});
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLElement && event.target.closest("input, textarea, select, dialog")) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "j" || event.key === "ArrowDown") {
    moveSelection(1);
    event.preventDefault();
  } else if (event.key === "k" || event.key === "ArrowUp") {
    moveSelection(-1);
    event.preventDefault();
  } else if (event.key === "/") {
    filtersForm.elements.q.focus();
    event.preventDefault();
  } else if (event.key === "Escape" && document.body.classList.contains("detail-open")) {
    $("detail-back").click();
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
rows.replace(boot.requests);
renderEndpoints();
setWelcomeName(boot.suggestion);
updateChrome();
stream.connect(boot.head);
select(idFromHash());
window.inspector = { state, stream, rows, hold, newCount }; // for the curious (and the browser tests)
