// The capture stream, /api/stream: one EventSource that resumes from the last request id seen
// (Last-Event-ID), so no capture is missed across reconnects and server restarts, and the
// connection indicator at the top right. What the events mean for the page is app.js's.

export class CaptureStream {
  /**
   * `onEvent({kind, item|data})` gets every request/update/deleted/cleared event in order;
   * `onResync(storeChanged)` is told the page's view is stale (it fell behind, or the server
   * has another store) and returns what to do once the new stream is ready.
   */
  constructor(indicator, cursor, { onEvent, onResync }) {
    this.indicator = indicator;
    this.cursor = cursor; // the stream resumes after this request id
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.source = null;
    this.retryTimer = null;
    this.backoff = 1000;
    this.onReady = null;
  }

  show(status, text) {
    this.indicator.dataset.state = status;
    this.indicator.textContent = text;
  }

  connect(after) {
    this.close();
    const url = after === null || after === undefined ? "/api/stream" : `/api/stream?after=${after}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("ready", (e) => {
      if (e.lastEventId) this.cursor = Number(e.lastEventId);
      this.backoff = 1000;
      this.show("live", "live");
      const ready = this.onReady;
      this.onReady = null;
      if (ready) ready();
    });
    source.addEventListener("request", (e) => {
      this.cursor = Number(e.lastEventId);
      this.onEvent({ kind: "request", item: JSON.parse(e.data) });
    });
    source.addEventListener("update", (e) => this.onEvent({ kind: "update", item: JSON.parse(e.data) }));
    source.addEventListener("deleted", (e) => this.onEvent({ kind: "deleted", data: JSON.parse(e.data) }));
    source.addEventListener("cleared", (e) => this.onEvent({ kind: "cleared", data: JSON.parse(e.data) }));
    source.addEventListener("resync", (e) => this.resync(JSON.parse(e.data).reason === "unknown_id"));
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an error status while the server restarted): retry
        // ourselves, from the last request seen.
        this.show("offline", "offline — retrying");
        this.retryTimer = setTimeout(() => this.connect(this.cursor), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      } else {
        this.show("reconnecting", "reconnecting…");
      }
    });
  }

  /** Subscribe anew (live from the head); the page reads what it missed from the store. */
  resync(storeChanged = false) {
    this.show("reconnecting", "catching up…");
    this.onReady = this.onResync(storeChanged);
    this.connect(null);
  }

  close() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
