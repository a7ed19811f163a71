// Small DOM helpers shared by the pages: element building, formatting,
// status badges, the JSON viewer, dialogs and toasts.

/** Builds an element: h("a.btn.primary", {href: "/"}, "text", child). */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An in-app link (handled by the router, no reload). */
export const link = (href, ...children) => h("a", { href, "data-link": true }, ...children);

// ---- formatting ----------------------------------------------------------

export function duration(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return "—";
  if (ms < 1) return "<1ms";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function ago(ms) {
  if (!ms) return "—";
  const d = Date.now() - ms;
  if (d < 5000) return "just now";
  if (d < 60000) return `${Math.round(d / 1000)}s ago`;
  if (d < 3600000) return `${Math.round(d / 60000)}m ago`;
  if (d < 86400000) return `${Math.round(d / 3600000)}h ago`;
  return `${Math.round(d / 86400000)}d ago`;
}

export function datetime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A time cell: relative, with the exact time on hover. */
export const when = (ms) => h("span", { title: datetime(ms), "data-ago": ms || "" }, ago(ms));

/** Refreshes every relative time on the page. */
export function tickTimes(root = document) {
  for (const el of root.querySelectorAll("[data-ago]")) {
    const ms = Number(el.dataset.ago);
    if (ms) el.textContent = ago(ms);
  }
}

export const shortId = (id) => (id ? id.slice(-8).toLowerCase() : "");

const STATUS_LABEL = { Queued: "Queued", Running: "Running", Completed: "Completed", Failed: "Failed", Cancelled: "Cancelled" };

/** A status badge for a run status (`Running`) or span status (`RUNNING`). */
export function badge(status, label) {
  const cls = String(status || "").toLowerCase();
  const text = label || STATUS_LABEL[status] || (status ? status[0] + status.slice(1).toLowerCase() : "—");
  return h("span.badge", { class: cls, "data-status": status }, text);
}

// ---- JSON ----------------------------------------------------------------

function scalar(v) {
  if (v === null) return h("span.z", "null");
  switch (typeof v) {
    case "string": return h("span.s", JSON.stringify(v));
    case "number": return h("span.n", String(v));
    case "boolean": return h("span.b", String(v));
    default: return h("span.z", String(v));
  }
}

function node(v, depth, key, last) {
  const keyPart = key !== undefined ? [h("span.k", JSON.stringify(key)), h("span.p", ": ")] : [];
  const comma = last ? "" : h("span.p", ",");
  if (v === null || typeof v !== "object") return h("span.line", keyPart, scalar(v), comma);
  const isArr = Array.isArray(v);
  const entries = isArr ? v.map((x, i) => [undefined, x, i]) : Object.entries(v).map(([k, x], i) => [k, x, i]);
  const [open, close] = isArr ? ["[", "]"] : ["{", "}"];
  if (!entries.length) return h("span.line", keyPart, h("span.p", open + close), comma);
  const count = isArr ? `${entries.length} item${entries.length === 1 ? "" : "s"}` : `${entries.length} key${entries.length === 1 ? "" : "s"}`;
  const det = h("details", { open: depth < 3 },
    h("summary", keyPart, h("span.p", open), h("span.fold", count), h("span.p.fold-close", "")),
    entries.map(([k, x, i]) => node(x, depth + 1, k, i === entries.length - 1)),
    h("span.p", close), comma);
  return h("span.line", det);
}

/** A collapsible, coloured JSON block with a copy button. */
export function json(value, opts = {}) {
  const pre = h("div.json", { "data-testid": opts.testid });
  if (value === undefined) value = null;
  const tree = node(value, 0, undefined, true);
  tree.style.paddingLeft = "0";
  pre.append(tree);
  const text = JSON.stringify(value, null, 2);
  return h("div.json-wrap", pre, h("button.btn.small.copy", { type: "button", onclick: () => copy(text) }, "Copy"));
}

/** An error object shown as the SDK reported it. */
export function errorBox(err) {
  if (err === null || err === undefined) return null;
  if (typeof err !== "object") return h("div.error-box", h("div.title", String(err)));
  const title = [err.name || "Error", err.message].filter(Boolean).join(": ");
  return h("div.error-box", { "data-testid": "error-box" },
    h("div.title", title),
    err.stack ? h("pre", String(err.stack).startsWith(title) ? String(err.stack).slice(title.length).replace(/^\n/, "") : err.stack) : null,
    err.cause ? h("div", { style: { marginTop: "8px" } }, h("div.small.muted", "Cause"), json(err.cause)) : null);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    toast("Copy failed", true);
  }
}

// ---- feedback --------------------------------------------------------------

/**
 * A passing message. `to` ({href, label}) adds a link to what the action
 * created (a run, an event); such toasts stay a little longer.
 */
export function toast(message, isError = false, to = null) {
  const el = h("div.toast", { class: isError ? "error" : "", role: "status", "data-testid": "toast" }, message,
    to ? [" ", h("a.toast-link", { href: to.href, "data-link": true, "data-testid": "toast-link" }, to.label || "Open →")] : null);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), isError ? 6000 : to ? 8000 : 3200);
}

/** "in 12s" / "now": how long until `ms` (epoch ms) from `now`. */
export function untilText(ms, now = Date.now()) {
  const d = ms - now;
  return d <= 500 ? "now" : `in ${duration(d).replace(/\.\d+s$/, "s")}`;
}

/** Whole numbers with thousands separators. */
export const count = (n) => Number(n).toLocaleString("en-US");

export const empty = (title, text) => h("div.empty", h("strong", title), text ? h("span", text) : null);

/** Runs an action from a button: disables it, reports errors as toasts. */
export async function act(button, fn, ok) {
  if (button) button.disabled = true;
  try {
    const out = await fn();
    if (ok) toast(typeof ok === "function" ? ok(out) : ok);
    return out;
  } catch (e) {
    toast(e.message || String(e), true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * A modal dialog with a form. `fields` builds the form body; `submit(form)`
 * returns a promise; the dialog closes when it resolves.
 */
export function dialog({ title, fields, submitLabel = "Submit", submit, testid }) {
  const error = h("div.field-error");
  const body = fields();
  const button = h("button.btn.primary", { type: "submit", "data-testid": testid ? testid + "-submit" : undefined }, submitLabel);
  const dlg = h("dialog", { "data-testid": testid });
  const form = h("form", { method: "dialog" },
    h("div.dialog-head", h("h2", title), h("button.btn.small", { type: "button", onclick: () => dlg.close() }, "Close")),
    body, error,
    h("div.dialog-foot", h("button.btn", { type: "button", onclick: () => dlg.close() }, "Cancel"), button));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await submit(form);
      dlg.close();
    } catch (err) {
      error.textContent = err.message || String(err);
    } finally {
      button.disabled = false;
    }
  });
  dlg.append(form);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/** Parses JSON typed by a person, with a readable error. */
export function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}

/** A page header: breadcrumbs, title, subtitle and actions. */
export function pageHead({ crumbs, title, sub, actions }) {
  return h("div.page-head",
    h("div",
      crumbs ? h("div.crumbs", crumbs.map((c, i) => [i ? " / " : "", c])) : null,
      h("h1", title),
      sub ? h("div.sub", sub) : null),
    actions ? h("div.actions", actions) : null);
}

/** Trigger chips of a function config. */
export function triggerChips(triggers) {
  return h("div.chips", (triggers || []).map((t) =>
    t.event ? h("span.chip.event", { title: t.expression ? `if ${t.expression}` : null }, t.event, t.expression ? " ⋯" : "")
      : t.cron ? h("span.chip.cron", t.cron) : null));
}
