// The live request page. State comes from the server-rendered data block (#boot), then from
// /api/stream: after any reconnect the stream resumes from the last request id seen
// (Last-Event-ID), so none is missed. Rows are drawn by rows.js (one renderer, the first page
// included); hold.js decides when the list holds still for its reader. Captured data only
// ever reaches the DOM through textContent. order.js applies stream events and store reads
// in order, so what the page shows only moves forward.

import { loadRequest, renderDetail, sameRequest } from "./detail.js";
import { Hold, NewCount } from "./hold.js";
import { EventQueue } from "./order.js";
import { refreshReplays } from "./replay.js";
import { RowList } from "./rows.js";
import { openSettings } from "./settings.js";
import { EndpointList } from "./sidebar.js";
import { CaptureStream } from "./stream.js";
import { ApiError, api, copyText, flash, randomEndpoint } from "./util.js";
import { setUpWelcome } from "./welcome.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const $ = (id) => document.getElementById(id);

// At the live head the list keeps only the rows that fit on screen, and a few: older ones come
// back from the store (rows are at least ~40 px tall).
let liveRows = boot.page_size;
function fitRows() {
  liveRows = Math.max(20, Math.min(boot.page_size, Math.ceil(listPane.clientHeight / 40) + 5));
}
// The server's filter names (views.FILTER_KEYS): the data block echoes each one.
const FILTER_KEYS = Object.freeze(Object.keys(boot.filters));

const state = {
  generation: 0, // bumped for every new list (filters, reload)
  filters: { ...boot.filters },
  nextBefore: boot.next_before, // older matches come back with ?before=
  top: boot.head, // the list shows every match up to this id
  applied: boot.head, // the newest request id the page has applied
  selected: null,
  unseen: 0,
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
const sidebar = new EndpointList($("endpoints"), boot.endpoints, boot.head, () => {
  renderEndpoints();
  updateChrome();
});

function renderEndpoints() {
  sidebar.render(state.filters.endpoint);
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
  await jumpToHead();
}

// -- reading the list from the store ---------------------------------------------------------

/** The newest page from the store: a new list, at the head. */
function reloadList() {
  const generation = ++state.generation;
  state.reloading = true;
  unresolved.clear();
  const params = filterParams();
  params.set("limit", String(boot.page_size));
  return queue.read(`/api/requests?${params}`, (data, error) => {
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
  queue.read(`/api/requests?${params}`, (data, error) => {
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
    if (waiting()) newCount.recount(() => state.applied); // those are counted by the store
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
  setHidden($("welcome"), !(sidebar.total === 0 && !filtered && empty));
  const noMatch = $("no-match");
  setHidden(noMatch, !(empty && (filtered || sidebar.total > 0)));
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

const queue = new EventQueue(applyBatch, () => stream.resync());

/**
 * Apply a batch of events and read answers, in order (see order.js). New matching captures
 * go into the list at once on a quiet page; under a search (which only the server judges) or
 * a busy stream they go in with the next list read, which brings their summaries too: one
 * update per row, not two.
 */
function applyBatch(batch, { quiet, busy }) {
  const search = Boolean(state.filters.q);
  let fresh = [];
  let added = false;
  let recount = false;
  let endpointsChanged = false;
  const addFresh = () => {
    if (!fresh.length) return;
    if (search || busy || waiting()) resolveLater(fresh, true);
    else {
      added = true;
      rows.addNewest(fresh, liveRows, quiet && fresh.length === 1);
      resolveLater(fresh.filter((it) => it.event_type), false);
    }
    fresh = [];
  };
  for (const event of batch) {
    const holding = hold.active;
    if (event.kind === "request") {
      const item = event.item;
      sidebar.count(item);
      endpointsChanged = true;
      if (document.hidden) state.unseen += 1;
      state.applied = Math.max(state.applied, item.id);
      if (item.id <= state.top || rows.has(item.id)) continue; // shown, or not a match
      if (holding) {
        if (search) recount = true; // only the server can tell
        else if (matchesLocal(item)) newCount.seen(item.id);
      } else if (matchesLocal(item)) fresh.push(item);
    } else if (event.kind === "read") {
      addFresh();
      event.apply();
    } else if (event.kind === "update") {
      // An update of a capture in this same batch (the doctor's finding can follow within
      // milliseconds) is newer than the capture: the capture goes in first.
      if (fresh.some((it) => it.id === event.item.id)) addFresh();
      applyUpdate(event.item, holding);
    } else if (event.kind === "deleted") {
      rows.remove(event.data.id);
      if (state.selected === event.data.id) showGone(event.data.id);
      recount = recount || holding;
      sidebar.refreshSoon();
    } else if (event.kind === "cleared") {
      for (const id of rows.ids()) {
        const item = rows.item(id);
        if (!event.data.endpoint || item.endpoint === event.data.endpoint) {
          rows.remove(id);
          if (state.selected === id) showGone(id);
        }
      }
      recount = recount || holding;
      sidebar.refreshSoon();
    }
  }
  addFresh();
  if (!hold.active) {
    if (added && rows.size > liveRows) state.nextBefore = rows.trim(liveRows); // (a read's page stays whole)
    advanceTop();
    watchSelected();
  } else if (recount) newCount.recount(() => state.applied);
  if (endpointsChanged) renderEndpoints();
  showPill();
  updateChrome();
}

/** At the live head the list covers everything applied, but for captures waiting to be
 * added with the next list read. */
function advanceTop() {
  if (hold.active) return;
  let top = state.applied;
  for (const map of [unresolved, resolving]) for (const [id, entry] of map) if (entry.add) top = Math.min(top, id - 1);
  state.top = Math.max(state.top, top);
}

// At most one resolving query in flight, and a few per second: a busy stream must not turn
// into a busy page hammering the server.
const unresolved = new Map(); // id -> {item, add}, waiting for the next query
const resolving = new Map(); // id -> {item, add}, in the query in flight
let resolveTimer = null;

/** Whether captures are waiting to be added: newer ones wait behind them. */
function waiting() {
  for (const map of [unresolved, resolving]) for (const entry of map.values()) if (entry.add) return true;
  return false;
}

/** Read `items` from the store soon: `add`, to add them to the list; else for summaries. */
function resolveLater(items, add) {
  for (const item of items) unresolved.set(item.id, { item, add });
  if (resolveTimer === null && !resolving.size) resolveTimer = setTimeout(runResolve, 50);
}

async function runResolve() {
  resolveTimer = null;
  for (const [id, entry] of unresolved) resolving.set(id, entry);
  unresolved.clear();
  await resolveFromServer([...resolving.values()]);
  resolving.clear();
  advanceTop();
  if (unresolved.size) resolveTimer = setTimeout(runResolve, 250);
}

/**
 * Live items the page cannot finish alone: under a text search (which only the server can
 * run over headers and bodies) and event summaries (read from the stored body). One list
 * query per batch, whatever its size: the newest matching requests up to the batch's last id
 * (no more than the live list keeps, without a search: older ones come back as older pages).
 */
async function resolveFromServer(entries) {
  const search = Boolean(state.filters.q);
  const need = entries.filter(({ item, add }) => add || (rows.has(item.id) && rows.item(item.id).summary === undefined));
  if (!need.length) return;
  const adding = new Set(need.filter((e) => e.add).map((e) => e.item.id));
  const ids = new Set(need.map((e) => e.item.id));
  const params = filterParams();
  params.set("before", String(Math.max(...ids) + 1));
  params.set("limit", String(Math.min(need.length, search ? 1000 : liveRows)));
  const generation = state.generation;
  await queue.read(`/api/requests?${params}`, (data, error) => {
    if (error || generation !== state.generation) return;
    let grew = false;
    for (const item of data.requests) {
      if (!ids.has(item.id)) continue;
      // While the list holds still the new ones are counted by the pill (see holdChanged).
      if (adding.has(item.id) && !hold.active) grew = grew || !rows.has(item.id);
      if (rows.has(item.id) || (adding.has(item.id) && !hold.active)) rows.put(item);
    }
    if (grew && rows.size > liveRows) state.nextBefore = rows.trim(liveRows);
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
    else if (state.filters.q) resolveLater([item], true);
    else rows.put(item);
  }
  if (state.selected === item.id) {
    // A replay, mirror or proxy exchange leaves the request as it was: only its replays are
    // refreshed (a re-render would also cost the reader their scroll and focus).
    if (sameRequest(shownItem, item)) refreshReplays(item.id);
    else showDetail(item.id);
  }
}

const stream = new CaptureStream($("conn"), boot.head, {
  onEvent: (event) => queue.push(event),
  /** Our view is stale: once subscribed anew, read the list from the store again — or, while
   * the list holds still, only count what is new, and reload when the reader comes back. */
  onResync(storeChanged) {
    if (storeChanged) {
      rows.replace([]);
      sidebar.counted = 0;
      state.top = 0;
      state.applied = 0;
    }
    return () => {
      // Everything up to the new head is read from the store, not from the stream.
      sidebar.counted = Math.max(sidebar.counted, stream.cursor);
      state.applied = Math.max(state.applied, stream.cursor);
      if (hold.active && !storeChanged) {
        state.stale = true;
        newCount.recount(() => state.applied);
      } else {
        reloadList();
      }
      sidebar.refreshSoon();
      if (state.selected !== null) showDetail(state.selected);
    };
  },
});

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
  const scroll = detailPane.scrollTop;
  renderDetail(detailView, item, rows.item(id), {
    deleted(gone) {
      rows.remove(gone);
      showGone(gone);
      sidebar.refreshSoon();
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

$("skip-detail").addEventListener("click", (event) => {
  event.preventDefault(); // "#detail" is not a request: the hash keeps the selection
  detailPane.focus();
});
$("detail-back").addEventListener("click", () => {
  openPanel(false);
  const row = rows.row(state.selected);
  if (row) row.querySelector("a").focus({ preventScroll: true });
});

window.addEventListener("resize", fitRows);
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
fitRows();
renderEndpoints();
setUpWelcome(boot.capture_base, boot.https_base, boot.suggestion);
updateChrome();
stream.connect(boot.head);
select(idFromHash());
window.inspector = { state, stream, rows, hold, newCount }; // for the curious (and the browser tests)
