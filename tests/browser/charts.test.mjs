// The dashboard's charts in headless Chromium (playwright-core over Debian's
// /usr/bin/chromium). Started by crates/ingot-cli/tests/browser.rs against an
// `ingot dev` of its own with the JS SDK test app, so every run the charts
// count is one this script started. Same environment as dashboard.test.mjs:
// INGOT_URL, APP_ID, ARTIFACTS_DIR, CHROMIUM.
//
// Each check reads what the SVG drew (bars, points, sparkline samples: their
// data attributes) and compares it with the counts this script knows and
// with the stats endpoints the charts are drawn from.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.INGOT_URL || "http://127.0.0.1:8288";
const APP_ID = process.env.APP_ID || "e2e-js-v4";
const ARTIFACTS = process.env.ARTIFACTS_DIR || join(process.cwd(), "..", "artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;
const slug = (fn) => `${APP_ID}-${fn}`;

let context;
let profile;
const pageErrors = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "ingot-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  context.setDefaultTimeout(TIMEOUT);
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  assert.deepEqual(pageErrors, [], "no uncaught errors in the pages");
});

async function newPage() {
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error" && !/EventSource|ERR_ABORTED|net::/.test(m.text())) pageErrors.push(`${page.url()}: ${m.text()}`); });
  return page;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

async function api(method, path, body) {
  const res = await fetch(BASE + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Waits until the function has exactly `n` runs with `status`. */
async function waitRuns(fn, status, n) {
  const until = Date.now() + TIMEOUT;
  for (;;) {
    const res = await api("GET", `/v1/runs?function=${slug(fn)}&status=${status}&limit=100`);
    if (res.data.length === n) return res.data;
    assert.ok(Date.now() < until, `${fn}: ${res.data.length} ${status} runs, want ${n}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const sum = (buckets, key) => buckets.reduce((s, b) => s + b[key], 0);

/** What the charts of a function page drew, read from their SVGs. */
async function drawn(page) {
  return page.evaluate(() => {
    const runs = document.querySelector("[data-testid=chart-runs]");
    const num = (el, k) => Number(el.getAttribute(k));
    const points = (cls) => [...document.querySelectorAll(`[data-testid=chart-duration] circle.${cls}`)]
      .map((c) => ({ start: num(c, "data-start"), ms: num(c, "data-ms"), calls: num(c, "data-calls") }));
    return {
      window: runs?.getAttribute("data-window"),
      buckets: runs ? num(runs, "data-buckets") : 0,
      totals: runs ? Object.fromEntries(["started", "completed", "failed", "cancelled"].map((k) => [k, num(runs, "data-" + k)])) : null,
      bars: [...document.querySelectorAll("[data-testid=chart-runs] rect.bar")]
        .map((r) => ({ start: num(r, "data-start"), status: r.dataset.status.toLowerCase(), count: num(r, "data-count") })),
      started: [...document.querySelectorAll("[data-testid=chart-runs] line.started-mark")]
        .map((l) => ({ start: num(l, "data-start"), count: num(l, "data-count") })),
      failure: [...document.querySelectorAll("[data-testid=chart-failure] circle.point")]
        .map((c) => ({ start: num(c, "data-start"), failed: num(c, "data-failed"), ended: num(c, "data-ended") })),
      p50: points("p50"),
      p99: points("p99"),
      empty: document.querySelectorAll("[data-testid=function-charts] [data-testid=chart-empty]").length,
      values: [...document.querySelectorAll("[data-testid=function-charts] .chart-value")].map((e) => e.textContent),
      xLabels: [...document.querySelectorAll("[data-testid=chart-runs] .axis text")].map((t) => t.textContent),
    };
  });
}

/** The marks the stats endpoint says the charts should draw. */
function expected(stats) {
  const bars = [];
  const started = [];
  const failure = [];
  const p50 = [];
  const p99 = [];
  for (const b of stats.buckets) {
    if (b.started) started.push({ start: b.start, count: b.started });
    for (const status of ["completed", "failed", "cancelled"]) if (b[status]) bars.push({ start: b.start, status, count: b[status] });
    const ended = b.completed + b.failed + b.cancelled;
    if (ended) failure.push({ start: b.start, failed: b.failed, ended });
    if (b.calls) {
      p50.push({ start: b.start, ms: b.p50_ms, calls: b.calls });
      p99.push({ start: b.start, ms: b.p99_ms, calls: b.calls });
    }
  }
  return { bars, started, failure, p50, p99 };
}

/**
 * Waits until the function page's charts show `want` (totals), then checks
 * every mark against the stats endpoint for the same window.
 */
async function checkCharts(page, fn, window, want) {
  await page.waitForFunction(([w, t]) => {
    const el = document.querySelector("[data-testid=chart-runs]");
    return el && el.dataset.window === w && ["started", "completed", "failed", "cancelled"].every((k) => Number(el.getAttribute("data-" + k)) === t[k]);
  }, [window, want]);
  const stats = (await api("GET", `/v1/functions/${slug(fn)}/stats?window=${window}`)).data;
  const got = await drawn(page);
  const exp = expected(stats);
  assert.equal(got.buckets, window === "1d" ? 96 : 60);
  assert.deepEqual(got.totals, want, `${fn}: the runs chart's totals`);
  for (const k of ["started", "completed", "failed", "cancelled"]) assert.equal(sum(stats.buckets, k), want[k], `${fn}: the endpoint's ${k}`);
  assert.deepEqual(got.bars, exp.bars, `${fn}: one bar per bucket and status, as the endpoint counts`);
  assert.equal(got.bars.reduce((s, b) => s + b.count, 0), want.completed + want.failed + want.cancelled);
  assert.deepEqual(got.started, exp.started, `${fn}: a started mark per bucket that started runs`);
  assert.equal(got.started.reduce((s, m) => s + m.count, 0), want.started);
  assert.deepEqual(got.failure, exp.failure, `${fn}: a failure-rate point per bucket with ended runs`);
  assert.deepEqual(got.p50, exp.p50, `${fn}: p50 points`);
  assert.deepEqual(got.p99, exp.p99, `${fn}: p99 points`);
  assert.ok(got.xLabels.some((l) => /^\d\d:\d\d$/.test(l)), `time labels on the x axis: ${got.xLabels}`);
  return { stats, got };
}

test("a function's charts draw its runs by status, failure rate and call times, for 1 hour and 1 day, live", async () => {
  // 6 runs that complete, 2 that fail, 3 that sleep of which 2 are cancelled.
  await api("POST", "/v1/events", Array.from({ length: 6 }, (_, i) => ({ name: "e2e/hello", data: { name: `chart ${i}` } })));
  await api("POST", "/v1/events", [{ name: "e2e/nonretriable", data: {} }, { name: "e2e/nonretriable", data: {} }]);
  await api("POST", "/v1/events", Array.from({ length: 3 }, (_, i) => ({ name: "e2e/cancellable", data: { i } })));
  await waitRuns("hello", "Completed", 6);
  await waitRuns("non-retriable", "Failed", 2);
  const sleeping = await waitRuns("cancellable", "Running", 3);
  for (const r of sleeping.slice(0, 2)) await api("DELETE", `/v1/runs/${r.run_id}`);
  await waitRuns("cancellable", "Cancelled", 2);

  const page = await newPage();
  await page.goto(BASE + `/functions/${slug("hello")}`);
  const { got } = await checkCharts(page, "hello", "1h", { started: 6, completed: 6, failed: 0, cancelled: 0 });
  assert.ok(got.p50.reduce((s, p) => s + p.calls, 0) >= 6, "at least one SDK call per run");
  assert.equal(got.empty, 0);
  assert.match(got.values[0], /^6 started$/);
  assert.match(got.values[1], /^0% of 6$/);
  assert.match(got.values[2], /^p50 .+ · p99 .+$/);
  assert.match(await page.getByTestId("function-charts").locator(".legend").first().innerText(), /Completed 6/);
  await shot(page, "charts-01-function-1h");

  // A day: 96 buckets of 15 minutes, the same runs.
  await page.getByTestId("charts-window").locator("[data-window='1d']").click();
  await checkCharts(page, "hello", "1d", { started: 6, completed: 6, failed: 0, cancelled: 0 });
  assert.match((await drawn(page)).values[0], /^6 started$/);
  assert.match(await page.locator("[data-chart=runs] .chart-title").innerText(), /Runs per 15 min/);
  await shot(page, "charts-02-function-1d");
  await page.getByTestId("charts-window").locator("[data-window='1h']").click();
  await checkCharts(page, "hello", "1h", { started: 6, completed: 6, failed: 0, cancelled: 0 });

  // Live: three more runs show up without a reload.
  await page.evaluate(() => { window.__notReloaded = true; });
  await api("POST", "/v1/events", Array.from({ length: 3 }, (_, i) => ({ name: "e2e/hello", data: { name: `live ${i}` } })));
  await waitRuns("hello", "Completed", 9);
  await checkCharts(page, "hello", "1h", { started: 9, completed: 9, failed: 0, cancelled: 0 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was not reloaded");
  await shot(page, "charts-03-function-live");

  // Failures: every ended run failed.
  await page.goto(BASE + `/functions/${slug("non-retriable")}`);
  await checkCharts(page, "non-retriable", "1h", { started: 2, completed: 0, failed: 2, cancelled: 0 });
  const failed = await drawn(page);
  assert.match(failed.values[1], /^100% of 2$/);
  assert.deepEqual(failed.failure.map((p) => p.failed / p.ended), failed.failure.map(() => 1));
  const rate = (await api("GET", `/v1/functions/${slug("non-retriable")}/stats?window=1h`)).data.failure_rate;
  assert.equal(rate, 1);
  await shot(page, "charts-04-function-failed");

  // Cancelled runs, and one still sleeping: started 3, ended 2.
  await page.goto(BASE + `/functions/${slug("cancellable")}`);
  await checkCharts(page, "cancellable", "1h", { started: 3, completed: 0, failed: 0, cancelled: 2 });
  assert.match((await drawn(page)).values[1], /^0% of 2$/);
  await shot(page, "charts-05-function-cancelled");

  // A function that never ran: each chart says so instead of drawing.
  await page.goto(BASE + `/functions/${slug("memo")}`);
  await page.locator("[data-testid=function-charts] [data-chart=runs][data-state=empty]").waitFor();
  const none = await drawn(page);
  assert.equal(none.empty, 3);
  assert.equal(none.bars.length, 0);
  assert.match(await page.getByTestId("function-charts").innerText(), /No runs in the last hour/);
  await shot(page, "charts-06-function-empty");
  await page.close();
});

test("the Runs page draws the queue's backlog and claim lag from its 10-second samples, live", async () => {
  const page = await newPage();
  await page.goto(BASE + "/runs");
  await page.getByTestId("queue-strip").waitFor();
  // The engine samples every 10 s and the strip reads every 10 s: without a
  // reload it comes to show at least two samples.
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=spark-backlog]")?.dataset.samples) >= 2, null, { timeout: 40_000 });
  const read = () => page.evaluate(() => {
    const hits = (id) => [...document.querySelectorAll(`[data-testid=${id}] rect.hit`)].map((r) => [Number(r.dataset.at), Number(r.dataset.value)]);
    const path = document.querySelector("[data-testid=spark-backlog] .spark-line").getAttribute("d");
    return {
      backlog: hits("spark-backlog"), lag: hits("spark-lag"), vertices: (path.match(/[ML]/g) || []).length,
      future: Number(document.querySelector("[data-testid=queue-future]").textContent.replace(/,/g, "")),
    };
  });
  const got = await read();
  const q = (await api("GET", "/v1/queue/stats")).data;
  // What the page drew is what the endpoint had when the page read it: a prefix
  // of the samples now (one more may have been taken since).
  assert.ok(q.samples.length - got.backlog.length <= 1 && got.backlog.length <= q.samples.length, `${got.backlog.length} drawn, ${q.samples.length} sampled`);
  assert.deepEqual(got.backlog, q.samples.slice(0, got.backlog.length).map((s) => [s.at, s.due]));
  assert.deepEqual(got.lag, q.samples.slice(0, got.lag.length).map((s) => [s.at, s.max_lag_ms]));
  assert.equal(got.vertices, got.backlog.length, "one vertex of the line per sample");
  assert.equal(q.every_ms, 10_000);
  // The one cancellable run the first test left sleeping is an item due later.
  assert.ok(q.future >= 1, `a sleeping run is a future item: ${JSON.stringify(q)}`);
  await page.waitForFunction((f) => Number(document.querySelector("[data-testid=queue-future]").textContent) === f, q.future);
  assert.match(await page.getByTestId("queue-strip").innerText(), /Backlog[\s\S]*Claim lag[\s\S]*due now[\s\S]*scheduled later/);
  await shot(page, "charts-07-runs-queue");
  await page.close();
});
