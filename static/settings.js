// The endpoint settings dialog: GET /api/endpoints/{name}, edit, PUT (which merges keys).
// Errors from the server (400 with a detail naming the bad key) are shown as they come.

import { api } from "./util.js";

const dialog = document.getElementById("settings");
const form = document.getElementById("settings-form");
const errorBox = document.getElementById("settings-error");
const statusBox = document.getElementById("settings-status");
let current = null;

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

export async function openSettings(name) {
  current = name;
  document.getElementById("settings-name").textContent = name;
  showError("");
  statusBox.textContent = "";
  form.reset();
  try {
    const { settings } = await api(`/api/endpoints/${encodeURIComponent(name)}`);
    form.elements.secret.value = (settings.secret || []).join("\n");
    form.elements.scheme.value = settings.scheme;
    form.elements.tolerance.value = settings.tolerance;
    form.elements.enforce.checked = Boolean(settings.enforce);
    const rules = settings.response || {};
    form.elements.response.value = Object.keys(rules).length ? JSON.stringify(rules, null, 2) : "";
  } catch (error) {
    showError(error.detail || String(error));
  }
  if (!dialog.open) dialog.showModal();
}

function payload() {
  const secrets = form.elements.secret.value.split("\n").map((s) => s.trim()).filter(Boolean);
  const rulesText = form.elements.response.value.trim();
  let response = null;
  if (rulesText) {
    try {
      response = JSON.parse(rulesText);
    } catch (error) {
      throw new Error(`Response rules are not valid JSON: ${error.message}`);
    }
  }
  const tolerance = form.elements.tolerance.value.trim();
  return {
    secret: secrets.length ? secrets : null,
    scheme: form.elements.scheme.value,
    tolerance: tolerance === "" ? null : Number(tolerance),
    enforce: form.elements.enforce.checked,
    response,
  };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  let body;
  try {
    body = payload();
  } catch (error) {
    showError(error.message);
    return;
  }
  statusBox.textContent = "Saving…";
  try {
    await api(`/api/endpoints/${encodeURIComponent(current)}`, { method: "PUT", json: body });
    statusBox.textContent = "Saved.";
    setTimeout(() => dialog.open && dialog.close(), 500);
  } catch (error) {
    statusBox.textContent = "";
    showError(error.detail || String(error));
  }
});

document.getElementById("settings-cancel").addEventListener("click", () => dialog.close());
