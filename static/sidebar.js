// The endpoint list on the left: every endpoint with its count, newest activity first, kept
// up to date from the stream (and from /api/endpoints after deletes). Names reach the DOM as
// text and attributes only.

import { api, el } from "./util.js";

export class EndpointList {
  /** `counted`: the counts include every request up to this id. */
  constructor(list, endpoints, counted, onRefresh) {
    this.list = list;
    this.endpoints = new Map(endpoints.map((e) => [e.name, e]));
    this.counted = counted;
    this.onRefresh = onRefresh;
    this.order = null; // the order drawn
    this.links = new Map(); // name -> {link, counter}
    this.timer = null;
  }

  get total() {
    let total = 0;
    for (const e of this.endpoints.values()) total += e.count;
    return total;
  }

  /** One more capture (counted once, by id). */
  count(item) {
    if (item.id <= this.counted) return;
    this.counted = item.id;
    const entry = this.endpoints.get(item.endpoint) || { name: item.endpoint, count: 0 };
    entry.count += 1;
    entry.last_seen = item.received_at;
    entry.last_id = item.id;
    this.endpoints.set(item.endpoint, entry);
  }

  /** Draw the list, `current` marked: rebuilt when the order changes, else only the counts
   * and tooltips change (a busy endpoint is redrawn a few times a second). */
  render(current) {
    const entries = [...this.endpoints.values()].sort((a, b) => (b.last_id || 0) - (a.last_id || 0) || a.name.localeCompare(b.name));
    if (current && !this.endpoints.has(current)) entries.unshift({ name: current, count: 0, last_seen: null });
    const title = (e) => (e.last_seen ? `last request ${e.last_seen}` : "no request yet");
    const order = JSON.stringify([current, ...entries.map((e) => e.name)]);
    if (order === this.order) {
      this.update(this.links.get(""), this.total);
      for (const e of entries) this.update(this.links.get(e.name), e.count, title(e));
      return;
    }
    this.order = order;
    this.links.clear();
    const item = (name, label, count, tip) => {
      const counter = el("span", { class: "count", text: String(count) });
      const href = name ? `/?endpoint=${encodeURIComponent(name)}` : "/";
      const attrs = { class: `ep${name === current ? " current" : ""}`, href, "data-endpoint": name, title: tip, "aria-current": name === current ? "true" : null };
      const link = el("a", attrs, el("span", { class: "ep-name", text: label }), counter);
      this.links.set(name, { link, counter });
      return el("li", {}, link);
    };
    this.list.replaceChildren(item("", "All endpoints", this.total), ...entries.map((e) => item(e.name, e.name, e.count, title(e))));
  }

  update(entry, count, tip) {
    if (!entry) return;
    const text = String(count);
    if (entry.counter.textContent !== text) entry.counter.textContent = text;
    if (tip !== undefined && entry.link.title !== tip) entry.link.title = tip;
  }

  /** Read the counts from the server soon (after deletes, clears, a resync). */
  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      try {
        const data = await api("/api/endpoints");
        this.endpoints = new Map(data.endpoints.map((e) => [e.name, e]));
        this.onRefresh();
      } catch {
        /* the next event retries */
      }
    }, 300);
  }
}
