// The deliveries page: the delivery log, live over SSE, and the "Send test" form.
// An ES module on util.js like the request page: values from the server reach the page
// through `el` (textContent and attributes), never as HTML.
//
// A delivery reaches the page three ways — the stream, the list read on (re)connect, and the
// form's own reply — in any order. Each copy carries the store's `version` (it grows with
// every attempt and change of state): the page keeps the highest, so a late reply never puts
// a finished delivery back to "pending".

import { ApiError, api, decodeBase64, el, elapsed } from "./util.js";

const $ = (id) => document.getElementById(id);
const table = $("deliveries");
const tbody = table.querySelector("tbody");
const empty = $("empty");
const live = $("live");
const form = $("send-form");
const status = $("send-status");
const detail = $("detail");
const items = new Map(); // id -> delivery item (the newest version seen)
const rows = new Map(); // id -> <tr>
const sending = new Map(); // id -> number of the attempt in flight
const dirty = new Set(); // ids whose row needs drawing
let selected = null;
let shownDetail = null; // {id, version} of the delivery in the detail pane
let renderTimer = null;

// The table headings say UTC: times are shown as the server wrote them.
const utc = (iso) => (iso ? iso.replace("T", " ").slice(0, 23) : "—");
// What a platform's log shows for a response body: the bytes as UTF-8, bad sequences replaced.
const lenient = new TextDecoder("utf-8");
const bodyText = (b64) => lenient.decode(decodeBase64(b64));

function insecureBadge() {
  return el("span", { class: "state state-failed insecure", title: "The receiver's certificate is not verified", text: "insecure" });
}

function stateBadge(state, label) {
  return el("span", { class: `state state-${state}`, text: label || state });
}

function lastAnswer(item) {
  const last = item.last;
  if (!last) return "—";
  if (last.status === null || last.status === undefined) return last.error || "no answer";
  return `${last.status} in ${elapsed(last.elapsed_ms) || "—"}${last.error ? ` (${last.error})` : ""}`;
}

/** The attempt in flight, if the stream said one started after the shown state. */
function inFlight(item) {
  const number = sending.get(item.id);
  return number === item.attempts + 1 && item.state === "pending" ? number : null;
}

function cells(item) {
  const number = inFlight(item);
  const badge = number ? stateBadge("sending", `sending attempt ${number}…`) : stateBadge(item.state);
  return [
    el("td", { class: "id", text: `#${item.id}` }),
    el("td", { class: "time", text: utc(item.created_at) }),
    el("td", { class: "event", text: item.event }),
    el("td", { class: "url", title: item.url }, item.url, item.insecure ? insecureBadge() : null),
    el("td", { class: "state-cell" }, badge),
    el("td", { class: "attempts", text: `${item.attempts}/${item.max_attempts}` }),
    el("td", { class: item.last ? (item.last.ok ? "ok" : "bad") : null, text: lastAnswer(item) }),
    el("td", { class: "time", text: item.state === "pending" ? utc(item.next_attempt_at) : "—" }),
  ];
}

function attemptRow(a) {
  const response = bodyText(a.response_body_base64) + (a.response_truncated ? "\n… (cut at 64 KiB)" : "");
  return el(
    "tr",
    {},
    el("td", { text: String(a.attempt) }),
    el("td", { class: "time", text: utc(a.sent_at) }),
    el("td", { text: a.event }),
    el("td", { class: "url", title: a.url, text: a.url }),
    el("td", { class: a.ok ? "ok" : "bad", text: a.status === null || a.status === undefined ? "—" : String(a.status) }),
    el("td", { class: "ms", text: elapsed(a.elapsed_ms) || "—" }),
    el("td", { class: a.error ? "bad" : null, text: a.error || "—" }),
    el("td", { class: "response" }, el("pre", { text: response })),
  );
}

/** Keep `item` if it is newer than the copy shown; returns whether it was. */
function apply(item) {
  const shown = items.get(item.id);
  if (shown && item.version <= shown.version) return false;
  items.set(item.id, item);
  if (sending.has(item.id) && item.attempts >= sending.get(item.id)) sending.delete(item.id);
  redraw(item.id);
  return true;
}

function redraw(id) {
  dirty.add(id);
  if (renderTimer === null) renderTimer = setTimeout(render, 16);
}

/** Draw the rows that changed: in place (a row keeps its focus), new ones in id order. */
function render() {
  renderTimer = null;
  for (const id of [...dirty].sort((a, b) => b - a)) {
    const item = items.get(id);
    if (!item) continue;
    let tr = rows.get(id);
    if (!tr) {
      tr = el("tr", { "data-id": id, tabindex: 0 });
      rows.set(id, tr);
      let before = tbody.firstElementChild;
      while (before && Number(before.dataset.id) > id) before = before.nextElementSibling;
      tbody.insertBefore(tr, before);
    }
    tr.replaceChildren(...cells(item));
    tr.classList.toggle("selected", id === selected);
    if (id === selected) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
  }
  dirty.clear();
  table.hidden = items.size === 0;
  empty.hidden = items.size !== 0;
}

async function loadList() {
  let data;
  try {
    data = await api("/api/deliveries?limit=200");
  } catch {
    return; // the next "ready" or "resync" loads it again
  }
  for (const item of data.deliveries) apply(item);
  render();
  if (selected !== null) loadDetail(selected);
}

async function loadDetail(id) {
  let d;
  try {
    d = await api(`/api/deliveries/${id}`);
  } catch {
    return;
  }
  // Another delivery chosen meanwhile, or an answer older than the one shown: keep what is.
  if (selected !== id || (shownDetail && shownDetail.id === id && d.version < shownDetail.version)) return;
  shownDetail = { id, version: d.version };
  apply(d);
  detail.hidden = false;
  $("detail-title").textContent = `Delivery #${d.id}: ${d.event} → ${d.url}`;
  const waits = d.schedule.map((s) => `${+(s * d.time_scale).toPrecision(3)} s`).join(", ");
  $("detail-summary").textContent =
    `${d.state}, ${d.attempts} of ${d.max_attempts} attempts; ${d.scheme} signature; ` +
    `timeout ${d.timeout} s; retries ${waits ? `${waits} after each failed attempt ${d.wait_from === "start" ? "starts" : "ends"}` : "none"}; event key ${d.event_key}` +
    (d.state === "pending" && d.next_attempt_at ? `; next attempt ${utc(d.next_attempt_at)}` : "") +
    (d.insecure ? "; INSECURE: the receiver's certificate is not verified" : d.ca_file ? `; also trusting the CA in ${d.ca_file}` : "");
  $("cancel").hidden = d.state !== "pending";
  $("attempts").replaceChildren(...d.log.map(attemptRow));
  $("detail-body").textContent = bodyText(d.body_base64);
}

function select(id) {
  const before = selected;
  selected = id;
  if (before !== id) shownDetail = null;
  for (const other of [before, id]) if (other !== null && items.has(other)) redraw(other);
  loadDetail(id);
}

tbody.addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  if (tr) select(Number(tr.dataset.id));
});
tbody.addEventListener("keydown", (event) => {
  const tr = event.target.closest("tr");
  if (tr && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    select(Number(tr.dataset.id));
  }
});

$("cancel").addEventListener("click", async () => {
  if (selected === null) return;
  try {
    await api(`/api/deliveries/${selected}/cancel`, { method: "POST", json: {} });
  } catch {
    /* already finished: the stream brings its final state */
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = new FormData(form);
  const payload = {
    event: fields.get("event"),
    url: String(fields.get("url") || "").trim(),
    time_scale: Number(fields.get("time_scale")),
    wait_from: fields.get("wait_from"),
  };
  if (fields.get("insecure")) payload.insecure = true;
  const secret = String(fields.get("secret") || "");
  if (secret || form.dataset.hasDefaultSecret !== "true") payload.secret = secret;
  status.classList.remove("error");
  status.textContent = "Sending…";
  let data;
  try {
    // JSON, not a form post: the inspector refuses form content types on writes (CSRF).
    data = await api("/api/deliveries", { method: "POST", json: payload });
  } catch (error) {
    status.classList.add("error");
    status.textContent = error instanceof ApiError ? error.detail : `Could not reach the inspector: ${error}`;
    return;
  }
  status.textContent = `Delivery #${data.id} created: ${data.event} → ${data.url}.`;
  apply(data); // the stream may already have brought a newer state: then this changes nothing
  select(data.id);
});

const source = new EventSource("/api/deliveries/stream");
// "ready" comes once the server has subscribed us: load the list then, so nothing is missed.
source.addEventListener("ready", () => {
  live.textContent = "live";
  loadList();
});
source.addEventListener("resync", () => loadList());
source.addEventListener("delivery", (event) => {
  const { change, delivery, attempt } = JSON.parse(event.data);
  if (change === "sending") {
    sending.set(delivery.id, attempt ? attempt.attempt : delivery.attempts + 1);
    redraw(delivery.id);
  }
  const newer = apply(delivery);
  if (selected === delivery.id && newer) loadDetail(delivery.id);
});
source.addEventListener("error", () => {
  live.textContent = "reconnecting…";
});
