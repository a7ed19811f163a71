// One run: a timeline with each step as a bar (start, duration, attempts),
// the selected step's output or error, the run's events and output; cancel
// and rerun (from the start, or from a chosen step); links between a rerun
// and its original. A failed try shows its own error, and a span waiting to
// be tried again says when ("Retrying · next attempt in 12s"). Updates live
// while the run goes on.

import { api, subscribe, debounce } from "../api.js";
import { h, link, badge, json, errorBox, duration, datetime, when, pageHead, act, toast, copy, untilText, shortId } from "../ui.js";

const OP_LABEL = { RUN: "step", SLEEP: "sleep", WAIT_FOR_EVENT: "wait", INVOKE: "invoke", FINALIZATION: "code" };

/** Every span in display order, with its depth. */
function flatten(root) {
  const out = [{ span: root, depth: 0 }];
  for (const c of root.children) {
    out.push({ span: c, depth: 1 });
    for (const a of c.children || []) out.push({ span: a, depth: 2 });
  }
  return out;
}

/** Axis labels: 0 and quarters, each label once (a run of 2ms has no "<1ms <1ms"). */
function ticks(total) {
  const shown = new Set(["0"]);
  return [0, 0.25, 0.5, 0.75, 1].map((f) => {
    let text = f === 0 ? "0" : duration(total * f);
    if (f > 0 && (total * f < 1 || shown.has(text))) text = "";
    shown.add(text);
    return h("span", { style: { left: `${f * 100}%` } }, text);
  });
}

/** "Retrying · next attempt in 12s" for a span waiting for its next try. */
function retryText(span, now) {
  return span.retry_at_ms ? `Retrying · next attempt ${untilText(span.retry_at_ms, now)}` : null;
}

/** The error of a span's last failed try, if it has one. */
function lastTryError(span) {
  const failed = (span.attempt_list || []).filter((a) => a.outcome !== "completed" && a.error != null);
  return failed.length ? failed[failed.length - 1].error : null;
}

/** A try's outcome, named the same in the list and on the timeline. */
const OUTCOME = { completed: ["COMPLETED", "Completed"], error: ["FAILED", "Failed · retried"], failed: ["FAILED", "Failed"] };

function timeline(data, selected, onSelect, now) {
  const root = data.trace;
  const rows = flatten(root);
  const t0 = Math.min(...rows.map((r) => r.span.started_at_ms ?? r.span.queued_at_ms));
  const ends = rows.map((r) => r.span.ended_at_ms ?? (r.span.status === "RUNNING" || r.span.status === "WAITING" || r.span.status === "QUEUED" ? now : r.span.started_at_ms ?? t0));
  const t1 = Math.max(...ends, t0 + 1);
  const total = t1 - t0;
  const pct = (ms) => `${Math.max(0, Math.min(100, ((ms - t0) / total) * 100))}%`;

  const body = rows.map(({ span, depth }) => {
    const start = span.started_at_ms ?? span.queued_at_ms;
    const end = span.ended_at_ms ?? (["RUNNING", "WAITING", "QUEUED"].includes(span.status) ? now : start);
    const width = `${Math.max(0.3, ((end - start) / total) * 100)}%`;
    const bar = h("div.tl-bar", { class: span.status, style: { left: pct(start), width }, title: `${span.status} · ${duration(end - start)}` });
    // Failed tries shade their part of a retried step's bar.
    if (depth === 1 && span.attempt_list.length > 1 && end > start) {
      for (const a of span.attempt_list) {
        if (a.outcome === "completed" || a.duration_ms == null) continue;
        const left = ((a.started_at_ms - start) / (end - start)) * 100;
        const w = (a.duration_ms / (end - start)) * 100;
        bar.append(h("div.seg.err", { style: { left: `${left}%`, width: `${Math.max(w, 1)}%` } }));
      }
    }
    const until = span.detail && span.detail.until_ms;
    const retry = depth < 2 ? retryText(span, now) : null;
    // A failed try's row carries its error after the duration: visible without opening the step.
    const tryError = depth === 2 && span.detail && span.detail.error ? errText(span.detail.error) : null;
    const label = retry || (span.ended_at_ms == null && span.status === "WAITING"
      ? (until ? `sleeping until ${datetime(until).slice(11, 19)}` : "waiting") : duration(end - start) + (tryError ? ` · ${tryError}` : ""));
    // Labels go after the bar, or inside it (or before it) near the right edge.
    const startPct = ((start - t0) / total) * 100;
    const endPct = ((end - t0) / total) * 100;
    let place = { left: `${endPct}%` };
    let cls = retry ? "retrying" : "";
    if (retry) {
      // On a solid chip at the bar's right end, never over the step names.
      place = endPct > 60 ? { right: `${100 - endPct}%` } : { left: `${endPct}%` };
    } else if (endPct > 80) {
      // Inside a bar only on solid colours; striped (waiting) bars get the label before them.
      const inside = endPct - startPct > 22 && span.status !== "WAITING" && span.status !== "QUEUED" && !retry;
      place = { right: `${100 - (inside ? endPct : startPct)}%` };
      cls += inside ? " inside" : "";
    }
    const durLabel = h("span.tl-dur", { class: (cls + (tryError ? " try-error" : "")).trim(), style: place, title: label, "data-testid": retry ? "retry-label" : null }, label);
    const retries = span.attempts > 0 && depth === 1 ? h("span.att", { title: `${span.attempts + 1} attempts` }, `×${span.attempts + 1}`) : null;

    const row = h("div.tl-row", {
      class: [depth === 0 ? "tl-root" : "", depth === 2 ? "child" : "", selected === span.id ? "selected" : ""].join(" "),
      "data-span": span.id, "data-status": span.status, "data-name": span.name, "data-testid": "timeline-row",
      onclick: () => onSelect(span.id),
    },
      h("div.tl-name", depth === 0 ? badge(span.status) : h("span.op", OP_LABEL[span.op] || span.op.toLowerCase()), h("span.nm", { title: span.name }, span.name), retries),
      h("div.tl-track", bar, durLabel));
    return row;
  });
  return h("div.timeline", { "data-testid": "timeline" },
    h("div.tl-axis", h("div.tl-label", "Step"), h("div.tl-ticks", ticks(total))),
    body);
}

/** `Name: message` of an error object (or the value as text). */
function errText(e) {
  if (e == null) return "";
  if (typeof e !== "object") return String(e);
  return [e.name || "Error", e.message].filter(Boolean).join(": ");
}

function findSpan(root, id) {
  for (const { span } of flatten(root)) if (span.id === id) return span;
  return root;
}

function detail(data, span, now) {
  const isRoot = span.id === "run";
  const retry = retryText(span, now);
  const facts = h("div.kv",
    h("span.k", "Status"), h("span", badge(span.status), retry ? h("span.retry-note", { "data-testid": "retry-note" }, " ", retry) : null),
    h("span.k", "Kind"), h("span", isRoot ? "run" : OP_LABEL[span.op] || span.op),
    span.step_id ? [h("span.k", "Step ID"), h("span.mono", { title: span.step_id }, span.step_id.slice(0, 16) + "…")] : null,
    h("span.k", "Started"), h("span", datetime(span.started_at_ms)),
    h("span.k", "Duration"), h("span", span.duration_ms != null ? duration(span.duration_ms) : "—"),
    !isRoot ? [h("span.k", "Attempts"), h("span", String(span.attempt_list && span.attempt_list.length ? Math.max(...span.attempt_list.map((a) => a.attempt)) + 1 : (span.attempts || 0) + 1))] : null,
    span.detail && span.detail.until_ms ? [h("span.k", "Sleeps until"), h("span", datetime(span.detail.until_ms))] : null,
    span.detail && span.detail.event ? [h("span.k", "Waits for"), h("span.mono", span.detail.event, span.detail.if ? ` if ${span.detail.if}` : "")] : null,
    span.detail && span.detail.function ? [h("span.k", "Invokes"), link(`/functions/${span.detail.function}`, h("span.mono", span.detail.function))] : null);
  const parts = [facts];
  const tryError = !span.error ? (span.detail && span.detail.error) || lastTryError(span) : null;
  if (span.error) parts.push(h("div.section-title", "Error"), errorBox(span.error));
  else if (tryError) parts.push(h("div.section-title", retry ? "Error of the last attempt" : "Error"), errorBox(tryError));
  else if (span.output !== undefined && span.output !== null) parts.push(h("div.section-title", isRoot ? "Output" : "Output"), json(span.output, { testid: "span-output" }));
  else if (span.status === "COMPLETED") parts.push(h("div.section-title", "Output"), json(null, { testid: "span-output" }));
  else if (!tryError) parts.push(h("p.muted", span.status === "WAITING" ? "Waiting: nothing to show yet." : "No output yet."));
  if (span.attempt_list && span.attempt_list.length) {
    parts.push(h("div.section-title", "Attempts"), h("div.attempts", { "data-testid": "attempts" }, span.attempt_list.map((a) => {
      const [st, label] = OUTCOME[a.outcome] || OUTCOME.failed;
      return h("div.attempt", { "data-testid": "attempt", "data-outcome": a.outcome },
        h("span", `Attempt ${a.attempt + 1}`),
        h("span", badge(st, label)),
        h("span.muted", a.duration_ms != null ? duration(a.duration_ms) : ""),
        a.error != null ? h("div.attempt-error", { "data-testid": "attempt-error" }, errorBox(a.error)) : null);
    })));
  }
  // Rerun from here: steps memoized before this one are kept.
  const canRerunFrom = data.function.exists && span.step_id && span.output_id && span.op === "RUN";
  const rerunFrom = canRerunFrom ? h("button.btn.small", { type: "button", "data-testid": "rerun-from-step",
    title: "A new run that keeps the steps completed before this one and runs this step again",
    onclick: (e) => act(e.currentTarget, async () => {
      const out = await api.rerun(data.run.run_id, span.step_id);
      toast(`Rerun from “${span.name}” started`, false, { href: `/runs/${out.run_id}`, label: "View run →" });
      window.__ingotNavigate(`/runs/${out.run_id}`);
    }) }, "↻ Rerun from this step") : null;
  return h("div.card.detail-pane", { "data-testid": "span-detail" },
    h("div.card-head", h("h2", span.name), rerunFrom),
    h("div.card-body", parts));
}

export async function render(main, id) {
  let data = await api.run(id);
  let selected = "run";
  const head = h("div");
  const tlBox = h("div.card-body.flush");
  const detailBox = h("div");
  const eventsBox = h("div.card-body");
  let drawnEvents = null;

  const draw = (tick = false) => {
    const run = data.run;
    const running = run.status === "Running" || run.status === "Queued";
    const cancel = running ? h("button.btn.danger", { type: "button", "data-testid": "cancel-run", onclick: (e) => act(e.currentTarget, async () => {
      await api.cancel(run.run_id);
      await reload();
    }, "Run cancelled") }, "Cancel run") : null;
    const rerun = data.function.exists ? h("button.btn.primary", { type: "button", "data-testid": "rerun", onclick: (e) => act(e.currentTarget, async () => {
      const out = await api.rerun(run.run_id);
      toast("Rerun started", false, { href: `/runs/${out.run_id}`, label: "View run →" });
      window.__ingotNavigate(`/runs/${out.run_id}`);
    }) }, "↻ Rerun") : null;
    const links = [];
    if (run.rerun_of) links.push(h("span", { "data-testid": "rerun-of" }, " · rerun of ", link(`/runs/${run.rerun_of}`, h("span.mono", { title: run.rerun_of }, shortId(run.rerun_of)))));
    if (run.reruns && run.reruns.length) {
      links.push(h("span", { "data-testid": "reruns" }, " · rerun as ", run.reruns.map((r, i) => [i ? ", " : "", link(`/runs/${r}`, h("span.mono", { title: r }, shortId(r)))])));
    }
    const now = Date.now() - loadedAt + data.now_ms;
    const total = (run.ended_at_ms || now) - run.started_at_ms;
    head.replaceChildren(pageHead({
      crumbs: [link("/runs", "Runs"), link(`/functions/${data.function.slug}`, data.function.name)],
      title: [data.function.name, " ", badge(run.status)],
      sub: [h("span.mono", { title: "Copy run ID", style: { cursor: "pointer" }, onclick: () => copy(run.run_id), "data-testid": "run-id" }, run.run_id),
        " · started ", when(run.started_at_ms), " · ", running ? "running for " : "took ", duration(total),
        retryText(data.trace, now) ? h("span.retry-note", { "data-testid": "run-retry" }, " · ", retryText(data.trace, now)) : null, links],
      actions: [cancel, rerun],
    }));
    tlBox.replaceChildren(timeline(data, selected, (sid) => { selected = sid; safeDraw(); }, now));
    if (!tick || findSpan(data.trace, selected).retry_at_ms) detailBox.replaceChildren(detail(data, findSpan(data.trace, selected), now));
    if (drawnEvents !== data.events) {
      drawnEvents = data.events;
      eventsBox.replaceChildren(...data.events.map((e) => h("div", { style: { marginBottom: "12px" } },
        h("div.actions", { style: { marginBottom: "6px" } }, link(`/events/${e.id}`, h("span.chip.event", e.name)), h("span.muted.small", datetime(e.received_at_ms))),
        json(e.payload, { testid: "event-payload" }))));
      if (!data.events.length) eventsBox.replaceChildren(h("p.muted", "No events (a cron or a rerun without events)."));
    }
  };

  // A state the page cannot draw (a bug) says so in place of the timeline
  // and leaves the page live: the next change draws again.
  const safeDraw = (tick = false) => {
    try {
      draw(tick);
    } catch (e) {
      console.error("drawing the run failed", e);
      tlBox.replaceChildren(h("div.empty", { "data-testid": "draw-error" }, h("strong", "This run could not be drawn"), String(e && e.message || e)));
    }
  };
  let loadedAt = Date.now();
  const reload = async () => {
    data = await api.run(id);
    loadedAt = Date.now();
    safeDraw();
  };
  const refresh = debounce(() => reload().catch(() => {}), 120);

  main.append(head,
    h("div.grid.side",
      h("div.card", h("div.card-head", h("h2", "Timeline"), h("span.muted.small", "Click a step for its output")), tlBox),
      detailBox),
    h("div.card", h("div.card-head", h("h2", "Trigger")), eventsBox));
  const unsub = subscribe((msg) => { if ((msg.type === "run" && msg.run_id === data.run.run_id) || msg.type === "resync") refresh(); });
  safeDraw();
  const timer = setInterval(() => { if (data.run.status === "Running" || data.run.status === "Queued") safeDraw(true); }, 1000);
  return () => { unsub(); clearInterval(timer); };
}
