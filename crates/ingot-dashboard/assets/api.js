// The engine's API as the dashboard uses it, and the live stream.

/** An API error with the engine's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiError(401, "signed out");
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, (json && json.error) || text || res.statusText);
  return json;
}

const get = (p) => call("GET", p);
const post = (p, b) => call("POST", p, b === undefined ? {} : b);
const qs = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
};

export const api = {
  apps: () => get("/v1/apps").then((r) => r.data),
  addApp: (url) => post("/v1/apps", { url }),
  resync: (app) => post(`/v1/apps/${encodeURIComponent(app)}/sync`),
  functions: () => get("/v1/functions").then((r) => r.data),
  pause: (slug) => post(`/v1/functions/${encodeURIComponent(slug)}/pause`),
  resume: (slug) => post(`/v1/functions/${encodeURIComponent(slug)}/resume`),
  invoke: (slug, payload) => post(`/v1/functions/${encodeURIComponent(slug)}/invoke`, payload),
  runs: (filter) => get("/v1/dashboard/runs" + qs(filter)),
  run: (id) => get(`/v1/runs/${encodeURIComponent(id)}/timeline`),
  cancel: (id) => call("DELETE", `/v1/runs/${encodeURIComponent(id)}`),
  rerun: (id, fromStep) => post(`/v1/runs/${encodeURIComponent(id)}/rerun`, fromStep ? { from_step: fromStep } : {}),
  bulkCancel: (body) => post("/v1/cancellations", body),
  events: (filter) => get("/v1/dashboard/events" + qs(filter)).then((r) => r.data),
  eventsPage: (filter) => get("/v1/dashboard/events" + qs(filter)),
  event: (id) => get(`/v1/dashboard/events/${encodeURIComponent(id)}`).then((r) => r.data),
  send: (events) => post("/v1/events", events),
  replay: (id) => post(`/v1/events/${encodeURIComponent(id)}/replay`),
  functionStats: (slug, window) => get(`/v1/functions/${encodeURIComponent(slug)}/stats` + qs({ window })).then((r) => r.data),
  queueStats: () => get("/v1/queue/stats").then((r) => r.data),
};

// ---- live stream ----------------------------------------------------------

const listeners = new Set();
let source = null;
let retry = 500;

function setIndicator(state) {
  const el = document.getElementById("live-indicator");
  if (!el) return;
  el.classList.toggle("on", state === "on");
  el.classList.toggle("off", state === "off");
  el.querySelector(".live-text").textContent = state === "on" ? "live" : state === "off" ? "reconnecting" : "connecting";
}

function connect() {
  source = new EventSource("/v1/stream");
  source.onopen = () => { retry = 500; setIndicator("on"); };
  source.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === "hello") { setIndicator("on"); window.__ingotLive = true; }
    for (const fn of listeners) {
      try { fn(msg); } catch (err) { console.error(err); }
    }
  };
  source.onerror = () => {
    setIndicator("off");
    source.close();
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

/** Calls `fn(message)` for every live message; returns the unsubscribe. */
export function subscribe(fn) {
  if (!source) connect();
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** A function that runs `fn` at most once per `ms`, trailing. */
export function debounce(fn, ms = 200) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
