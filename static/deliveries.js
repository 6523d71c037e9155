// The deliveries page: the delivery log, live over SSE, and the "Send test" form.
// An ES module on util.js like the request page: values from the server reach the page
// through `el` (textContent and attributes), never as HTML.

import { ApiError, api, decodeBase64, el, elapsed } from "./util.js";

const $ = (id) => document.getElementById(id);
const table = $("deliveries");
const tbody = table.querySelector("tbody");
const empty = $("empty");
const live = $("live");
const form = $("send-form");
const status = $("send-status");
const detail = $("detail");
const items = new Map(); // id -> delivery item
const sending = new Map(); // id -> attempt number in flight
let selected = null;

// The table headings say UTC: times are shown as the server wrote them.
const utc = (iso) => (iso ? iso.replace("T", " ").slice(0, 23) : "—");
// What a platform's log shows for a response body: the bytes as UTF-8, bad sequences replaced.
const lenient = new TextDecoder("utf-8");
const bodyText = (b64) => lenient.decode(decodeBase64(b64));

function stateBadge(state, label) {
  return el("span", { class: `state state-${state}`, text: label || state });
}

function lastAnswer(item) {
  const last = item.last;
  if (!last) return "—";
  if (last.status === null || last.status === undefined) return last.error || "no answer";
  return `${last.status} in ${elapsed(last.elapsed_ms) || "—"}${last.error ? ` (${last.error})` : ""}`;
}

function insecureBadge() {
  return el("span", { class: "state state-failed insecure", title: "The receiver's certificate is not verified", text: "insecure" });
}

function row(item) {
  const inFlight = sending.get(item.id);
  const badge = inFlight && item.state === "pending" ? stateBadge("sending", `sending attempt ${inFlight}…`) : stateBadge(item.state);
  return el(
    "tr",
    { "data-id": item.id, tabindex: 0, class: item.id === selected ? "selected" : null },
    el("td", { class: "id", text: `#${item.id}` }),
    el("td", { class: "time", text: utc(item.created_at) }),
    el("td", { class: "event", text: item.event }),
    el("td", { class: "url", title: item.url }, item.url, item.insecure ? insecureBadge() : null),
    el("td", { class: "state-cell" }, badge),
    el("td", { class: "attempts", text: `${item.attempts}/${item.max_attempts}` }),
    el("td", { class: item.last ? (item.last.ok ? "ok" : "bad") : null, text: lastAnswer(item) }),
    el("td", { class: "time", text: item.state === "pending" ? utc(item.next_attempt_at) : "—" }),
  );
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

function render() {
  const sorted = [...items.values()].sort((a, b) => b.id - a.id);
  tbody.replaceChildren(...sorted.map(row));
  table.hidden = sorted.length === 0;
  empty.hidden = sorted.length !== 0;
}

async function loadList() {
  let data;
  try {
    data = await api("/api/deliveries?limit=200");
  } catch {
    return; // the next "ready" or "resync" loads it again
  }
  items.clear();
  for (const item of data.deliveries) items.set(item.id, item);
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
  if (selected !== id) return;
  detail.hidden = false;
  $("detail-title").textContent = `Delivery #${d.id}: ${d.event} → ${d.url}`;
  const waits = d.schedule.map((s) => `${+(s * d.time_scale).toPrecision(3)} s`).join(", ");
  $("detail-summary").textContent =
    `${d.state}, ${d.attempts} of ${d.max_attempts} attempts; ${d.scheme} signature; ` +
    `timeout ${d.timeout} s; retries after ${waits || "none"}; event key ${d.event_key}` +
    (d.state === "pending" && d.next_attempt_at ? `; next attempt ${utc(d.next_attempt_at)}` : "") +
    (d.insecure ? "; INSECURE: the receiver's certificate is not verified" : d.ca_file ? `; also trusting the CA in ${d.ca_file}` : "");
  $("cancel").hidden = d.state !== "pending";
  $("attempts").replaceChildren(...d.log.map(attemptRow));
  $("detail-body").textContent = bodyText(d.body_base64);
}

function select(id) {
  selected = id;
  for (const tr of tbody.children) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
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
  items.set(data.id, data);
  render();
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
  } else {
    sending.delete(delivery.id);
  }
  items.set(delivery.id, delivery);
  render();
  if (selected === delivery.id && change !== "sending") loadDetail(delivery.id);
});
source.addEventListener("error", () => {
  live.textContent = "reconnecting…";
});
