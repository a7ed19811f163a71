// Headless Chromium tests of the dashboard, driven by playwright-core over
// Debian's /usr/bin/chromium. Started by crates/ingot-cli/tests/browser.rs,
// which runs `ingot dev` with the official JS SDK test app
// (tests/sdk-apps/js/app.cjs) and passes:
//
//   INGOT_URL        the engine, e.g. http://127.0.0.1:41234
//   APP_ID           the app's id (function slugs are `${APP_ID}-<fn id>`)
//   ARTIFACTS_DIR    where screenshots go (tests/artifacts)
//   CHROMIUM         the browser binary (default /usr/bin/chromium)
//
// Every step saves a screenshot, so a failure leaves a picture behind.

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

/** Sends an event through the Events page's dialog. */
async function sendFromUi(page, event) {
  await page.getByTestId("send-event-open").click();
  await page.getByTestId("send-event-json").fill(JSON.stringify(event, null, 2));
  await page.getByTestId("send-event-submit").click();
  await page.getByTestId("send-event").waitFor({ state: "detached" });
}

async function runStatus(page) {
  return page.locator(".page-head h1 .badge").getAttribute("data-status");
}

test("every page opens and shows the synced app", async () => {
  const page = await newPage();
  await page.goto(BASE + "/apps");
  const card = page.locator(`[data-testid=app-card][data-app="${APP_ID}"]`);
  await card.waitFor();
  assert.match(await card.getByTestId("app-sdk").innerText(), /JavaScript v?\d+\./);
  assert.match(await card.innerText(), /Synced/);
  await shot(page, "01-apps");
  await card.getByTestId("resync").click();
  await page.getByText("Resynced").waitFor();

  await page.locator("[data-nav=functions]").click();
  await page.locator(`[data-testid=function-card][data-slug="${slug("hello")}"]`).waitFor();
  assert.ok(await page.getByTestId("function-card").count() >= 10);
  await shot(page, "02-functions");

  await page.locator(`[data-testid=function-card][data-slug="${slug("hello")}"] .name`).click();
  await page.waitForURL(`**/functions/${slug("hello")}`);
  await page.getByText("e2e/hello").first().waitFor();
  await shot(page, "03-function");

  await page.locator("[data-nav=events]").click();
  await page.waitForURL("**/events");
  await page.locator(".page-head h1", { hasText: "Events" }).waitFor();
  await page.locator("[data-nav=runs]").click();
  await page.waitForURL("**/runs");
  await page.locator(".page-head h1", { hasText: "Runs" }).waitFor();
  await page.locator("#live-indicator.on").waitFor();
  await page.close();
});

test("an event sent from the UI starts a run that appears and finishes live", async () => {
  const runsPage = await newPage();
  await runsPage.goto(BASE + "/runs");
  await runsPage.locator("#live-indicator.on").waitFor();
  await runsPage.evaluate(() => { window.__notReloaded = true; });

  const eventsPage = await newPage();
  await eventsPage.goto(BASE + "/events");
  await sendFromUi(eventsPage, { name: "e2e/sleep", data: { from: "browser" } });
  // The event shows up in the stream with the run it started.
  const row = eventsPage.locator('tr[data-name="e2e/sleep"]').first();
  await row.locator(".run-dot").waitFor();
  await shot(eventsPage, "04-events");

  // Meanwhile the runs page, never reloaded, shows the run running, then completed.
  const run = runsPage.locator("tr[data-run-id]", { hasText: "Sleeper" }).first();
  await run.and(runsPage.locator('[data-status="Running"]')).waitFor();
  await shot(runsPage, "05-runs-live-running");
  await run.and(runsPage.locator('[data-status="Completed"]')).waitFor({ timeout: 15_000 });
  assert.equal(await runsPage.evaluate(() => window.__notReloaded), true, "the runs page was not reloaded");
  await shot(runsPage, "06-runs-live-completed");

  // Its timeline: the sleep as a bar, the run completed.
  await run.click();
  await runsPage.waitForURL("**/runs/*");
  await runsPage.getByTestId("timeline").waitFor();
  const nap = runsPage.locator('[data-testid=timeline-row][data-name="nap"]');
  await nap.waitFor();
  assert.equal(await nap.getAttribute("data-status"), "COMPLETED");
  assert.equal(await runStatus(runsPage), "Completed");
  await shot(runsPage, "07-run-timeline-sleep");
  await eventsPage.close();
  await runsPage.close();
});

test("a step's output and the run's event show in the run page", async () => {
  const page = await newPage();
  const { ids } = await api("POST", "/v1/events", { name: "e2e/memo", data: { n: 3 } });
  await page.goto(BASE + "/events/" + ids[0]);
  const link = page.locator("a[href^='/runs/']").first();
  await link.waitFor();
  await shot(page, "08-event");
  await link.click();
  await page.getByTestId("timeline").waitFor();
  await page.locator(".page-head h1 .badge[data-status=Completed]").waitFor();
  const b = page.locator('[data-testid=timeline-row][data-name="b"]');
  await b.click();
  await page.getByTestId("span-detail").getByText('"B"').waitFor();
  assert.match(await page.getByTestId("event-payload").innerText(), /"n": 3|"n"/);
  await shot(page, "09-run-step-output");
  await page.close();
});

test("a sleeping run is cancelled from its page", async () => {
  const page = await newPage();
  await page.goto(BASE + "/events");
  await sendFromUi(page, { name: "e2e/cancellable", data: {} });
  const dot = page.locator('tr[data-name="e2e/cancellable"] .run-dot').first();
  await dot.waitFor();
  await dot.click();
  await page.getByTestId("timeline").waitFor();
  await page.locator('[data-testid=timeline-row][data-name="long"][data-status="WAITING"]').waitFor();
  await shot(page, "10-run-sleeping");
  await page.getByTestId("cancel-run").click();
  await page.locator(".page-head h1 .badge[data-status=Cancelled]").waitFor();
  await page.locator('[data-testid=timeline-row][data-name="long"][data-status="CANCELLED"]').waitFor();
  await shot(page, "11-run-cancelled");
  await page.close();
});

test("a failed run is rerun from the start", async () => {
  const page = await newPage();
  const { ids } = await api("POST", "/v1/events", { name: "e2e/nonretriable", data: {} });
  await page.goto(BASE + "/events/" + ids[0]);
  const link = page.locator("a[href^='/runs/']").first();
  await link.waitFor();
  await link.click();
  await page.locator(".page-head h1 .badge[data-status=Failed]").waitFor();
  await page.getByTestId("error-box").first().waitFor();
  await page.locator('[data-testid=timeline-row][data-name="doomed"]').click();
  await page.getByTestId("span-detail").getByText("nope").first().waitFor();
  await shot(page, "12-run-failed");
  const first = page.url();
  await page.getByTestId("rerun").click();
  await page.waitForURL((u) => u.href !== first && u.pathname.startsWith("/runs/"));
  await page.locator(".page-head h1 .badge[data-status=Failed]").waitFor();
  // Same event, new run.
  const rerunId = page.url().split("/").pop();
  const runs = await api("GET", `/v1/events/${ids[0]}/runs`);
  assert.ok(runs.data.some((r) => r.run_id === rerunId), "the rerun belongs to the same event");
  assert.equal(runs.data.length, 2);
  await shot(page, "13-rerun");
  await page.close();
});

test("bulk cancel, pause and invoke", async () => {
  const page = await newPage();
  await api("POST", "/v1/events", [{ name: "e2e/cancellable", data: { i: 1 } }, { name: "e2e/cancellable", data: { i: 2 } }]);
  await page.goto(BASE + `/runs?status=Running&function=${slug("cancellable")}`);
  await page.locator("tr[data-run-id]").nth(1).waitFor();
  await page.getByTestId("bulk-cancel-open").click();
  await page.getByTestId("bulk-function").selectOption(slug("cancellable"));
  await shot(page, "14-bulk-cancel");
  await page.getByTestId("bulk-cancel-submit").click();
  await page.getByText(/Cancelled \d+ runs?/).waitFor();
  await page.locator("tr[data-run-id]").first().waitFor({ state: "detached" });
  const left = await api("GET", `/v1/runs?status=Running&function=${slug("cancellable")}`);
  assert.equal(left.data.length, 0);

  await page.goto(BASE + `/functions/${slug("hello")}`);
  await page.getByTestId("pause").click();
  await page.locator(".page-head .badge[data-status=paused]").waitFor();
  const fns = await api("GET", "/v1/functions");
  assert.equal(fns.data.find((f) => f.slug === slug("hello")).paused, true);
  await shot(page, "15-function-paused");
  // An event the paused function skipped says so.
  const skipped = await api("POST", "/v1/events", { name: "e2e/hello", data: { name: "Paused" } });
  await page.goto(BASE + "/events/" + skipped.ids[0]);
  assert.match(await page.getByTestId("skip-reason").innerText(), /Hello: function paused/);
  await page.goto(BASE + `/functions/${slug("hello")}`);
  await page.getByTestId("resume").click();
  await page.getByTestId("pause").waitFor();

  await page.getByTestId("invoke-open").click();
  await page.getByTestId("invoke-json").fill('{"data": {"name": "Invoker"}}');
  await page.getByTestId("invoke-submit").click();
  await page.locator("tr[data-run-id][data-status=Completed]").first().waitFor();
  await shot(page, "16-function-invoked");
  await page.close();
});

// ---- issue 14: attempts, paging, search, rerun from a step, send event ----

test("a retrying step shows each attempt's error and when the next one is due; cancelled, it keeps them", async () => {
  const page = await newPage();
  const { ids } = await api("POST", "/v1/events", { name: "e2e/retrier", data: { to: "https://receiver.example/hook" } });
  await page.goto(BASE + "/events/" + ids[0]);
  const link = page.locator("a[href^='/runs/']").first();
  await link.waitFor();
  await link.click();
  await page.getByTestId("timeline").waitFor();
  // While it retries, the step's row says so, with the time of the next try.
  const label = page.getByTestId("retry-label").first();
  await label.waitFor();
  assert.match(await label.innerText(), /^Retrying · next attempt (in \d+(ms|s)|now)$/);
  // Two failed attempts, each with its own error, on its row and in the list.
  await page.locator('[data-testid=timeline-row][data-name="Attempt 2"]').waitFor();
  const deliver = page.locator('[data-testid=timeline-row][data-name="deliver"]');
  await deliver.click();
  const detail = page.getByTestId("span-detail");
  await detail.getByTestId("attempt-error").nth(1).waitFor();
  const errors = await detail.getByTestId("attempt-error").allInnerTexts();
  assert.match(errors[0], /receiver answered 503 on attempt 0/);
  assert.match(errors[1], /receiver answered 503 on attempt 1/);
  assert.match(await page.locator('[data-testid=timeline-row][data-name="Attempt 1"]').innerText(), /receiver answered 503 on attempt 0/);
  const labels = await detail.getByTestId("attempt").allInnerTexts();
  assert.match(labels[0], /^Attempt 1\s+Failed · retried/);
  await shot(page, "17-run-retrying");
  // The API has the same errors per attempt.
  const runId = page.url().split("/").pop();
  const tl = await api("GET", `/v1/runs/${runId}/timeline`);
  const step = tl.trace.children.find((c) => c.name === "deliver");
  assert.match(step.attempt_list[0].error.message, /on attempt 0/);
  assert.ok(step.retry_at_ms > 0 || tl.run.status !== "Running", "a retrying step has its next attempt's time");

  // Cancelled, the run keeps its failed attempts on the timeline.
  await page.getByTestId("cancel-run").click();
  await page.locator(".page-head h1 .badge[data-status=Cancelled]").waitFor();
  await page.locator('[data-testid=timeline-row][data-name="Attempt 1"]').waitFor();
  assert.equal(await page.getByTestId("retry-label").count(), 0, "a cancelled run retries nothing");
  await shot(page, "18-run-cancelled-keeps-attempts");
  await page.close();
});

test("the runs list pages through 1,000 runs both ways with a real total", async () => {
  const events = Array.from({ length: 1000 }, (_, i) => ({ name: "e2e/fanout", data: { i } }));
  for (let i = 0; i < events.length; i += 250) await api("POST", "/v1/events", events.slice(i, i + 250));
  const page = await newPage();
  await page.goto(BASE + `/runs?function=${slug("fanout")}`);
  await page.locator("tr[data-run-id]").first().waitFor();
  await page.getByTestId("runs-total").filter({ hasText: "1,000 runs" }).waitFor();
  const pageIds = async () => page.locator("tr[data-run-id]").evaluateAll((rows) => rows.map((r) => r.dataset.runId));
  const firstPage = await pageIds();
  assert.equal(firstPage.length, 50);
  await shot(page, "19-runs-page-1");
  const seen = new Set(firstPage);
  const pages = [firstPage];
  for (let n = 2; n <= 20; n++) {
    const before = (await pageIds())[0];
    await page.getByTestId("page-older").click();
    await page.getByTestId("page-info").filter({ hasText: `Page ${n}` }).waitFor();
    await page.waitForFunction((b) => document.querySelector("tr[data-run-id]")?.dataset.runId !== b, before);
    const ids = await pageIds();
    pages.push(ids);
    for (const id of ids) seen.add(id);
  }
  assert.equal(seen.size, 1000, "every run once over 20 pages");
  assert.ok(await page.getByTestId("page-older").isDisabled(), "the last page has no older page");
  // Newest first across pages.
  const flat = pages.flat();
  assert.deepEqual(flat, [...flat].sort().reverse());
  await shot(page, "20-runs-page-20");
  // And back to the newest.
  for (let n = 19; n >= 1; n--) {
    await page.getByTestId("page-newer").click();
    await page.getByTestId("page-info").filter({ hasText: `Page ${n}` }).waitFor();
  }
  await page.waitForFunction((f) => document.querySelector("tr[data-run-id]")?.dataset.runId === f, firstPage[0]);
  assert.deepEqual(await pageIds(), firstPage);
  assert.ok(await page.getByTestId("page-newer").isDisabled());
  // The REST API pages the same way: cursor in, metadata.next_cursor out.
  let cursor = "";
  let restIds = [];
  for (;;) {
    const res = await api("GET", `/v1/runs?function=${slug("fanout")}&limit=300${cursor ? "&cursor=" + cursor : ""}`);
    restIds = restIds.concat(res.data.map((r) => r.run_id));
    if (!res.metadata.next_cursor) break;
    cursor = res.metadata.next_cursor;
  }
  assert.deepEqual(restIds, flat);
  await page.close();
});

test("a CEL search over event and output finds the run", async () => {
  const page = await newPage();
  await page.goto(BASE + `/runs?function=${slug("fanout")}`);
  await page.locator("tr[data-run-id]").first().waitFor();
  // Wait until run 777 has its output (the fan-out runs finish quickly).
  const until = Date.now() + 20_000;
  for (;;) {
    const res = await api("GET", `/v1/runs?function=${slug("fanout")}&query=${encodeURIComponent("output.i == 777")}&limit=5`);
    if (res.data.length || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await page.getByTestId("run-search").fill("event.data.i == 777 && output.i == 777");
  await page.getByTestId("run-search-go").click();
  await page.getByTestId("search-note").filter({ hasText: "Expression search" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("tr[data-run-id]").length === 1);
  assert.match(await page.getByTestId("search-note").innerText(), /read [\d,]+ runs/);
  await shot(page, "21-runs-cel-search");
  const id = await page.locator("tr[data-run-id]").getAttribute("data-run-id");
  const tl = await api("GET", `/v1/runs/${id}/timeline`);
  assert.equal(tl.events[0].payload.data.i, 777);
  // A bad expression says why (the 400 it gets is expected: not a page error).
  await page.getByTestId("run-search").fill("event.data.i ==");
  await page.getByTestId("run-search-go").click();
  await page.locator(".search-note.error").waitFor();
  assert.match(await page.locator(".search-note.error").innerText(), /invalid expression/);
  const expected = pageErrors.findIndex((e) => /status of 400/.test(e) && /q=event\.data\.i/.test(e));
  if (expected >= 0) pageErrors.splice(expected, 1);
  // A run id finds that run.
  await page.getByTestId("run-search").fill(id);
  await page.getByTestId("run-search-go").click();
  await page.waitForFunction((want) => {
    const rows = document.querySelectorAll("tr[data-run-id]");
    return rows.length === 1 && rows[0].dataset.runId === want && !document.querySelector(".search-note:not([hidden])");
  }, id);
  await page.close();
});

test("a run is rerun from a chosen step, keeping the steps before it, linked both ways", async () => {
  const page = await newPage();
  const { ids } = await api("POST", "/v1/events", { name: "e2e/memo", data: { n: 14 } });
  await page.goto(BASE + "/events/" + ids[0]);
  await page.locator("a[href^='/runs/']").first().click();
  await page.locator(".page-head h1 .badge[data-status=Completed]").waitFor();
  const original = page.url().split("/").pop();
  await page.locator('[data-testid=timeline-row][data-name="c"]').click();
  await page.getByTestId("rerun-from-step").click();
  await page.waitForURL((u) => u.pathname.startsWith("/runs/") && !u.pathname.endsWith(original));
  await page.getByTestId("toast-link").first().waitFor();
  await page.locator(".page-head h1 .badge[data-status=Completed]").waitFor();
  const rerun = page.url().split("/").pop();
  await page.getByTestId("rerun-of").locator(`a[href="/runs/${original}"]`).waitFor();
  // a and b were kept (copied, never run again: no `step` line), c ran again; the output is the same.
  const steps = await api("GET", `/v1/runs/${rerun}/steps`);
  const ran = steps.data.history.filter((x) => x.kind === "step").map((x) => x.name);
  assert.deepEqual(ran, ["c"], `only c ran in the rerun: ${JSON.stringify(steps.data.history)}`);
  const first = await api("GET", `/v1/runs/${original}/steps`);
  assert.deepEqual(first.data.history.filter((x) => x.kind === "step").map((x) => x.name), ["a", "b", "c"]);
  assert.deepEqual(steps.data.steps.map((x) => x.name).sort(), ["a", "b", "c"]);
  const out = await api("GET", `/v1/runs/${rerun}`);
  assert.deepEqual(out.data.output, ["A", "B", "C"]);
  await shot(page, "22-rerun-from-step");
  // The original links to its rerun.
  await page.getByTestId("rerun-of").locator("a").click();
  await page.getByTestId("reruns").locator(`a[href="/runs/${rerun}"]`).waitFor();
  await shot(page, "23-original-links-rerun");
  await page.close();
});

test("the send-event dialog starts with the synced functions' trigger names", async () => {
  const page = await newPage();
  await page.goto(BASE + "/events");
  await page.getByTestId("send-event-open").click();
  const pick = page.getByTestId("send-event-name");
  await pick.waitFor();
  const options = await pick.locator("option").allInnerTexts();
  const fns = await api("GET", "/v1/functions");
  const triggers = new Set(fns.data.flatMap((f) => f.triggers.map((t) => t.event).filter(Boolean)));
  assert.ok(options.length >= 10 && options.every((o) => triggers.has(o)), `options are trigger names: ${options}`);
  const prefilled = JSON.parse(await page.getByTestId("send-event-json").inputValue());
  assert.ok(triggers.has(prefilled.name), `prefilled with a trigger name, not ${prefilled.name}`);
  await pick.selectOption("e2e/hello");
  const edited = JSON.parse(await page.getByTestId("send-event-json").inputValue());
  assert.equal(edited.name, "e2e/hello");
  await page.getByTestId("send-event-json").fill(JSON.stringify({ ...edited, data: { name: "Toast" } }));
  await shot(page, "24-send-event-prefilled");
  await page.getByTestId("send-event-submit").click();
  const toLink = page.getByTestId("toast-link").first();
  await toLink.waitFor();
  await toLink.click();
  await page.waitForURL("**/events/*");
  await page.locator("a[href^='/runs/']").first().waitFor();
  await page.close();
});
