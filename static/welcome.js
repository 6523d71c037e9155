// The empty page: a capture URL with a fresh name, the curl command that sends the platform's
// sample event to it, and a button that sends it from here.

import { flash, randomEndpoint } from "./util.js";

const $ = (id) => document.getElementById(id);

function sampleEvent() {
  return {
    event: "message.received",
    timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    data: { channelId: "C1234567890", messageId: `msg_${Date.now()}`, sender: { userId: "U1234567890", displayName: "王小明" }, type: "text", content: "大家早安!" },
  };
}

/** Show the welcome for endpoint `name`, capture URLs starting with `base` (and `httpsBase`,
 * under serve --https). */
export function setUpWelcome(base, httpsBase, name) {
  const show = (endpoint) => {
    const url = `${base}${endpoint}`;
    $("welcome-url").textContent = url;
    if (httpsBase) $("welcome-url-https").textContent = `${httpsBase}${endpoint}`;
    $("welcome-curl").textContent = `curl -X POST '${url}' -H 'Content-Type: application/json' -d '${JSON.stringify(sampleEvent())}'`;
  };
  show(name);
  $("welcome-new").addEventListener("click", () => show(randomEndpoint()));
  $("welcome-send").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    try {
      const response = await fetch($("welcome-url").textContent, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(sampleEvent()) });
      flash(button, response.ok ? "Sent" : `Answered ${response.status}`);
    } catch {
      flash(button, "Failed");
    }
  });
}
