// Flow-control test app for Ingot, served with the official Inngest JS SDK.
//
// Same environment contract as app.cjs (SDK_MAJOR 3|4, PORT, APP_ID e.g.
// flow-js-v3, E2E_LOG, INNGEST_DEV=1, INNGEST_BASE_URL). One function per
// flow control, with short periods so the tests in
// crates/ingot-cli/tests/e2e_flow.rs are fast. Every E2E_LOG line is
// `{fn, step, run_id, t: Date.now(), ...}`, appended synchronously before the
// SDK answers the engine. The functions are listed in tests/sdk-apps/README.md
// and must stay in step with the Rust tests and with py/flow_app.py.
"use strict";

const fs = require("node:fs");
const http = require("node:http");

const major = process.env.SDK_MAJOR === "4" ? 4 : process.env.SDK_MAJOR === "3" ? 3 : null;
if (major === null) {
  console.error(`SDK_MAJOR must be 3 or 4 (got ${JSON.stringify(process.env.SDK_MAJOR)})`);
  process.exit(2);
}
const pkg = `inngest-v${major}`;
const { Inngest } = require(pkg);
const { serve } = require(`${pkg}/node`);

const appId = process.env.APP_ID || `flow-js-v${major}`;
const logPath = process.env.E2E_LOG || null;
const inngest = new Inngest({ id: appId });

function record(entry) {
  if (!logPath) return;
  fs.appendFileSync(logPath, JSON.stringify({ ...entry, t: Date.now() }) + "\n");
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// v3: createFunction(options, trigger, handler).
// v4: createFunction({ ...options, triggers }, handler).
function fn(options, trigger, handler) {
  if (major === 4) return inngest.createFunction({ ...options, triggers: [trigger] }, handler);
  return inngest.createFunction(options, trigger, handler);
}

// A step whose body logs `start` (with `extra`), runs `body`, and logs `end`.
function timedStep(ctx, fnId, stepId, extra, body) {
  return ctx.step.run(stepId, async () => {
    record({ fn: fnId, step: stepId, run_id: ctx.runId, phase: "start", ...extra });
    const out = await body();
    record({ fn: fnId, step: stepId, run_id: ctx.runId, phase: "end", ...extra });
    return out;
  });
}

// A function that logs step `begin` and then sleeps `nap` for `duration`.
function sleeper(ctx, fnId, duration) {
  return (async () => {
    await timedStep(ctx, fnId, "begin", { user: ctx.event.data.user ?? null, n: ctx.event.data.n ?? null }, () => null);
    await ctx.step.sleep("nap", duration);
    return "finished";
  })();
}

const functions = [
  // At most one executing step per user.
  fn(
    { id: "conc", name: "Concurrency", concurrency: { limit: 1, key: "event.data.user" } },
    { event: "flow/conc" },
    async (ctx) => {
      const user = ctx.event.data.user;
      await timedStep(ctx, "conc", "work", { user, n: ctx.event.data.n }, () => pause(300));
      return { user };
    }
  ),

  fn({ id: "throttle", name: "Throttle", throttle: { limit: 1, period: "1s" } }, { event: "flow/throttle" }, async (ctx) => {
    const n = ctx.event.data.n;
    await timedStep(ctx, "throttle", "go", { n }, () => null);
    return { n };
  }),

  fn(
    { id: "rate", name: "Rate limit", rateLimit: { limit: 1, period: "5s", key: "event.data.user" } },
    { event: "flow/rate" },
    async (ctx) => {
      const user = ctx.event.data.user;
      await timedStep(ctx, "rate", "go", { user, n: ctx.event.data.n }, () => null);
      return { user, n: ctx.event.data.n };
    }
  ),

  fn(
    { id: "debounce", name: "Debounce", debounce: { period: "1s", key: "event.data.user", timeout: "3s" } },
    { event: "flow/debounce" },
    async (ctx) => {
      const { user, n } = ctx.event.data;
      await timedStep(ctx, "debounce", "go", { user, n }, () => null);
      return { user, n };
    }
  ),

  fn({ id: "batch", name: "Batch", batchEvents: { maxSize: 3, timeout: "2s" } }, { event: "flow/batch" }, async (ctx) => {
    const count = ctx.events.length;
    const ns = ctx.events.map((e) => e.data.n);
    const ids = ctx.events.map((e) => e.id);
    await timedStep(ctx, "batch", "go", { count, ns }, () => null);
    return { count, ns, ids };
  }),

  // One step at a time, so later events queue and priority orders them.
  fn(
    { id: "priority", name: "Priority", concurrency: 1, priority: { run: "event.data.priority" } },
    { event: "flow/priority" },
    async (ctx) => {
      const label = ctx.event.data.label;
      await timedStep(ctx, "priority", "work", { label }, () => pause(300));
      return { label };
    }
  ),

  fn({ id: "idem", name: "Idempotency", idempotency: "event.data.id" }, { event: "flow/idem" }, async (ctx) => {
    const id = ctx.event.data.id;
    await timedStep(ctx, "idem", "go", { id, n: ctx.event.data.n }, () => null);
    return { id, n: ctx.event.data.n };
  }),

  fn(
    { id: "singleton-skip", name: "Singleton skip", singleton: { key: "event.data.user", mode: "skip" } },
    { event: "flow/singleton-skip" },
    (ctx) => sleeper(ctx, "singleton-skip", "3s")
  ),

  fn(
    { id: "singleton-cancel", name: "Singleton cancel", singleton: { key: "event.data.user", mode: "cancel" } },
    { event: "flow/singleton-cancel" },
    (ctx) => sleeper(ctx, "singleton-cancel", "3s")
  ),

  // A second run waits behind the first (concurrency 1) longer than its
  // start timeout, so it is cancelled before it starts.
  fn(
    { id: "timeout-start", name: "Start timeout", concurrency: 1, timeouts: { start: "1s" } },
    { event: "flow/timeout-start" },
    async (ctx) => {
      const n = ctx.event.data.n;
      await timedStep(ctx, "timeout-start", "work", { n }, () => pause(2500));
      return { n };
    }
  ),

  fn({ id: "timeout-finish", name: "Finish timeout", timeouts: { finish: "2s" } }, { event: "flow/timeout-finish" }, (ctx) =>
    sleeper(ctx, "timeout-finish", "10s")
  ),

  fn(
    { id: "cancel-if", name: "Cancel on (if)", cancelOn: [{ event: "flow/cancel", if: "async.data.id == event.data.id" }] },
    { event: "flow/cancellable" },
    (ctx) => sleeper(ctx, "cancel-if", "30s")
  ),

  // The SDK compiles `match: "data.id"` into `event.data.id == async.data.id`.
  fn(
    { id: "cancel-match", name: "Cancel on (match)", cancelOn: [{ event: "flow/cancel-match", match: "data.id" }] },
    { event: "flow/cancellable-match" },
    (ctx) => sleeper(ctx, "cancel-match", "30s")
  ),

  fn({ id: "bulk", name: "Bulk cancel target" }, { event: "flow/bulk" }, (ctx) => sleeper(ctx, "bulk", "30s")),

  fn({ id: "cron", name: "Cron" }, { cron: "* * * * *" }, async (ctx) => {
    await timedStep(ctx, "cron", "tick", { event: ctx.event.name, scheduledAt: ctx.event.data?.scheduledAt ?? null }, () => null);
    return { event: ctx.event.name };
  }),
];

const handler = serve({ client: inngest, functions });
const server = http.createServer((req, res) => {
  if (req.url === "/api/inngest" || req.url.startsWith("/api/inngest?")) return handler(req, res);
  res.statusCode = 404;
  res.end("not found");
});
const port = Number(process.env.PORT || 3000);
server.listen(port, "127.0.0.1", () => {
  console.log(`[${appId}] inngest@${require(`${pkg}`).version ?? "?"} listening on http://127.0.0.1:${port}/api/inngest`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  });
}
