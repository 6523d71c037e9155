// The order in which the request page applies what it learns, from the stream and from the
// store, and how often.
//
// A read from the store may answer after events newer than what it read. So a read's answer
// takes its place in the queue where the read began, and the events behind it wait for it: an
// event is sent only after its commit, so a read begun after an event arrived already holds
// that event's state, and events that arrive later are applied after it. What the page shows
// only moves forward.
//
// Events are applied in batches: at once on a quiet page (a capture shows within a frame), a
// little later under a stream (nobody reads 300 rows a second, and every update costs a
// layout), so a busy stream becomes a few list updates a second.

import { api } from "./util.js";

const GAP = 100; // ms between two batches
const BUSY_GAP = 250; // ms after a batch of BUSY_BATCH events or more
const BUSY_BATCH = 10;
const CALM = 1000; // ms without arrivals: the page is quiet again
const MAX_PENDING = 5000; // events waiting; more and the page resyncs from the store instead

export class EventQueue {
  /**
   * `apply(batch, {quiet, busy})` applies events in order (`quiet`: the page was quiet before
   * them; `busy`: a stream is flowing);
   * `overflow()` is called when the page fell too far behind (stream events were dropped).
   */
  constructor(apply, overflow) {
    this.apply = apply;
    this.overflow = overflow;
    this.pending = [];
    this.reads = 0; // reads in flight: the events wait for them
    this.timer = null;
    this.last = -Infinity; // when the last batch was applied
    this.arrival = -Infinity; // when the last event came
    this.quiet = true; // whether the events waiting came after a quiet spell
    this.gap = GAP;
  }

  /** An event from the stream. */
  push(event) {
    const now = performance.now();
    if (!this.pending.length) this.quiet = now - this.arrival > CALM && now - this.last > CALM;
    this.pending.push(event);
    this.arrival = now;
    if (this.pending.length > MAX_PENDING) {
      // The store has what is dropped; the reads' answers stay.
      const reads = this.pending.filter((e) => e.kind === "read");
      this.pending.length = 0;
      this.pending.push(...reads);
      this.overflow();
      return;
    }
    this.schedule();
  }

  /** GET `path`; `then(data, error)` runs in order, where the read began. Resolves once it
   * has run. */
  async read(path, then) {
    const at = this.pending.length;
    this.reads += 1;
    let data = null;
    let error = null;
    try {
      data = await api(path);
    } catch (failure) {
      error = failure;
    }
    this.reads -= 1;
    return new Promise((done) => {
      const entry = {
        kind: "read",
        apply() {
          try {
            then(data, error);
          } finally {
            done();
          }
        },
      };
      this.pending.splice(Math.min(at, this.pending.length), 0, entry);
      this.schedule();
    });
  }

  schedule() {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => this.run(), Math.max(0, this.last + this.gap - performance.now()));
  }

  run() {
    this.timer = null;
    if (this.reads || !this.pending.length) return; // rescheduled when the read lands
    this.last = performance.now();
    const batch = this.pending.splice(0);
    const busy = batch.length >= BUSY_BATCH;
    this.gap = busy ? BUSY_GAP : GAP;
    this.apply(batch, { quiet: this.quiet, busy });
  }
}
