// sealroom ui: the only script. No framework, no CDN; the page works without it (read-only).
"use strict";

const TOKEN_KEY = "sealroom-ui-token";

// The start-up URL carries the token in its fragment (#token=...): the fragment is never
// sent to the server, kept in this tab's session storage only, and removed from the bar.
function takeToken() {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]{16,})/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function showAccess(token) {
  const badge = document.getElementById("access");
  if (!badge) return;
  badge.textContent = token ? badge.dataset.actions : badge.dataset.readonly;
  badge.classList.toggle("actions", Boolean(token));
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.disabled = !token;
    if (!token) button.title = "open the URL `sealroom ui` printed (it carries the token)";
  }
}

// <button data-action="/api/..." data-confirm="..."> POSTs with the token, then reloads.
async function act(button, token) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  const response = await fetch(button.dataset.action, {
    method: "POST",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: button.dataset.body || "{}",
  });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* keep */ }
    window.alert(message);
    button.disabled = false;
    return;
  }
  window.location.reload();
}

// <div data-sse="/runs/ID/events">: the server sends events named "fragment" whose data is
// {"target": element id, "html": server-rendered HTML} and one named "end" when done.
function follow(element) {
  const source = new EventSource(element.dataset.sse);
  source.addEventListener("fragment", (event) => {
    const data = JSON.parse(event.data);
    const target = document.getElementById(data.target);
    if (target) target.innerHTML = data.html;
  });
  source.addEventListener("end", () => {
    source.close();
    element.dataset.ended = "true";
    if (element.dataset.reloadOnEnd !== undefined) window.location.reload();
  });
}

// <div data-poll="/fragment/url" data-every="2">: its HTML refetched every N seconds.
function poll(element) {
  const every = Math.max(1, Number(element.dataset.every || 5)) * 1000;
  setInterval(async () => {
    const response = await fetch(element.dataset.poll, { headers: { "Accept": "text/html" } });
    if (response.ok) element.innerHTML = await response.text();
  }, every);
}

document.addEventListener("DOMContentLoaded", () => {
  const token = takeToken();
  showAccess(token);
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(button, token));
  }
  document.querySelectorAll("[data-sse]").forEach(follow);
  document.querySelectorAll("[data-poll]").forEach(poll);
});
