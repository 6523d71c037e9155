// The detail pane: one request in full — URL, badges, signature verdict, what it differs from
// (diff.js), headers, query, body views, the answer it got, its replays (replay.js) — and its
// actions (copy as curl, replay, download, delete).

import { HEX_LIMIT, VIEW_LIMIT, bodyViews, hexView, textView, viewSwitcher } from "./body.js";
import { compareSection } from "./diff.js";
import { openReplayForm, replaySection } from "./replay.js";
import { answerOf, api, apiBytes, append, asText, clear, clock, copyText, decodeBase64, doctorSays, el, flash, humanSize, kvTable, pairsTable, parseTime, seconds, signatureOf } from "./util.js";

function badge([text, cls, title]) {
  return el("span", { class: `badge ${cls}`, title }, text);
}

function section(title, ...content) {
  return el("section", { class: "d-section" }, el("h3", {}, title), ...content);
}

function preferredView(contentType, views) {
  const keys = views.map((v) => v.key);
  for (const key of ["json", "form", "multipart", "text"]) if (keys.includes(key)) return key;
  return "hex";
}

/**
 * Request `id` as the detail pane shows it: its fields without the body (`?body_limit=0`) and,
 * side by side, the first VIEW_LIMIT bytes of the body as raw bytes (`item.body`). Neither
 * side base64-encodes or parses megabytes of JSON, whatever the body's size.
 */
export async function loadRequest(id) {
  const [item, body] = await Promise.all([api(`/api/requests/${id}?body_limit=0`), apiBytes(`/api/requests/${id}/body`, VIEW_LIMIT)]);
  item.body = body;
  return item;
}

function bodySection(item) {
  const size = item.size;
  // A body is kept whole as received, or not at all: when kept, it is `size` bytes, of which
  // the page fetched the first VIEW_LIMIT (`loadRequest`).
  const stored = size;
  const heading = [`Body · ${humanSize(size)}`, item.content_type ? ` · ${item.content_type}` : ""];
  const download = el("a", { class: "button small", href: `/api/requests/${item.id}/body`, download: `request-${item.id}.bin` }, "Download");
  const head = el("h3", {}, ...heading, " ", download);
  const out = el("section", { class: "d-section body-section" }, head);
  if (item.truncated) out.append(el("p", { class: "note warn" }, `Not the whole body: ${item.note || "it was cut short"}`));
  const bytes = item.body;
  if (!bytes.length) {
    out.append(el("p", { class: "muted", text: size ? "No body bytes were kept." : "No body." }));
    return out;
  }
  // Every view renders a screenful at first, so the whole body (up to VIEW_LIMIT) can be used.
  let whole = null; // the whole body, read once if a view needs it (the tree of a big JSON)
  const readWhole = () => (whole = whole || apiBytes(`/api/requests/${item.id}/body`, stored));
  const views = bodyViews(bytes, stored, item.content_type, item.truncated ? null : readWhole);
  if (bytes.length < stored) {
    out.append(
      el("p", { class: "note" }, `Showing the first ${humanSize(bytes.length)} of ${humanSize(stored)}. `, el("a", { href: `/api/requests/${item.id}/body`, download: `request-${item.id}.bin` }, "Download the exact bytes"), "."),
    );
  }
  out.append(viewSwitcher(views, preferredView(item.content_type, views)));
  return out;
}

function responseSection(item) {
  const r = item.response;
  const rows = [
    ["Status", answerOf(r)[0]],
    r.ms !== null && r.ms !== undefined ? ["Took", `${r.ms.toFixed(1)} ms`] : null,
    r.delay_ms ? ["Stalled", `${seconds(r.delay_ms)} (delay)`] : null,
    r.client_gave_up_after_ms !== null && r.client_gave_up_after_ms !== undefined ? ["Sender", `gave up after ${seconds(r.client_gave_up_after_ms)}`] : null,
  ];
  const out = section("Answer", kvTable(rows));
  if (r.headers && r.headers.length) out.append(pairsTable(r.headers, ""));
  if (r.body_base64) {
    const bytes = decodeBase64(r.body_base64, HEX_LIMIT);
    const text = asText(bytes, true);
    out.append(text !== null ? textView(text) : hexView(bytes));
  }
  return out;
}

function signatureBox(sig) {
  const [, cls] = signatureOf(sig);
  return el(
    "div",
    { class: `sig-box ${cls}` },
    el("strong", {}, `Signature ${sig.status}`),
    sig.scheme ? ` (${sig.scheme})` : "",
    sig.reason ? el("p", { text: sig.reason }) : null,
    doctorSays(sig) ? el("p", { class: "diagnosis" }, el("strong", {}, "Doctor: "), doctorSays(sig)) : null,
  );
}

function fullUrl(item) {
  // A capture that came over TLS was sent to the HTTPS listener, not to this page's origin.
  const host = item.headers.find(([name]) => name === "host");
  const origin = item.scheme === "https" && location.protocol !== "https:" && host ? `https://${host[1]}` : location.origin;
  return `${origin}${item.path}${item.query ? `?${item.query}` : ""}`;
}

function connectionOf(item) {
  if (!item.tls) return "HTTP";
  const name = item.tls.server_name ? `SNI ${item.tls.server_name}` : "no SNI";
  return `HTTPS · ${item.tls.version} · ${name}`;
}

/**
 * Whether the rendered request `shown` (the detail API shape) still is what list item `item`
 * (a stream "update") says: a replay, mirror or proxy exchange leaves the request unchanged.
 */
export function sameRequest(shown, item) {
  if (!shown || shown.id !== item.id) return false;
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  for (const [key, value] of Object.entries(item)) {
    if (key === "summary") continue;
    if (key === "response") {
      if (!Object.entries(value).every(([k, v]) => same(shown.response[k], v))) return false;
    } else if (!same(shown[key], value)) return false;
  }
  return true;
}

/** Render request `item` (the detail API shape) into `view`; `listItem` adds the summary. */
export function renderDetail(view, item, listItem, actions) {
  clear(view);
  const badges = el("div", { class: "d-badges" }, badge(answerOf(item.response)));
  const sig = signatureOf(item.signature);
  if (sig) badges.append(badge(sig));
  if (item.attempt > 1) badges.append(badge([`attempt ${item.attempt}`, "warn", `Delivery ${item.attempt} of event ${item.event_key}: the sender retried or sent it again`]));
  if (item.event_type) badges.append(badge([item.event_type, "info", "Event type"]));
  if (item.tls) badges.append(badge(["HTTPS", "info", `Came over ${connectionOf(item)}`]));
  const summary = listItem && listItem.summary;

  const curlButton = el("button", { type: "button", class: "small", disabled: true, title: "Preparing…" }, "Copy as curl");
  const urlButton = el("button", { type: "button", class: "small", onclick: async () => flash(urlButton, (await copyText(fullUrl(item))) ? "Copied" : "Copy failed") }, "Copy URL");
  const deleteButton = el("button", { type: "button", class: "small danger" }, "Delete");
  deleteButton.addEventListener("click", async () => {
    deleteButton.disabled = true;
    try {
      await api(`/api/requests/${item.id}`, { method: "DELETE" });
      actions.deleted(item.id);
    } catch (error) {
      deleteButton.disabled = false;
      flash(deleteButton, error.status === 404 ? "Already gone" : "Failed");
    }
  });
  const curlBlock = el("details", { class: "curl-block" }, el("summary", {}, "curl command"));
  const received = parseTime(item.received_at);

  append(view, [
    el(
      "header",
      { class: "d-head" },
      el("div", { class: "d-title" }, el("span", { class: "method", text: item.method }), el("span", { class: "url", text: fullUrl(item) })),
      badges,
      summary ? el("p", { class: "d-summary", text: `${item.event_type} — ${summary}` }) : null,
      el("div", { class: "d-actions" }, curlButton, urlButton, el("button", { type: "button", class: "small", onclick: openReplayForm, title: "Send it to your app again, as is or edited" }, "Replay…"), el("a", { class: "button small", href: `/api/requests/${item.id}/body`, download: `request-${item.id}.bin` }, "Download body"), deleteButton),
    ),
    item.signature ? signatureBox(item.signature) : null,
    item.note ? el("p", { class: "note", text: item.note }) : null,
    item.attempt > 1
      ? el("p", { class: "note" }, `Attempt ${item.attempt} of event `, el("code", { text: item.event_key }), ": the first delivery is ", el("a", { href: `#${item.first_attempt_id}`, text: `#${item.first_attempt_id}` }), ". Retries are normal; receivers must be idempotent.")
      : null,
    compareSection(item),
    bodySection(item),
    item.query ? section("Query", pairsTable([...new URLSearchParams(item.query)], ""), el("p", { class: "raw muted" }, "raw: ", el("code", { class: "wrap", text: item.query }))) : null,
    section(`Headers (${item.headers.length})`, pairsTable(item.headers, "No headers.")),
    section(
      "Request",
      kvTable([
        ["Id", `#${item.id}`],
        ["Endpoint", item.endpoint],
        ["Received", `${received.toLocaleDateString()} ${clock(item.received_at)} (${item.received_at})`],
        ["From", item.client || "—"],
        ["Connection", connectionOf(item)],
        ["Size", `${humanSize(item.size)} (${item.size} bytes)${item.truncated ? ", truncated" : ""}`],
        ["Content-Type", item.content_type || "—"],
        item.event_key ? ["Event key", el("code", { text: item.event_key })] : null,
      ]),
    ),
    responseSection(item),
    replaySection(item),
    curlBlock,
  ]);

  fetch(`/api/requests/${item.id}/curl`)
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
    .then((text) => {
      curlButton.disabled = false;
      curlButton.title = "Copy a curl command that sends this request again, byte for byte";
      curlButton.addEventListener("click", async () => flash(curlButton, (await copyText(text)) ? "Copied" : "Copy failed"));
      curlBlock.append(el("pre", { class: "curl", text }));
    })
    .catch(() => {
      curlButton.title = "The curl command is not available";
    });
}
