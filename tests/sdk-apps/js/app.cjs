// End-to-end test app for Ingot, served with the official Inngest JS SDK.
//
// One file serves both SDK majors: SDK_MAJOR=3 loads `inngest-v3` (npm alias
// of inngest@^3), SDK_MAJOR=4 loads `inngest-v4` (alias of inngest@^4). The
// Rust harness in crates/ingot-cli/tests/support starts it with:
//
//   SDK_MAJOR   3 | 4
//   PORT        listen port (binds 127.0.0.1 only)
//   APP_ID      app id, e.g. e2e-js-v3; function slugs are `${APP_ID}-${fn id}`
//   E2E_LOG     file that every step body / function body / onFailure handler
//               appends one JSON line to, synchronously, so tests can count
//               how often each body ran
//   INNGEST_DEV=1, INNGEST_BASE_URL=http://127.0.0.1:<engine port>
//
// Each function's id, trigger and behaviour is listed in
// tests/sdk-apps/README.md and must stay in step with the Rust tests.
"use strict";

const fs = require("node:fs");
const http = require("node:http");

const major = process.env.SDK_MAJOR === "4" ? 4 : process.env.SDK_MAJOR === "3" ? 3 : null;
if (major === null) {
  console.error(`SDK_MAJOR must be 3 or 4 (got ${JSON.stringify(process.env.SDK_MAJOR)})`);
  process.exit(2);
}
const pkg = `inngest-v${major}`;
const { Inngest, NonRetriableError, referenceFunction } = require(pkg);
const { serve } = require(`${pkg}/node`);

const appId = process.env.APP_ID || `e2e-js-v${major}`;
const logPath = process.env.E2E_LOG || null;
const inngest = new Inngest({ id: appId });

// Appends one JSON line per body execution, stamped with `t` (Date.now(), ms).
// Synchronous on purpose: the line must be on disk before the SDK answers the
// engine, so a test that sees the run finish also sees every line it caused.
function record(entry) {
  if (!logPath) return;
  fs.appendFileSync(logPath, JSON.stringify({ ...entry, t: Date.now() }) + "\n");
}

// v3: createFunction(options, trigger, handler).
// v4: createFunction({ ...options, triggers }, handler).
function fn(options, trigger, handler) {
  if (major === 4) return inngest.createFunction({ ...options, triggers: [trigger] }, handler);
  return inngest.createFunction(options, trigger, handler);
}

// A step.run whose body logs `{fn, step, run_id, attempt}` before running.
function loggedStep(ctx, fnId, stepId, body) {
  return ctx.step.run(stepId, () => {
    record({ fn: fnId, step: stepId, run_id: ctx.runId, attempt: ctx.attempt });
    return body();
  });
}

const child = fn({ id: "child", name: "Child" }, { event: "e2e/child" }, async ({ event }) => ({
  doubled: event.data.n * 2,
}));

const functions = [
  fn({ id: "hello", name: "Hello" }, { event: "e2e/hello" }, async (ctx) => {
    const message = await loggedStep(ctx, "hello", "greet", () => "Hello " + ctx.event.data.name);
    return { message };
  }),

  fn({ id: "memo", name: "Memo" }, { event: "e2e/memo" }, async (ctx) => {
    const a = await loggedStep(ctx, "memo", "a", () => "A");
    const b = await loggedStep(ctx, "memo", "b", () => "B");
    const c = await loggedStep(ctx, "memo", "c", () => "C");
    return [a, b, c];
  }),

  fn({ id: "parallel", name: "Parallel" }, { event: "e2e/parallel" }, async (ctx) => {
    const [pa, pb] = await Promise.all([
      loggedStep(ctx, "parallel", "pa", () => 1),
      loggedStep(ctx, "parallel", "pb", () => 2),
    ]);
    const sum = await loggedStep(ctx, "parallel", "after", () => pa + pb);
    return { sum };
  }),

  fn({ id: "flaky", name: "Flaky", retries: 2 }, { event: "e2e/flaky" }, async (ctx) => {
    return await loggedStep(ctx, "flaky", "flaky-step", () => {
      if (ctx.attempt === 0) throw new Error("flaky: failing on attempt 0");
      return "ok";
    });
  }),

  // A webhook delivery against a receiver that keeps failing: every attempt
  // fails with its own error (the dashboard's browser test watches it retry).
  fn({ id: "retrier", name: "Retrier", retries: 20 }, { event: "e2e/retrier" }, async (ctx) => {
    return await ctx.step.run("deliver", () => {
      throw new Error(`receiver answered 503 on attempt ${ctx.attempt}`);
    });
  }),

  fn({ id: "non-retriable", name: "Non-retriable" }, { event: "e2e/nonretriable" }, async (ctx) => {
    await loggedStep(ctx, "non-retriable", "doomed", () => {
      throw new NonRetriableError("nope");
    });
    return "unreachable";
  }),

  fn({ id: "fn-error", name: "Function error", retries: 1 }, { event: "e2e/fnerror" }, async (ctx) => {
    record({ fn: "fn-error", step: null, run_id: ctx.runId, attempt: ctx.attempt });
    throw new Error("boom");
  }),

  fn({ id: "sleeper", name: "Sleeper" }, { event: "e2e/sleep" }, async ({ step }) => {
    await step.sleep("nap", "2s");
    return "woke";
  }),

  fn({ id: "waiter", name: "Waiter" }, { event: "e2e/wait" }, async ({ event, step }) => {
    const ev = await step.waitForEvent("wait-approve", {
      event: "e2e/approve",
      if: "async.data.id == event.data.id",
      timeout: event.data.timeout || "30s",
    });
    return { matched: ev !== null, approver: ev?.data?.by ?? null };
  }),

  child,

  fn({ id: "invoker", name: "Invoker" }, { event: "e2e/invoke" }, async ({ event, step }) => {
    return await step.invoke("call-child", { function: child, data: { n: event.data.n } });
  }),

  // referenceFunction({ functionId }) without appId resolves to
  // `${appId}-does-not-exist` in both majors (v3 also accepts a bare string
  // id, deprecated; v4 only accepts a function or a reference).
  fn({ id: "invoke-missing", name: "Invoke missing" }, { event: "e2e/invoke-missing" }, async ({ step }) => {
    try {
      const res = await step.invoke("call-missing", {
        function: referenceFunction({ functionId: "does-not-exist" }),
        data: {},
        timeout: "10s",
      });
      return { unexpected: res };
    } catch (err) {
      return { error: err.message };
    }
  }),

  fn({ id: "sender", name: "Sender" }, { event: "e2e/send" }, async ({ step }) => {
    await step.sendEvent("fan", [
      { name: "e2e/fanout", data: { i: 1 } },
      { name: "e2e/fanout", data: { i: 2 } },
    ]);
    return "sent";
  }),

  fn({ id: "fanout", name: "Fan-out" }, { event: "e2e/fanout" }, async ({ event }) => ({ i: event.data.i })),

  fn(
    {
      id: "with-failure",
      name: "With failure",
      retries: 0,
      onFailure: async ({ event, attempt }) => {
        record({
          fn: "with-failure-onfailure",
          step: null,
          error: event.data.error.message,
          run_id: event.data.run_id,
          attempt,
        });
        return "handled";
      },
    },
    { event: "e2e/failing" },
    async (ctx) => {
      record({ fn: "with-failure", step: null, run_id: ctx.runId, attempt: ctx.attempt });
      throw new Error("planned failure");
    }
  ),

  fn({ id: "cancellable", name: "Cancellable" }, { event: "e2e/cancellable" }, async ({ step }) => {
    await step.sleep("long", "1h");
    return "never";
  }),

  // crates/ingot-cli/tests/durability.rs kills the engine while hundreds of
  // these are in flight and checks no memoized step runs again.
  fn({ id: "durable", name: "Durable" }, { event: "e2e/durable" }, async (ctx) => {
    await loggedStep(ctx, "durable", "one", () => "one");
    await ctx.step.sleep("nap", "1s");
    await loggedStep(ctx, "durable", "two", () => "two");
    return { done: true, i: ctx.event.data.i };
  }),
];

// Step tools the engine carries out itself (v4 only): signals, step.fetch,
// step.ai.infer, and group.parallel race mode. Used by
// crates/ingot-cli/tests/e2e_steps.rs.
if (major === 4) {
  const { openai, anthropic } = require(pkg);
  functions.push(
    fn({ id: "signal-waiter", name: "Signal waiter" }, { event: "e2e/signal-wait" }, async ({ event, step }) => {
      const got = await step.waitForSignal("wait-for-signal", {
        signal: event.data.signal,
        timeout: event.data.timeout || "30s",
        onConflict: "replace",
      });
      return { got };
    }),
    fn({ id: "signal-sender", name: "Signal sender" }, { event: "e2e/signal-send" }, async ({ event, step }) => {
      const sent = await step.sendSignal("send-signal", { signal: event.data.signal, data: event.data.data });
      return { sent };
    }),
    fn({ id: "fetcher", name: "Fetcher", retries: 1 }, { event: "e2e/fetch" }, async ({ event, step }) => {
      const res = await step.fetch(event.data.url, {
        method: "POST",
        headers: { "x-e2e": "fetch-header", "content-type": "application/json" },
        body: JSON.stringify({ hello: "world" }),
      });
      const text = await res.text();
      return { status: res.status, text, reply_header: res.headers.get("x-reply") };
    }),
    fn({ id: "inferer", name: "Inferer" }, { event: "e2e/infer" }, async ({ event, step }) => {
      // The key lives in the app, as a real one would: never in an event.
      const { format, base } = event.data;
      const key = `sk-e2e-${format}-key-0123456789`;
      const model =
        format === "anthropic"
          ? anthropic({ model: "claude-test", apiKey: key, baseUrl: base, defaultParameters: { max_tokens: 64 } })
          : openai({ model: "gpt-test", apiKey: key, baseUrl: base });
      const body =
        format === "anthropic"
          ? { max_tokens: 64, messages: [{ role: "user", content: "say hi" }] }
          : { messages: [{ role: "user", content: "say hi" }] };
      const out = await step.ai.infer("ask-model", { model, body });
      return { out };
    }),
    fn({ id: "racer", name: "Racer" }, { event: "e2e/race" }, async ({ step, group }) => {
      const winner = await group.parallel({ mode: "race" }, () =>
        Promise.race([
          step.run("fast", () => "fast"),
          step.run("slow", async () => {
            await new Promise((r) => setTimeout(r, 4000));
            record({ fn: "racer", step: "slow", t_done: Date.now() });
            return "slow";
          }),
        ]),
      );
      const after = await step.run("after-race", () => {
        record({ fn: "racer", step: "after-race" });
        return winner;
      });
      return { winner, after };
    }),
  );
}

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
    // Open keep-alive connections would hold close() forever.
    setTimeout(() => process.exit(0), 500).unref();
  });
}
