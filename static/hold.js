// Reading mode: when the list holds still for the person reading it, and how many new
// captures are waiting meanwhile (the "▲ N new" pill).
//
// The list holds while it is scrolled away from the top, the pointer is over the rows or
// presses them, focus is in them, or the selected row is in view. Then new captures move
// nothing on screen: they are counted, exactly, and the list reloads from the store when the
// reader comes back to the head (the pill, or the top with nothing holding it).

const TOP = 2; // px: scrolled less than this is "at the top"

export class Hold {
  /** `onChange(active)` is called whenever the list starts or stops holding. */
  constructor(scroller, list, onChange) {
    this.scroller = scroller;
    this.onChange = onChange;
    this.active = false;
    this.pointer = false;
    this.pressing = false;
    this.focused = false;
    this.watched = null; // the selected row, when it is in the list
    this.inView = false;
    // Read on scroll events only: reading scrollTop at other times could force a layout.
    this.scrolled = scroller.scrollTop > TOP;
    const update = () => this.update();
    list.addEventListener("pointerenter", () => {
      this.pointer = true;
      update();
    });
    list.addEventListener("pointerleave", () => {
      this.pointer = false;
      update();
    });
    list.addEventListener("pointerdown", () => {
      this.pressing = true;
      update();
    });
    // Released anywhere: the press ends, whatever it ended on (the click is dispatched with
    // the release, in the same task, so nothing moves between the two).
    for (const type of ["pointerup", "pointercancel"]) {
      window.addEventListener(type, () => {
        if (!this.pressing) return;
        this.pressing = false;
        update();
      });
    }
    list.addEventListener("focusin", () => {
      this.focused = true;
      update();
    });
    list.addEventListener("focusout", (event) => {
      this.focused = list.contains(event.relatedTarget);
      update();
    });
    scroller.addEventListener(
      "scroll",
      () => {
        this.scrolled = scroller.scrollTop > TOP;
        update();
      },
      { passive: true },
    );
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) if (entry.target === this.watched) this.inView = entry.isIntersecting;
        update();
      },
      { root: scroller },
    );
  }

  /** Follow the selected row (`null` when it is not in the list). */
  watch(li) {
    if ((li || null) === this.watched) return;
    if (this.watched) this.observer.unobserve(this.watched);
    this.watched = li || null;
    this.inView = false;
    if (this.watched) this.observer.observe(this.watched);
    this.update();
  }

  /** Why the list holds still now, or null when it is live. */
  reason() {
    if (this.pressing) return "press";
    if (this.scrolled) return "scrolled";
    if (this.pointer) return "pointer";
    if (this.focused) return "focus";
    if (this.watched && this.watched.isConnected && this.inView) return "selection";
    return null;
  }

  update() {
    const active = this.reason() !== null;
    if (active === this.active) return;
    this.active = active;
    this.onChange(active);
  }
}

/**
 * The exact number of matching requests newer than the list's top, while it holds.
 *
 * `base` is what the store counted in (top, through]; the stream's matching captures after
 * `through` are added one by one (`seen`). Where the page cannot judge a capture itself (a
 * text search, which only the server runs) or something may have gone (a delete, a clear, a
 * resync), it asks the store again: `count(after, before)` resolves to the number of matches
 * with after < id < before. Captures seen while that query runs are kept apart by id, so none
 * is counted twice or missed, whatever order the answers come in.
 */
export class NewCount {
  constructor(count, onChange) {
    this.count = count;
    this.onChange = onChange;
    this.generation = 0;
    this.timer = null;
    this.reset(0);
  }

  get value() {
    return this.base + this.low + this.high;
  }

  /** The list shows every match up to `top`: nothing is new. */
  reset(top) {
    this.generation += 1;
    this.top = top;
    this.through = top; // `base` covers (top, through]
    this.base = 0;
    this.querying = null; // the `through` of the query in flight
    this.low = 0; // seen, with ids up to `querying`: the query's answer includes them
    this.high = 0; // seen, with ids above `querying` (or `through`)
    this.dirty = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** A matching capture from the stream. */
  seen(id) {
    if (id <= this.through) return;
    if (this.querying !== null && id <= this.querying) this.low += 1;
    else this.high += 1;
  }

  /** Whether the count may be behind the store (a recount is due or running). */
  get unsure() {
    return this.dirty || this.querying !== null;
  }

  /** Count again from the store, up to the last request id the page has applied (`upto()`):
   * soon, at most one query at a time and a few a second. */
  recount(upto) {
    this.dirty = true;
    this.upto = upto;
    if (this.querying === null && this.timer === null) this.timer = setTimeout(() => this.run(), 200);
  }

  async run() {
    this.timer = null;
    if (!this.dirty) return;
    this.dirty = false;
    const generation = this.generation;
    const through = Math.max(this.upto(), this.through);
    this.querying = through;
    this.low += this.high; // everything seen so far has an id <= through
    this.high = 0;
    let base = null;
    try {
      base = await this.count(this.top, through + 1);
    } catch {
      base = null;
    }
    if (generation !== this.generation) return;
    this.querying = null;
    if (base === null) {
      this.high += this.low;
      this.dirty = true;
    } else {
      this.base = base;
      this.through = through;
    }
    this.low = 0;
    this.onChange();
    if (this.dirty) this.timer = setTimeout(() => this.run(), 500);
  }
}
