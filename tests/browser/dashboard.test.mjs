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
  await page.getByTestId("resume").click();
  await page.getByTestId("pause").waitFor();

  await page.getByTestId("invoke-open").click();
  await page.getByTestId("invoke-json").fill('{"data": {"name": "Invoker"}}');
  await page.getByTestId("invoke-submit").click();
  await page.locator("tr[data-run-id][data-status=Completed]").first().waitFor();
  await shot(page, "16-function-invoked");
  await page.close();
});
