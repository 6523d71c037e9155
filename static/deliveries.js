// The deliveries page: the delivery log, live over SSE, and the "Send test" form.
// Every value from the server is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const table = $("#deliveries");
  const tbody = table.querySelector("tbody");
  const empty = $("#empty");
  const live = $("#live");
  const form = $("#send-form");
  const status = $("#send-status");
  const detail = $("#detail");
  const items = new Map(); // id -> delivery item
  const sending = new Map(); // id -> attempt number in flight
  let selected = null;

  const time = (iso) => (iso ? iso.replace("T", " ").slice(0, 23) : "—");
  const ms = (value) => (value == null ? "—" : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);

  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function stateBadge(td, state, label) {
    td.textContent = "";
    const span = document.createElement("span");
    span.className = `state state-${state}`;
    span.textContent = label || state;
    td.appendChild(span);
  }

  function lastAnswer(item) {
    const last = item.last;
    if (!last) return "—";
    if (last.status == null) return last.error || "no answer";
    return `${last.status} in ${ms(last.elapsed_ms)}${last.error ? ` (${last.error})` : ""}`;
  }

  function row(item) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(item.id);
    tr.tabIndex = 0;
    if (item.id === selected) tr.classList.add("selected");
    cell(tr, `#${item.id}`, "id");
    cell(tr, time(item.created_at), "time");
    cell(tr, item.event, "event");
    cell(tr, item.url, "url").title = item.url;
    const inFlight = sending.get(item.id);
    if (inFlight && item.state === "pending") {
      stateBadge(cell(tr, "", "state-cell"), "sending", `sending attempt ${inFlight}…`);
    } else {
      stateBadge(cell(tr, "", "state-cell"), item.state);
    }
    cell(tr, `${item.attempts}/${item.max_attempts}`, "attempts");
    cell(tr, lastAnswer(item), item.last && item.last.ok ? "ok" : item.last ? "bad" : "");
    cell(tr, item.state === "pending" ? time(item.next_attempt_at) : "—", "time");
    return tr;
  }

  function render() {
    const sorted = [...items.values()].sort((a, b) => b.id - a.id);
    tbody.replaceChildren(...sorted.map(row));
    table.hidden = sorted.length === 0;
    empty.hidden = sorted.length !== 0;
  }

  async function loadList() {
    const response = await fetch("/api/deliveries?limit=200");
    if (!response.ok) return;
    const data = await response.json();
    items.clear();
    for (const item of data.deliveries) items.set(item.id, item);
    render();
    if (selected !== null) loadDetail(selected);
  }

  function decode(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  }

  async function loadDetail(id) {
    const response = await fetch(`/api/deliveries/${id}`);
    if (!response.ok) return;
    const d = await response.json();
    if (selected !== id) return;
    detail.hidden = false;
    $("#detail-title").textContent = `Delivery #${d.id}: ${d.event} → ${d.url}`;
    const waits = d.schedule.map((s) => `${+(s * d.time_scale).toPrecision(3)} s`).join(", ");
    $("#detail-summary").textContent =
      `${d.state}, ${d.attempts} of ${d.max_attempts} attempts; ${d.scheme} signature; ` +
      `timeout ${d.timeout} s; retries after ${waits || "none"}; event key ${d.event_key}` +
      (d.state === "pending" && d.next_attempt_at ? `; next attempt ${time(d.next_attempt_at)}` : "");
    $("#cancel").hidden = d.state !== "pending";
    const rows = d.log.map((a) => {
      const tr = document.createElement("tr");
      cell(tr, String(a.attempt));
      cell(tr, time(a.sent_at), "time");
      cell(tr, a.event);
      cell(tr, a.url, "url").title = a.url;
      cell(tr, a.status == null ? "—" : String(a.status), a.ok ? "ok" : "bad");
      cell(tr, ms(a.elapsed_ms), "ms");
      cell(tr, a.error || "—", a.error ? "bad" : "");
      const td = cell(tr, "", "response");
      const pre = document.createElement("pre");
      pre.textContent = decode(a.response_body_base64) + (a.response_truncated ? "\n… (cut at 64 KiB)" : "");
      td.appendChild(pre);
      return tr;
    });
    $("#attempts").replaceChildren(...rows);
    $("#detail-body").textContent = decode(d.body_base64);
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

  $("#cancel").addEventListener("click", async () => {
    if (selected === null) return;
    await fetch(`/api/deliveries/${selected}/cancel`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const payload = {
      event: fields.get("event"),
      url: String(fields.get("url") || "").trim(),
      time_scale: Number(fields.get("time_scale")),
    };
    const secret = String(fields.get("secret") || "");
    if (secret || form.dataset.hasDefaultSecret !== "true") payload.secret = secret;
    status.classList.remove("error");
    status.textContent = "Sending…";
    try {
      // JSON, not a form post: the inspector refuses form content types on writes (CSRF).
      const response = await fetch("/api/deliveries", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      const data = await response.json();
      if (!response.ok) {
        status.classList.add("error");
        status.textContent = data.detail || `Refused (${response.status}).`;
        return;
      }
      status.textContent = `Delivery #${data.id} created: ${data.event} → ${data.url}.`;
      items.set(data.id, data);
      render();
      select(data.id);
    } catch (error) {
      status.classList.add("error");
      status.textContent = `Could not reach the inspector: ${error}`;
    }
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
})();
