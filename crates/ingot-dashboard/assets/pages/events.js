// Events: a live stream of what arrived, each payload and the runs it
// started (or why none: a paused function, a skip); paged with the API's
// cursor; send a new event (the dialog offers the synced functions' trigger
// names); replay an old one.

import { api, subscribe, debounce } from "../api.js";
import { h, link, badge, json, when, datetime, shortId, empty, pageHead, dialog, act, toast, parseJson, count as fmtCount } from "../ui.js";

const PAGE = 50;

/** Why an event started no run: each function that skipped it, and why. */
function skipText(skips) {
  return skips.map((s) => `${s.function_name}: ${s.reason}`).join(" · ");
}

function runDots(runs, skips = []) {
  if (!runs.length && skips.length) return h("span.small.skip-reason", { "data-testid": "skip-reason" }, skipText(skips));
  if (!runs.length) return h("span.muted.small", "no runs");
  return h("div.run-dots", runs.map((r) => link(`/runs/${r.run_id}`, h("span.run-dot", { "data-status": r.status, title: `${r.function_name}: ${r.status}` }, h(`span.dot.${r.status}`), r.function_name))));
}

/** The event names the synced functions trigger on, each once, sorted. */
export async function triggerNames() {
  const fns = await api.functions().catch(() => []);
  const names = new Set();
  for (const fn of fns) for (const t of fn.triggers || []) if (t.event && !t.event.startsWith("inngest/")) names.add(t.event);
  return [...names].sort();
}

/** A toast for sent events, linking to the event (one) or the list. */
export function sentToast(ids, verb = "Sent") {
  const one = ids.length === 1;
  toast(`${verb} ${ids.length} event${one ? "" : "s"}`, false,
    one ? { href: `/events/${ids[0]}`, label: "View event →" } : { href: "/events", label: "View events →" });
}

/**
 * The dialog that sends an event; `preset` fills it in. Without one it
 * starts with the first trigger name of the synced functions, and a picker
 * offers the others.
 */
export async function sendDialog(preset) {
  const names = preset ? [] : await triggerNames();
  const template = preset || { name: names[0] || "app/user.signup", data: {} };
  const area = h("textarea", { name: "event", rows: 12, spellcheck: false, "data-testid": "send-event-json" }, JSON.stringify(template, null, 2));
  const pick = names.length ? h("select", { "data-testid": "send-event-name",
    onchange: (e) => {
      let ev;
      try { ev = JSON.parse(area.value); } catch { ev = { data: {} }; }
      if (Array.isArray(ev) || typeof ev !== "object" || ev === null) ev = { data: {} };
      area.value = JSON.stringify({ ...ev, name: e.target.value }, null, 2);
    } }, names.map((n) => h("option", { value: n, selected: n === template.name }, n))) : null;
  dialog({
    title: "Send an event",
    testid: "send-event",
    submitLabel: "Send event",
    fields: () => h("div.grid",
      h("p.muted", { style: { margin: 0 } }, "One event object, or an array of them. Functions whose triggers match start at once."),
      pick ? h("label.field", h("span", "Event name (the synced functions' triggers)"), pick) : null,
      h("label.field", h("span", "Event JSON"), area)),
    submit: async () => {
      const out = await api.send(parseJson(area.value, "The event"));
      sentToast(out.ids);
    },
  });
}

export async function render(main) {
  const params = new URLSearchParams(location.search);
  let showInternal = params.get("internal") === "1";
  const box = h("div.card-body.flush");
  const total = h("span.muted.small", { "data-testid": "events-total" });
  const pageInfo = h("span.muted.small", { "data-testid": "events-page-info" });
  let cursors = [];
  let cursor = "";
  let next = null;
  let known = new Set();
  let first = true;
  const newer = h("button.btn.small", { type: "button", "data-testid": "events-newer", disabled: true,
    onclick: () => { cursor = cursors.pop() || ""; load(); } }, "← Newer");
  const older = h("button.btn.small", { type: "button", "data-testid": "events-older", disabled: true,
    onclick: () => { if (!next) return; cursors.push(cursor); cursor = next; load(); } }, "Older →");

  const load = async () => {
    const res = await api.eventsPage({ limit: PAGE, cursor, internal: showInternal ? 1 : "" });
    const rows = res.data;
    const fresh = new Set(rows.filter((e) => !first && !known.has(e.id)).map((e) => e.id));
    known = new Set(rows.map((e) => e.id));
    first = false;
    next = res.next_cursor;
    newer.disabled = !cursor;
    older.disabled = !next;
    pageInfo.textContent = `Page ${cursors.length + 1}`;
    const n = res.total.count;
    total.textContent = `${res.total.exact ? "" : "at least "}${fmtCount(n)} event${n === 1 ? "" : "s"}`;
    if (!rows.length) {
      box.replaceChildren(empty("No events yet", "Send one with the button above, or from your app with inngest.send()."));
      return;
    }
    box.replaceChildren(h("table.list", { "data-testid": "events-table" },
      h("thead", h("tr", h("th", "Event"), h("th", "ID"), h("th", "Received"), h("th", "Runs"), h("th", ""))),
      h("tbody", rows.map((e) => {
        const tr = h("tr.clickable", { "data-event-id": e.id, "data-name": e.name, class: fresh.has(e.id) ? "flash" : "" },
          h("td", h("span.chip.event", e.name)),
          h("td", link(`/events/${e.id}`, h("span.id", { title: e.id }, shortId(e.id)))),
          h("td", when(e.received_at_ms)),
          h("td", runDots(e.runs, e.skips)),
          h("td.num", e.name.startsWith("inngest/") ? null : h("button.btn.small", { type: "button", title: "Send this event again",
            onclick: (ev) => { ev.stopPropagation(); act(ev.currentTarget, async () => sentToast((await api.replay(e.id)).ids, "Replayed")); } }, "Replay")));
        tr.addEventListener("click", (ev) => { if (!ev.target.closest("a,button")) window.__ingotNavigate(`/events/${e.id}`); });
        return tr;
      }))));
  };
  const refresh = debounce(() => { if (!cursor) load().catch(() => {}); }, 150);

  const toggle = h("label.actions.small.muted", h("input", { type: "checkbox", checked: showInternal, style: { height: "auto" },
    onchange: (e) => {
      showInternal = e.target.checked;
      history.replaceState(null, "", "/events" + (showInternal ? "?internal=1" : ""));
      cursors = [];
      cursor = "";
      load();
    } }), "Show internal events (inngest/…)");
  main.append(
    pageHead({
      title: "Events",
      sub: "Everything your apps and users sent, as it arrives.",
      actions: [toggle, h("button.btn.primary", { type: "button", "data-testid": "send-event-open", onclick: () => sendDialog() }, "Send event")],
    }),
    h("div.filters", h("span", { style: { marginLeft: "auto" } }, total)),
    h("div.card", box, h("div.pager", pageInfo, h("span.actions", newer, older))));
  await load();
  const unsub = subscribe((msg) => { if (msg.type === "event" || msg.type === "run" || msg.type === "resync") refresh(); });
  return unsub;
}

export async function renderOne(main, id) {
  const head = h("div");
  const payloadBox = h("div.card-body");
  const runsBox = h("div.card-body.flush");

  const load = async () => {
    const e = await api.event(id);
    const internal = e.name.startsWith("inngest/");
    head.replaceChildren(pageHead({
      crumbs: [link("/events", "Events")],
      title: e.name,
      sub: [h("span.mono", e.id), " · received ", when(e.received_at_ms), " · ", datetime(e.received_at_ms)],
      actions: internal ? [] : [
        h("button.btn", { type: "button", onclick: () => sendDialog({ name: e.name, data: e.payload.data || {} }) }, "Edit and send…"),
        h("button.btn.primary", { type: "button", "data-testid": "replay", onclick: (ev) => act(ev.currentTarget, async () => sentToast((await api.replay(e.id)).ids, "Replayed")) }, "↻ Replay"),
      ],
    }));
    payloadBox.replaceChildren(json(e.payload, { testid: "event-payload" }));
    runsBox.replaceChildren(e.runs.length
      ? h("table.list", h("thead", h("tr", h("th", "Status"), h("th", "Function"), h("th", "Run"), h("th", "Started"))),
        h("tbody", e.runs.map((r) => h("tr", h("td", badge(r.status)), h("td", link(`/functions/${r.function_slug}`, r.function_name)),
          h("td", link(`/runs/${r.run_id}`, h("span.id", shortId(r.run_id)))), h("td", when(r.started_at_ms))))))
      : h("div.empty", h("strong", "No runs"), e.skips && e.skips.length
        ? h("span", { "data-testid": "skip-reason" }, `Skipped by ${skipText(e.skips)}.`)
        : "No function's trigger matched this event."));
  };
  const refresh = debounce(() => load().catch(() => {}), 150);
  main.append(head, h("div.grid.two",
    h("div.card", h("div.card-head", h("h2", "Payload")), payloadBox),
    h("div.card", h("div.card-head", h("h2", "Runs started")), runsBox)));
  await load();
  return subscribe((msg) => { if (msg.type === "run") refresh(); });
}
