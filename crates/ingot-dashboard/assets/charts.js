// Charts: small inline SVGs drawn from the engine's stats endpoints, with no
// library. A function's activity (runs per bucket by how they ended, the
// failure rate, SDK call time p50/p99) over the last hour or day, and the
// queue's backlog and claim lag for the Runs page. Every mark carries the
// numbers it draws as data attributes and a <title>, so a hover shows them
// and the browser tests can check them against the API.

import { api, debounce } from "./api.js";
import { h, duration, count as fmtCount } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 150;
const MARGIN = { left: 44, right: 10, top: 10, bottom: 24 };
const WINDOWS = [["1h", "1 hour"], ["1d", "1 day"]];
const ENDED = [["completed", "Completed"], ["failed", "Failed"], ["cancelled", "Cancelled"]];
/** How often a chart reads again when nothing told it to. */
const POLL_MS = 10_000;

// The window last chosen, kept while the dashboard is open.
let chosenWindow = "1h";

/** Builds an SVG element: svg("rect", {x: 1}, child...). */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const title = (text) => svg("title", null, text);

/**
 * Calls `fn` (debounced) when any of `els` changes width, so charts drawn
 * to a measured width are drawn again (after the stylesheet applies, on a
 * resize); returns the observer.
 */
function widthWatch(els, fn) {
  const widths = new Map();
  const later = debounce(fn, 100);
  const ro = new ResizeObserver((entries) => {
    let changed = false;
    for (const e of entries) {
      const w = Math.round(e.contentRect.width);
      if (widths.get(e.target) !== w) { widths.set(e.target, w); changed = true; }
    }
    if (changed) later();
  });
  for (const el of els) ro.observe(el);
  return ro;
}

/** A point's radius for buckets `bw` wide: smaller when they crowd. */
const radius = (bw) => Math.max(1.5, Math.min(3, bw / 2.5));

function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v` (at least `floor`). */
function niceMax(v, floor = 1) {
  if (!(v > floor)) return floor;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** A y-axis label in ms: "250ms", "1s", "2.5s". */
function axisMs(ms) {
  return ms < 1000 ? `${ms}ms` : `${+(ms / 1000).toFixed(1)}s`;
}

/** The x-axis labels of a window: every 15 minutes of an hour, every 6 hours of a day. */
function xTicks(buckets, win) {
  const every = win === "1d" ? 6 * 60 : 15;
  const out = [];
  buckets.forEach((b, i) => {
    const d = new Date(b.start);
    if ((d.getHours() * 60 + d.getMinutes()) % every === 0) out.push([i, hhmm(b.start)]);
  });
  return out;
}

/**
 * The frame of a chart: an SVG `width` wide with horizontal grid lines and
 * y labels at `yTicks` ([value, label]) over 0..`yMax`, and x labels at
 * `xLabels` ([bucket index, label]) for `n` buckets. Returns the SVG and the
 * scales.
 */
function frame(width, n, yMax, yTicks, xLabels, attrs) {
  const pw = Math.max(width - MARGIN.left - MARGIN.right, 60);
  const ph = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (i) => MARGIN.left + (i / n) * pw;
  const y = (v) => MARGIN.top + ph - (v / yMax) * ph;
  const root = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", ...attrs });
  const grid = svg("g", { class: "grid" });
  const axis = svg("g", { class: "axis" });
  for (const [v, label] of yTicks) {
    grid.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + pw, y1: y(v), y2: y(v) }));
    axis.append(svg("text", { x: MARGIN.left - 6, y: y(v) + 3.5, "text-anchor": "end" }, label));
  }
  axis.append(svg("line", { class: "base", x1: MARGIN.left, x2: MARGIN.left + pw, y1: y(0), y2: y(0) }));
  for (const [i, label] of xLabels) {
    axis.append(svg("line", { class: "tick", x1: x(i), x2: x(i), y1: y(0), y2: y(0) + 4 }));
    axis.append(svg("text", { x: x(i), y: HEIGHT - 6, "text-anchor": "middle" }, label));
  }
  root.append(grid, axis);
  return { root, x, y, bw: pw / n };
}

/** Runs per bucket: stacked bars by how they ended, and a mark for the runs started. */
function runsChart(stats, width) {
  const b = stats.buckets;
  const ended = (k) => b.reduce((s, x) => s + x[k], 0);
  const started = ended("started");
  const max = niceMax(Math.max(...b.map((x) => Math.max(x.completed + x.failed + x.cancelled, x.started))));
  const ticks = [[0, "0"], [max, fmtCount(max)]];
  if (max >= 2 && max % 2 === 0) ticks.splice(1, 0, [max / 2, fmtCount(max / 2)]);
  const per = stats.window === "1d" ? "15 min" : "minute";
  const { root, x, y, bw } = frame(width, b.length, max, ticks, xTicks(b, stats.window), {
    "data-testid": "chart-runs", "data-window": stats.window, "data-buckets": b.length, "data-started": started,
    "data-completed": ended("completed"), "data-failed": ended("failed"), "data-cancelled": ended("cancelled"),
    "aria-label": `Runs per ${per} by status`,
  });
  const bars = svg("g", { class: "bars" });
  const gap = bw > 4 ? 1 : 0;
  b.forEach((bucket, i) => {
    let base = 0;
    for (const [key, label] of ENDED) {
      const n = bucket[key];
      if (!n) continue;
      bars.append(svg("rect", { class: `bar ${key}`, x: x(i) + gap / 2, width: Math.max(bw - gap, 1), y: y(base + n), height: y(base) - y(base + n),
        "data-status": label, "data-count": n, "data-start": bucket.start }, title(`${hhmm(bucket.start)} · ${n} ${label.toLowerCase()}`)));
      base += n;
    }
  });
  // Runs started: a mark across each bucket that started any, over its bars.
  const marks = svg("g", { class: "started" });
  b.forEach((bucket, i) => {
    if (!bucket.started) return;
    marks.append(svg("line", { class: "started-mark", x1: x(i) - 1, x2: x(i) + bw + 1, y1: y(bucket.started), y2: y(bucket.started),
      "data-count": bucket.started, "data-start": bucket.start }, title(`${hhmm(bucket.start)} · ${bucket.started} started`)));
  });
  root.append(bars, marks);
  const legend = h("div.legend",
    h("span", h("i.key.started-key"), `Started ${fmtCount(started)}`),
    ENDED.map(([key, label]) => h("span", h(`i.key.${key}`), `${label} ${fmtCount(ended(key))}`)));
  return { svg: root, legend, hasData: started + ended("completed") + ended("failed") + ended("cancelled") > 0 };
}

/** The failure rate of the runs that ended in each bucket. */
function failureChart(stats, width) {
  const b = stats.buckets;
  const { root, x, y, bw } = frame(width, b.length, 1, [[0, "0%"], [0.5, "50%"], [1, "100%"]], xTicks(b, stats.window), {
    "data-testid": "chart-failure", "data-window": stats.window, "data-buckets": b.length,
    "data-rate": stats.failure_rate ?? "", "aria-label": "Failure rate",
  });
  const points = [];
  b.forEach((bucket, i) => {
    const ended = bucket.completed + bucket.failed + bucket.cancelled;
    if (ended) points.push({ i, bucket, ended, rate: bucket.failed / ended });
  });
  const cx = (i) => x(i) + bw / 2;
  if (points.length > 1) root.append(svg("path", { class: "line failure", d: points.map((p, k) => `${k ? "L" : "M"}${cx(p.i)},${y(p.rate)}`).join("") }));
  for (const p of points) {
    root.append(svg("circle", { class: "point failure", cx: cx(p.i), cy: y(p.rate), r: radius(bw), "data-start": p.bucket.start,
      "data-failed": p.bucket.failed, "data-ended": p.ended, "data-rate": p.rate },
    title(`${hhmm(p.bucket.start)} · ${Math.round(p.rate * 100)}% failed (${p.bucket.failed} of ${p.ended})`)));
  }
  return { svg: root, hasData: points.length > 0 };
}

/** SDK call time per bucket: p50 and p99. */
function durationChart(stats, width) {
  const b = stats.buckets;
  const max = niceMax(Math.max(...b.map((x) => x.p99_ms ?? 0)), 10);
  const { root, x, y, bw } = frame(width, b.length, max, [[0, "0"], [max / 2, axisMs(max / 2)], [max, axisMs(max)]], xTicks(b, stats.window), {
    "data-testid": "chart-duration", "data-window": stats.window, "data-buckets": b.length,
    "data-calls": b.reduce((s, x) => s + x.calls, 0), "aria-label": "Step duration p50 and p99",
  });
  const withCalls = b.map((bucket, i) => ({ i, bucket })).filter((p) => p.bucket.calls > 0);
  const cx = (i) => x(i) + bw / 2;
  for (const key of ["p99", "p50"]) {
    if (withCalls.length > 1) root.append(svg("path", { class: `line ${key}`, d: withCalls.map((p, k) => `${k ? "L" : "M"}${cx(p.i)},${y(p.bucket[key + "_ms"])}`).join("") }));
    for (const p of withCalls) {
      const v = p.bucket[key + "_ms"];
      root.append(svg("circle", { class: `point ${key}`, cx: cx(p.i), cy: y(v), r: radius(bw) - 0.5, "data-start": p.bucket.start, "data-ms": v, "data-calls": p.bucket.calls },
        title(`${hhmm(p.bucket.start)} · ${key} ${duration(v)} over ${p.bucket.calls} call${p.bucket.calls === 1 ? "" : "s"}`)));
    }
  }
  const legend = h("div.legend", h("span", h("i.key.p50"), "p50"), h("span", h("i.key.p99"), "p99"));
  return { svg: root, legend, hasData: withCalls.length > 0 };
}

const pct = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(r > 0 && r < 0.1 ? 1 : 0)}%`);

/**
 * A function's activity card: the three charts with a 1 hour / 1 day
 * toggle. `refresh()` reads again (debounced; call it when a run of the
 * function changes); it also reads every POLL_MS. `stop()` ends that.
 */
export function functionCharts(slug) {
  let win = chosenWindow;
  let last = null;
  const note = h("span.muted.small", { "data-testid": "charts-note" });
  const toggle = h("div.segmented", { role: "group", "aria-label": "Window", "data-testid": "charts-window" },
    WINDOWS.map(([w, label]) => h("button", { type: "button", class: w === win ? "on" : "", "data-window": w,
      onclick: (e) => {
        win = chosenWindow = w;
        for (const b of toggle.children) b.classList.toggle("on", b === e.currentTarget);
        load();
      } }, label)));
  const slots = {
    runs: h("div.chart", { "data-chart": "runs" }),
    failure: h("div.chart", { "data-chart": "failure" }),
    duration: h("div.chart", { "data-chart": "duration" }),
  };
  const el = h("div.card.charts-card", { "data-testid": "function-charts" },
    h("div.card-head", h("h2", "Activity"), h("span.actions", note, toggle)),
    h("div.charts", Object.values(slots)));

  const fill = (slot, head, value, chart, emptyText) => {
    const width = Math.floor(slot.clientWidth) || 340;
    const c = chart(last, width);
    slot.dataset.state = c.hasData ? "drawn" : "empty";
    slot.replaceChildren(h("div.chart-head", h("span.chart-title", head), h("span.chart-value", value)),
      ...(c.hasData ? [c.svg, c.legend].filter(Boolean) : [h("div.chart-empty", { "data-testid": "chart-empty" }, emptyText)]));
  };
  const draw = () => {
    if (!last) return;
    const span = last.window === "1d" ? "day" : "hour";
    const per = last.window === "1d" ? "15 min" : "minute";
    const ended = last.buckets.reduce((s, b) => s + b.completed + b.failed + b.cancelled, 0);
    fill(slots.runs, `Runs per ${per}`, `${fmtCount(last.buckets.reduce((s, b) => s + b.started, 0))} started`, runsChart, `No runs in the last ${span}`);
    fill(slots.failure, "Failure rate", ended ? `${pct(last.failure_rate)} of ${fmtCount(ended)}` : "—", failureChart, `No run ended in the last ${span}`);
    fill(slots.duration, "Step duration", last.p50_ms === null ? "—" : `p50 ${duration(last.p50_ms)} · p99 ${duration(last.p99_ms)}`, durationChart, `No SDK calls in the last ${span}`);
    note.textContent = last.truncated ? "From the newest 20,000 runs and calls" : "";
  };
  const load = async () => {
    const want = win;
    try {
      const stats = await api.functionStats(slug, want);
      if (want !== win) return;
      last = stats;
      el.dataset.window = stats.window;
      el.dataset.loadedAt = Date.now();
      draw();
    } catch (e) {
      note.textContent = `Charts: ${e.message}`;
    }
  };
  const resize = widthWatch(Object.values(slots), draw);
  const timer = setInterval(load, POLL_MS);
  return { el, load, refresh: debounce(load, 400), stop: () => { clearInterval(timer); resize.disconnect(); } };
}

/**
 * A sparkline of `value(sample)` over `samples`, `width` wide, with one hover
 * target per sample titled with `show(value)`.
 */
function sparkline(samples, value, show, label, width, testid) {
  const height = 36;
  const n = samples.length;
  const max = Math.max(1, ...samples.map(value));
  const x = (i) => (n > 1 ? (i / (n - 1)) * (width - 4) + 2 : width / 2);
  const y = (v) => height - 3 - (v / max) * (height - 6);
  const line = samples.map((s, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(value(s)).toFixed(1)}`).join("");
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, "data-testid": testid, "data-samples": n, "data-max": max });
  if (n > 1) root.append(svg("path", { class: "spark-area", d: `${line}L${x(n - 1)},${height - 3}L${x(0)},${height - 3}Z` }));
  root.append(svg("path", { class: "spark-line", d: n > 1 ? line : `M${x(0) - 2},${y(value(samples[0]))}h4` }));
  const slot = n > 1 ? (width - 4) / (n - 1) : width;
  samples.forEach((s, i) => {
    root.append(svg("rect", { class: "hit", x: x(i) - slot / 2, y: 0, width: slot, height, "data-at": s.at, "data-value": value(s) },
      title(`${hhmm(s.at)} · ${label.toLowerCase()} ${show(value(s))}`)));
  });
  return root;
}

/**
 * The Runs page's queue strip: the backlog (items due, waiting for a worker)
 * and the longest claim lag per 10 s sample over the last hour, and the
 * queue now. Reads every POLL_MS and on `refresh()`.
 */
export function queueStrip() {
  const backlog = h("div.spark", { "data-spark": "backlog" });
  const lag = h("div.spark", { "data-spark": "lag" });
  const now = h("span.queue-now", { "data-testid": "queue-now" });
  const range = h("span.muted.small", { "data-testid": "queue-range" });
  const el = h("div.card.queue-strip", { "data-testid": "queue-strip" },
    h("div.queue-label", h("strong", "Queue"), range), backlog, lag, now);
  let last = null;
  const draw = () => {
    if (!last) return;
    const s = last.samples;
    for (const [slot, head, value, testid, show] of [
      [backlog, "Backlog", (x) => x.due, "spark-backlog", (v) => fmtCount(v)],
      [lag, "Claim lag", (x) => x.max_lag_ms, "spark-lag", (v) => duration(v)],
    ]) {
      const width = Math.max(Math.floor(slot.clientWidth) - 2, 120) || 220;
      const peak = s.length ? Math.max(...s.map(value)) : null;
      slot.replaceChildren(h("div.spark-head", h("span", head), h("span.muted", peak === null ? "" : `peak ${show(peak)}`)),
        s.length ? sparkline(s, value, show, head, width, testid) : h("div.spark-empty", { "data-testid": testid + "-empty" }, "No samples yet (one every 10 s)"));
    }
    now.replaceChildren(h("span", h("strong", { "data-testid": "queue-due" }, fmtCount(last.due)), " due now"),
      h("span.muted", h("span", { "data-testid": "queue-future" }, fmtCount(last.future)), " scheduled later"));
    range.textContent = s.length ? `${hhmm(s[0].at)}–${hhmm(s[s.length - 1].at)}` : "";
  };
  const load = async () => {
    try {
      last = await api.queueStats();
      el.dataset.loadedAt = Date.now();
      draw();
    } catch (e) {
      now.textContent = `Queue: ${e.message}`;
    }
  };
  const resize = widthWatch([backlog, lag], draw);
  const timer = setInterval(load, POLL_MS);
  return { el, load, refresh: debounce(load, 1000), stop: () => { clearInterval(timer); resize.disconnect(); } };
}
