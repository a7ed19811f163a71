// The app: a tiny History-API router over the page modules. Each page
// exports `render(main, params)` and may return a cleanup function, called
// when the user leaves the page (to drop live subscriptions and timers).

import { h, tickTimes } from "./ui.js";
import { subscribe } from "./api.js";
import * as apps from "./pages/apps.js";
import * as functions from "./pages/functions.js";
import * as events from "./pages/events.js";
import * as runs from "./pages/runs.js";
import * as run from "./pages/run.js";

const routes = [
  [/^\/$/, null, () => navigate("/runs", true)],
  [/^\/runs\/?$/, "runs", (m) => runs.render(m)],
  [/^\/runs\/([^/]+)$/, "runs", (m, id) => run.render(m, decodeURIComponent(id))],
  [/^\/events\/?$/, "events", (m) => events.render(m)],
  [/^\/events\/([^/]+)$/, "events", (m, id) => events.renderOne(m, decodeURIComponent(id))],
  [/^\/functions\/?$/, "functions", (m) => functions.render(m)],
  [/^\/functions\/([^/]+)$/, "functions", (m, slug) => functions.renderOne(m, decodeURIComponent(slug))],
  [/^\/apps\/?$/, "apps", (m) => apps.render(m)],
];

let cleanup = null;

async function show() {
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  const main = document.getElementById("main");
  const path = location.pathname;
  for (const [re, nav, page] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
    main.replaceChildren();
    try {
      cleanup = await page(main, ...m.slice(1));
    } catch (e) {
      main.replaceChildren(h("div.card", h("div.empty", h("strong", "This page failed to load"), e.message || String(e))));
    }
    return;
  }
  main.replaceChildren(h("div.card", h("div.empty", h("strong", "Not found"), `Nothing lives at ${path}.`)));
}

/** Goes to an in-app path without a reload. */
export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.scrollTo(0, 0);
  show();
}
window.__ingotNavigate = navigate;

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener("popstate", show);

// Production mode (server kind "cloud") signs people in: offer signing out.
fetch("/health").then((r) => {
  if (r.headers.get("x-inngest-server-kind") === "cloud") document.getElementById("logout").hidden = false;
}).catch(() => {});

subscribe(() => {});
setInterval(() => tickTimes(), 10000);
show();
