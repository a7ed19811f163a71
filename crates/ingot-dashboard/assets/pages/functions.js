// Functions: triggers, flow control, recent runs, pause and resume, invoke
// with a payload.

import { api, subscribe, debounce } from "../api.js";
import { h, link, badge, json, empty, pageHead, dialog, act, toast, parseJson, triggerChips } from "../ui.js";
import { runsTable } from "./runs.js";
import { functionCharts } from "../charts.js";

const FLOW_LABEL = {
  concurrency: "Concurrency", throttle: "Throttle", rateLimit: "Rate limit", debounce: "Debounce", batchEvents: "Batching",
  priority: "Priority", idempotency: "Idempotency", singleton: "Singleton", timeouts: "Timeouts", cancel: "Cancel on",
};

/** One line describing a flow-control block. */
function flowSummary(key, v) {
  const arr = Array.isArray(v) ? v : [v];
  switch (key) {
    case "concurrency": return arr.map((c) => (typeof c === "number" ? `${c} at once` : `${c.limit} at once${c.key ? ` per ${c.key}` : ""}${c.scope && c.scope !== "fn" ? ` (${c.scope})` : ""}`)).join("; ");
    case "throttle": return `${v.limit} per ${v.period}${v.burst ? `, burst ${v.burst}` : ""}${v.key ? ` per ${v.key}` : ""}`;
    case "rateLimit": return `${v.limit} per ${v.period}${v.key ? ` per ${v.key}` : ""}`;
    case "debounce": return `${v.period}${v.timeout ? `, at most ${v.timeout}` : ""}${v.key ? ` per ${v.key}` : ""}`;
    case "batchEvents": return `up to ${v.maxSize} events or ${v.timeout}${v.key ? ` per ${v.key}` : ""}`;
    case "priority": return v.run ? `run: ${v.run}` : JSON.stringify(v);
    case "idempotency": return String(v);
    case "singleton": return `${v.mode || "skip"}${v.key ? ` per ${v.key}` : ""}`;
    case "timeouts": return [v.start ? `start ${v.start}` : "", v.finish ? `finish ${v.finish}` : ""].filter(Boolean).join(", ");
    case "cancel": return arr.map((c) => c.event + (c.if ? ` if ${c.if}` : "") + (c.timeout ? ` within ${c.timeout}` : "")).join("; ");
    default: return JSON.stringify(v);
  }
}

function flowTags(fn) {
  const keys = Object.keys(fn.flow || {});
  if (!keys.length) return h("span.muted.small", "No flow control");
  return h("div.chips", keys.map((k) => h("span.tag", { title: flowSummary(k, fn.flow[k]) }, FLOW_LABEL[k] || k)));
}

function invokeDialog(fn, after) {
  const area = h("textarea", { rows: 10, spellcheck: false, "data-testid": "invoke-json" }, JSON.stringify({ data: {} }, null, 2));
  dialog({
    title: `Invoke ${fn.name}`,
    testid: "invoke",
    submitLabel: "Invoke",
    fields: () => h("div.grid",
      h("p.muted", { style: { margin: 0 } }, "Starts a run now with this payload as its event (inngest/function.invoked), whatever the triggers."),
      h("label.field", h("span", "Payload"), area)),
    submit: async () => {
      const out = await api.invoke(fn.slug, parseJson(area.value, "The payload"));
      // The run is stored with its event, so the event names it at once.
      const ev = await api.event(out.id).catch(() => null);
      const run = ev && ev.runs && ev.runs[0];
      toast("Run started", false, run ? { href: `/runs/${run.run_id}`, label: "View run →" } : { href: `/events/${out.id}`, label: "View event →" });
      if (after) after(out);
    },
  });
}

function pauseButton(fn, after) {
  return h("button.btn.small", { type: "button", "data-testid": fn.paused ? "resume" : "pause",
    onclick: (e) => { e.preventDefault(); e.stopPropagation(); act(e.currentTarget, () => (fn.paused ? api.resume(fn.slug) : api.pause(fn.slug)), fn.paused ? "Resumed" : "Paused: new events start no runs").then(after); } },
  fn.paused ? "▶ Resume" : "❚❚ Pause");
}

export async function render(main) {
  const box = h("div");
  const load = async () => {
    const [fns, apps] = await Promise.all([api.functions(), api.apps()]);
    if (!fns.length) {
      box.replaceChildren(h("div.card", empty("No functions yet", "Sync an app on the Apps page and its functions show up here.")));
      return;
    }
    const groups = apps.map((a) => [a, fns.filter((f) => f.app_id === a.id)]).filter(([, list]) => list.length);
    box.replaceChildren(...groups.map(([app, list]) => h("section", { style: { marginBottom: "22px" } },
      h("h3", { style: { marginBottom: "10px" } }, app.id, h("span.muted", ` · ${list.length} function${list.length === 1 ? "" : "s"}`)),
      h("div.fn-cards", list.map((fn) => h("a.card.fn-card", { href: `/functions/${encodeURIComponent(fn.slug)}`, "data-link": true, "data-testid": "function-card", "data-slug": fn.slug },
        h("div.top", h("div", h("div.name", fn.name), h("div.slug", fn.slug)), fn.paused ? badge("paused", "Paused") : null),
        triggerChips(fn.triggers),
        h("div.bottom", flowTags(fn),
          h("span.actions",
            pauseButton(fn, load),
            h("button.btn.small", { type: "button", onclick: (e) => { e.preventDefault(); e.stopPropagation(); invokeDialog(fn); } }, "Invoke")))))))));
  };
  main.append(pageHead({ title: "Functions", sub: "What your apps registered, grouped by app." }), box);
  await load();
  return subscribe((msg) => { if (msg.type === "function") load().catch(() => {}); });
}

export async function renderOne(main, slug) {
  const head = h("div");
  const infoBox = h("div.card-body");
  const runsBox = h("div.card-body.flush");
  let fn = null;

  const loadFn = async () => {
    const fns = await api.functions();
    fn = fns.find((f) => f.slug === slug);
    if (!fn) throw new Error(`No function ${slug} is synced.`);
    head.replaceChildren(pageHead({
      crumbs: [link("/functions", "Functions"), fn.app_id],
      title: [fn.name, " ", fn.paused ? badge("paused", "Paused") : badge("COMPLETED", "Active")],
      sub: h("span.mono", fn.slug),
      actions: [pauseButton(fn, () => loadFn()),
        h("button.btn.primary", { type: "button", "data-testid": "invoke-open", onclick: () => invokeDialog(fn, (out) => out && loadRuns()) }, "Invoke…")],
    }));
    const flowKeys = Object.keys(fn.flow || {});
    infoBox.replaceChildren(
      h("div.section-title", { style: { marginTop: 0 } }, "Triggers"), triggerChips(fn.triggers),
      h("div.section-title", "Retries"), h("div", `${fn.retries} (${fn.retries + 1} attempts per step)`),
      h("div.section-title", "Flow control"),
      flowKeys.length ? h("div.kv", flowKeys.map((k) => [h("span.k", FLOW_LABEL[k] || k), h("span.mono", flowSummary(k, fn.flow[k]))])) : h("p.muted", { style: { margin: 0 } }, "None: every matching event starts a run at once."),
      h("details", { style: { marginTop: "12px" } }, h("summary.muted.small", { style: { cursor: "pointer" } }, "Config as registered"), json(fn.config)));
  };
  const loadRuns = async () => {
    const res = await api.runs({ function: slug, limit: 25 });
    runsBox.replaceChildren(runsTable(res.data, { showFunction: false }));
  };
  const refresh = debounce(() => loadRuns().catch(() => {}), 150);
  const charts = functionCharts(slug);

  main.append(head, charts.el, h("div.grid.side",
    h("div.card", h("div.card-head", h("h2", "Recent runs"), link(`/runs?function=${encodeURIComponent(slug)}`, h("span.small", "All runs →"))), runsBox),
    h("div.card", h("div.card-head", h("h2", "Configuration")), infoBox)));
  await Promise.all([loadFn(), loadRuns(), charts.load()]);
  const unsub = subscribe((msg) => {
    if (msg.type === "run" && msg.function === slug) { refresh(); charts.refresh(); }
    if (msg.type === "function" && msg.slug === slug) loadFn().catch(() => {});
  });
  return () => { unsub(); charts.stop(); };
}
