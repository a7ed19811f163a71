// Events: a live stream of what arrived, each payload and the runs it
// started; send a new event; replay an old one.

import { api, subscribe, debounce } from "../api.js";
import { h, link, badge, json, when, datetime, shortId, empty, pageHead, dialog, act, toast, parseJson } from "../ui.js";

function runDots(runs) {
  if (!runs.length) return h("span.muted.small", "no runs");
  return h("div.run-dots", runs.map((r) => link(`/runs/${r.run_id}`, h("span.run-dot", { "data-status": r.status, title: `${r.function_name}: ${r.status}` }, h(`span.dot.${r.status}`), r.function_name))));
}

/** The dialog that sends an event; `preset` fills it in. */
export function sendDialog(preset) {
  const template = preset || { name: "app/user.signup", data: { userId: "u_123", plan: "pro" } };
  const area = h("textarea", { name: "event", rows: 12, spellcheck: false, "data-testid": "send-event-json" }, JSON.stringify(template, null, 2));
  dialog({
    title: "Send an event",
    testid: "send-event",
    submitLabel: "Send event",
    fields: () => h("div.grid",
      h("p.muted", { style: { margin: 0 } }, "One event object, or an array of them. Functions whose triggers match start at once."),
      h("label.field", h("span", "Event JSON"), area)),
    submit: async () => {
      const out = await api.send(parseJson(area.value, "The event"));
      toast(`Sent ${out.ids.length} event${out.ids.length === 1 ? "" : "s"}`);
    },
  });
}

export async function render(main) {
  const params = new URLSearchParams(location.search);
  let showInternal = params.get("internal") === "1";
  const box = h("div.card-body.flush");
  let known = new Set();
  let first = true;

  const load = async () => {
    const rows = await api.events({ limit: 100, internal: showInternal ? 1 : "" });
    const fresh = new Set(rows.filter((e) => !first && !known.has(e.id)).map((e) => e.id));
    known = new Set(rows.map((e) => e.id));
    first = false;
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
          h("td", runDots(e.runs)),
          h("td.num", e.name.startsWith("inngest/") ? null : h("button.btn.small", { type: "button", title: "Send this event again",
            onclick: (ev) => { ev.stopPropagation(); act(ev.currentTarget, () => api.replay(e.id), "Replayed"); } }, "Replay")));
        tr.addEventListener("click", (ev) => { if (!ev.target.closest("a,button")) window.__ingotNavigate(`/events/${e.id}`); });
        return tr;
      }))));
  };
  const refresh = debounce(() => load().catch(() => {}), 150);

  const toggle = h("label.actions.small.muted", h("input", { type: "checkbox", checked: showInternal, style: { height: "auto" },
    onchange: (e) => {
      showInternal = e.target.checked;
      history.replaceState(null, "", "/events" + (showInternal ? "?internal=1" : ""));
      load();
    } }), "Show internal events (inngest/…)");
  main.append(
    pageHead({
      title: "Events",
      sub: "Everything your apps and users sent, as it arrives.",
      actions: [toggle, h("button.btn.primary", { type: "button", "data-testid": "send-event-open", onclick: () => sendDialog() }, "Send event")],
    }),
    h("div.card", box));
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
        h("button.btn.primary", { type: "button", "data-testid": "replay", onclick: (ev) => act(ev.currentTarget, () => api.replay(e.id), "Replayed: a new event with the same payload") }, "↻ Replay"),
      ],
    }));
    payloadBox.replaceChildren(json(e.payload, { testid: "event-payload" }));
    runsBox.replaceChildren(e.runs.length
      ? h("table.list", h("thead", h("tr", h("th", "Status"), h("th", "Function"), h("th", "Run"), h("th", "Started"))),
        h("tbody", e.runs.map((r) => h("tr", h("td", badge(r.status)), h("td", link(`/functions/${r.function_slug}`, r.function_name)),
          h("td", link(`/runs/${r.run_id}`, h("span.id", shortId(r.run_id)))), h("td", when(r.started_at_ms))))))
      : h("div.empty", h("strong", "No runs"), "No function's trigger matched this event."));
  };
  const refresh = debounce(() => load().catch(() => {}), 150);
  main.append(head, h("div.grid.two",
    h("div.card", h("div.card-head", h("h2", "Payload")), payloadBox),
    h("div.card", h("div.card-head", h("h2", "Runs started")), runsBox)));
  await load();
  return subscribe((msg) => { if (msg.type === "run") refresh(); });
}
