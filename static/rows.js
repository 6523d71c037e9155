// The request list: the one row renderer (rowView + fillRow on clones of _row.html) and the
// <ol> that holds the rows, newest first. Every row, the first page's too, is drawn here, so a
// first-paint row and a live row cannot differ. Captured data only ever reaches the DOM
// through textContent.

import { answerOf, clock, humanSize, signatureOf } from "./util.js";

/** What a row shows for a list item: the one description of a request in the list. */
export function rowView(item) {
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

/** Fill row `li` (a clone of _row.html) for `item`. */
export function fillRow(li, item, selected) {
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
  li.classList.toggle("selected", item.id === selected);
  li.classList.toggle("retry", item.attempt > 1);
}

/**
 * The rows shown, by id, in an <ol> kept newest first. `scroller` is the element that scrolls
 * the list and `head` the sticky bar over it (revealed rows go below it).
 */
export class RowList {
  constructor(ol, template, scroller, head) {
    this.ol = ol;
    this.template = template;
    this.scroller = scroller;
    this.head = head;
    this.items = new Map(); // id -> list item
    this.rows = new Map(); // id -> <li>
    this.selected = null;
  }

  get size() {
    return this.rows.size;
  }

  has(id) {
    return this.rows.has(id);
  }

  item(id) {
    return this.items.get(id);
  }

  row(id) {
    return this.rows.get(id);
  }

  /** Ids in list order (newest first). */
  ids() {
    return [...this.ol.children].map((li) => Number(li.dataset.id));
  }

  newest() {
    const first = this.ol.firstElementChild;
    return first ? Number(first.dataset.id) : null;
  }

  oldest() {
    const last = this.ol.lastElementChild;
    return last ? Number(last.dataset.id) : null;
  }

  make(item, arrived = false) {
    const li = this.template.content.firstElementChild.cloneNode(true);
    fillRow(li, item, this.selected);
    if (arrived) li.classList.add("arrived");
    this.items.set(item.id, item);
    this.rows.set(item.id, li);
    return li;
  }

  /** A list item for `item` that keeps the summary the shown one had (stream items have none). */
  merged(item) {
    const old = this.items.get(item.id);
    return old && item.summary === undefined && old.summary !== undefined ? { ...item, summary: old.summary } : item;
  }

  /** Refresh the row of `item`, or add it in its place. */
  put(item) {
    const existing = this.rows.get(item.id);
    const value = this.merged(item);
    if (existing) {
      this.items.set(item.id, value);
      fillRow(existing, value, this.selected);
      return;
    }
    const li = this.make(value);
    const newest = this.newest();
    const oldest = this.oldest();
    if (newest === null || item.id > newest) this.ol.prepend(li);
    else if (item.id < oldest) this.ol.append(li);
    else {
      let before = this.ol.firstElementChild;
      while (before && Number(before.dataset.id) > item.id) before = before.nextElementSibling;
      this.ol.insertBefore(li, before);
    }
  }

  /** Add items newer than every row, in one DOM insertion; rows they would push past `keep`
   * are not even built. */
  addNewest(items, keep, arrived) {
    const fresh = items.filter((it) => !this.rows.has(it.id)).sort((a, b) => b.id - a.id);
    const fragment = document.createDocumentFragment();
    for (const item of fresh.slice(0, keep)) fragment.append(this.make(item, arrived));
    this.ol.prepend(fragment);
  }

  /** Add items older than every row (a page from the store), at the bottom. */
  addOlder(items) {
    const fragment = document.createDocumentFragment();
    for (const item of [...items].sort((a, b) => b.id - a.id)) {
      if (this.rows.has(item.id)) this.put(item);
      else fragment.append(this.make(item));
    }
    this.ol.append(fragment);
  }

  remove(id) {
    const li = this.rows.get(id);
    if (li) li.remove();
    this.rows.delete(id);
    this.items.delete(id);
  }

  /** Keep the newest `max` rows; returns the oldest id kept (the next page's cursor). */
  trim(max) {
    while (this.rows.size > max) this.remove(this.oldest());
    return this.oldest();
  }

  /** Show exactly `items` (any order). */
  replace(items) {
    this.items.clear();
    this.rows.clear();
    const fragment = document.createDocumentFragment();
    for (const item of [...items].sort((a, b) => b.id - a.id)) fragment.append(this.make(item));
    this.ol.replaceChildren(fragment);
  }

  select(id) {
    const before = this.rows.get(this.selected);
    if (before) before.classList.remove("selected");
    this.selected = id;
    const li = this.rows.get(id);
    if (li) li.classList.add("selected");
  }

  /** Scroll the list just enough that row `id` is fully in view below the sticky bar. */
  reveal(id) {
    const li = this.rows.get(id);
    if (!li) return;
    const row = li.getBoundingClientRect();
    const top = this.head.getBoundingClientRect().bottom;
    const bottom = this.scroller.getBoundingClientRect().bottom;
    if (row.top < top) this.scroller.scrollTop -= top - row.top;
    else if (row.bottom > bottom) this.scroller.scrollTop += Math.min(row.bottom - bottom, row.top - top);
  }
}
