// Runs: filter by status (Queued: not called yet), function and time range;
// search by run id, event id or a CEL expression over `event` and `output`;
// page through with the API's cursor (older, and back to newer); the total
// (exact, or "at least" past the count cap); updates live; bulk cancel.

import { api, subscribe, debounce } from "../api.js";
import { h, link, badge, when, duration, shortId, empty, pageHead, dialog, toast, count as fmtCount } from "../ui.js";
import { queueStrip } from "../charts.js";

const STATUSES = ["", "Queued", "Running", "Completed", "Failed", "Cancelled"];
const PAGE = 50;
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/i;
const RANGES = [
  ["", "Any time"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last hour"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["custom", "Custom range…"],
];
const RANGE_MS = { "15m": 9e5, "1h": 36e5, "24h": 864e5, "7d": 6048e5 };

function readFilter() {
  const p = new URLSearchParams(location.search);
  return { status: p.get("status") || "", function: p.get("function") || "", range: p.get("range") || "", from: p.get("from") || "", until: p.get("until") || "", q: p.get("q") || "" };
}

function writeFilter(f) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
  const s = p.toString();
  history.replaceState(null, "", "/runs" + (s ? "?" + s : ""));
}

const toMs = (local) => (local ? new Date(local).getTime() : undefined);

/**
 * The API query of a filter: ranges become bounds in ms; the search box is
 * a run id, an event id (both ULIDs: tried as a run, then as an event), or
 * a CEL expression.
 */
function query(f, idKind) {
  const q = { status: f.status, function: f.function, limit: PAGE };
  const text = f.q.trim();
  if (text && ULID.test(text)) q[idKind === "event" ? "event_id" : "run_id"] = text.toUpperCase();
  else if (text) q.query = text;
  if (RANGE_MS[f.range]) q.from = Date.now() - RANGE_MS[f.range];
  if (f.range === "custom") {
    q.from = toMs(f.from);
    q.until = toMs(f.until);
  }
  return q;
}

export function runsTable(rows, { showFunction = true, flash = new Set() } = {}) {
  if (!rows.length) return empty("No runs yet", "Send an event or invoke a function and its runs appear here, live.");
  return h("table.list", { "data-testid": "runs-table" },
    h("thead", h("tr", h("th", "Status"), showFunction ? h("th", "Function") : null, h("th", "Run"), h("th", "Trigger"), h("th", "Started"), h("th", "Ended"), h("th.num", "Duration"))),
    h("tbody", rows.map((r) => {
      const tr = h("tr.clickable", { "data-run-id": r.run_id, "data-status": r.status, class: flash.has(r.run_id) ? "flash" : "" },
        h("td", badge(r.status)),
        showFunction ? h("td", h("strong", r.function_name), r.error ? h("div.err-preview", { title: r.error, "data-testid": "run-error" }, r.error) : null) : null,
        h("td", link(`/runs/${r.run_id}`, h("span.id", { title: r.run_id }, shortId(r.run_id)))),
        h("td", r.event_name ? h("span.chip.event", r.event_name) : h("span.muted", "—"), r.event_count > 1 ? h("span.muted.small", ` +${r.event_count - 1}`) : null),
        h("td", when(r.started_at_ms)),
        h("td", r.ended_at_ms ? when(r.ended_at_ms) : h("span.muted", "—")),
        h("td.num", { "data-duration-start": r.ended_at_ms ? "" : r.started_at_ms }, duration((r.ended_at_ms || Date.now()) - r.started_at_ms)));
      tr.addEventListener("click", (e) => {
        if (e.target.closest("a")) return;
        window.__ingotNavigate(`/runs/${r.run_id}`);
      });
      return tr;
    })));
}

function bulkCancel(functions, f) {
  const q = query(f);
  const fnSelect = h("select", { name: "function", required: true, "data-testid": "bulk-function" },
    h("option", { value: "" }, "Choose a function…"),
    functions.map((fn) => h("option", { value: fn.slug, selected: fn.slug === f.function }, fn.name)));
  const local = (ms) => (ms ? new Date(ms - new Date().getTimezoneOffset() * 6e4).toISOString().slice(0, 16) : "");
  const after = h("input", { type: "datetime-local", name: "after", value: local(q.from) });
  const before = h("input", { type: "datetime-local", name: "before", value: local(q.until) });
  const cond = h("input", { name: "if", placeholder: "event.data.userId == \"u_123\"", class: "mono" });
  dialog({
    title: "Cancel running runs",
    testid: "bulk-cancel",
    submitLabel: "Cancel matching runs",
    fields: () => h("div.grid",
      h("p.muted", { style: { margin: 0 } }, "Every running run of the function that started in the range (and matches the expression, if given) is cancelled."),
      h("label.field", h("span", "Function"), fnSelect),
      h("div.grid.two", h("label.field", h("span", "Started after"), after), h("label.field", h("span", "Started before"), before)),
      h("label.field", h("span", "Only runs whose event matches (CEL, optional)"), cond)),
    submit: async () => {
      if (!fnSelect.value) throw new Error("Choose a function");
      const body = { function_slug: fnSelect.value };
      if (after.value) body.started_after = new Date(after.value).toISOString();
      if (before.value) body.started_before = new Date(before.value).toISOString();
      if (cond.value.trim()) body.if = cond.value.trim();
      const out = await api.bulkCancel(body);
      toast(`Cancelled ${out.cancelled} run${out.cancelled === 1 ? "" : "s"}`);
    },
  });
}

export async function render(main) {
  const f = readFilter();
  const functions = await api.functions().catch(() => []);
  const tableBox = h("div.card-body.flush");
  const total = h("span.muted.small", { "data-testid": "runs-total" });
  const note = h("div.search-note.small", { "data-testid": "search-note", hidden: true });
  const pageInfo = h("span.muted.small", { "data-testid": "page-info" });
  // Cursors of the pages before this one: "Newer" pops, "Older" pushes.
  let cursors = [];
  let cursor = "";
  let next = null;
  let idKind = "run";
  let seen = new Map();
  let first = true;

  const newer = h("button.btn.small", { type: "button", "data-testid": "page-newer", disabled: true,
    onclick: () => { cursor = cursors.pop() || ""; load(); } }, "← Newer");
  const older = h("button.btn.small", { type: "button", "data-testid": "page-older", disabled: true,
    onclick: () => { if (!next) return; cursors.push(cursor); cursor = next; load(); } }, "Older →");

  const load = async () => {
    const q = { ...query(f, idKind), cursor };
    let res;
    try {
      res = await api.runs(q);
      note.hidden = true;
    } catch (e) {
      note.hidden = false;
      note.className = "search-note small error";
      note.textContent = e.message;
      tableBox.replaceChildren(empty("No runs", "The search could not run."));
      return;
    }
    // A ULID that is no run may be an event: try that once.
    if (!res.data.length && q.run_id && idKind === "run") {
      idKind = "event";
      return load();
    }
    const flash = new Set();
    for (const r of res.data) {
      const prev = seen.get(r.run_id);
      if (!first && prev !== r.status) flash.add(r.run_id);
    }
    seen = new Map(res.data.map((r) => [r.run_id, r.status]));
    first = false;
    next = res.next_cursor;
    tableBox.replaceChildren(runsTable(res.data, { flash }));
    newer.disabled = !cursor;
    older.disabled = !next;
    const page = cursors.length + 1;
    pageInfo.textContent = `Page ${page}`;
    if (res.total) {
      const n = res.total.count;
      total.textContent = `${res.total.exact ? "" : "at least "}${fmtCount(n)} run${n === 1 ? "" : "s"}`;
      total.title = res.total.exact ? "" : "Counting stops here; the total is larger.";
    } else {
      total.textContent = `${res.data.length} on this page`;
    }
    if (res.search) {
      note.hidden = false;
      note.className = "search-note small";
      note.textContent = res.search.capped
        ? `Expression search: read ${fmtCount(res.search.scanned)} runs (the most per page) and found ${res.data.length}; older runs may match — press Older to go on.`
        : `Expression search: read ${fmtCount(res.search.scanned)} runs for this page (at most ${fmtCount(res.search.scan_limit)} per page).`;
    }
  };
  const refresh = debounce(() => { if (!cursor) load().catch(() => {}); }, 150);
  const change = () => { writeFilter(f); cursors = []; cursor = ""; idKind = "run"; load(); };
  const queue = queueStrip();

  const seg = h("div.segmented", { role: "group", "aria-label": "Status", "data-testid": "status-filter" },
    STATUSES.map((s) => h("button", { type: "button", class: f.status === s ? "on" : "", "data-status": s || "all",
      onclick: (e) => {
        f.status = s;
        for (const b of seg.children) b.classList.toggle("on", b === e.currentTarget);
        change();
      } }, s ? [h(`span.dot.${s}`), s] : "All")));
  const fnSelect = h("select", { "data-testid": "function-filter", onchange: (e) => { f.function = e.target.value; change(); } },
    h("option", { value: "" }, "All functions"),
    functions.map((fn) => h("option", { value: fn.slug, selected: fn.slug === f.function }, fn.name)));
  const fromInput = h("input", { type: "datetime-local", value: f.from, onchange: (e) => { f.from = e.target.value; change(); } });
  const untilInput = h("input", { type: "datetime-local", value: f.until, onchange: (e) => { f.until = e.target.value; change(); } });
  const custom = h("span.actions", { hidden: f.range !== "custom" }, fromInput, h("span.muted", "to"), untilInput);
  const rangeSelect = h("select", { "data-testid": "range-filter", onchange: (e) => { f.range = e.target.value; custom.hidden = f.range !== "custom"; change(); } },
    RANGES.map(([v, label]) => h("option", { value: v, selected: v === f.range }, label)));
  const search = h("input.mono.search", { type: "search", value: f.q, "data-testid": "run-search",
    placeholder: "Run ID, event ID, or CEL: event.data.userId == \"u_1\" && output.ok",
    onkeydown: (e) => { if (e.key === "Enter") { f.q = e.target.value; change(); } } });
  const searchForm = h("div.search-row", search,
    h("button.btn", { type: "button", "data-testid": "run-search-go", onclick: () => { f.q = search.value; change(); } }, "Search"),
    h("button.btn", { type: "button", onclick: () => { search.value = ""; f.q = ""; change(); } }, "Clear"));

  main.append(
    pageHead({
      title: "Runs",
      sub: "Every function run, newest first. The list updates by itself.",
      actions: [h("button.btn.danger", { type: "button", "data-testid": "bulk-cancel-open", onclick: () => bulkCancel(functions, f) }, "Bulk cancel…")],
    }),
    queue.el,
    h("div.filters", seg, fnSelect, rangeSelect, custom, h("span", { style: { marginLeft: "auto" } }, total)),
    searchForm,
    note,
    h("div.card", tableBox, h("div.pager", pageInfo, h("span.actions", newer, older))));
  await Promise.all([load(), queue.load()]);
  const unsub = subscribe((msg) => { if (msg.type === "run" || msg.type === "resync") { refresh(); queue.refresh(); } });
  const timer = setInterval(() => {
    for (const td of tableBox.querySelectorAll("[data-duration-start]")) {
      const start = Number(td.dataset.durationStart);
      if (start) td.textContent = duration(Date.now() - start);
    }
  }, 1000);
  return () => { unsub(); clearInterval(timer); queue.stop(); };
}
