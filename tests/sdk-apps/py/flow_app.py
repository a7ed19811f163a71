"""Flow-control test app for Ingot, served with the official Inngest Python SDK on Flask.

Same environment contract as app.py (PORT, APP_ID e.g. flow-py, E2E_LOG,
INNGEST_DEV=1, INNGEST_BASE_URL). One function per flow control, with short
periods so the tests in crates/ingot-cli/tests/e2e_flow.rs are fast. Every
E2E_LOG line is {fn, step, run_id, t (ms since the epoch), ...}, appended
before the SDK answers the engine. The functions match js/flow-app.cjs (the
Python SDK has no cancel `match`, so `cancel-match` is JS only); see
tests/sdk-apps/README.md.
"""

import datetime
import json
import logging
import os
import threading
import time
import typing

import flask
import inngest
import inngest.flask

app_id = os.environ.get("APP_ID", "flow-py")
log_path = os.environ.get("E2E_LOG")
client = inngest.Inngest(app_id=app_id, logger=logging.getLogger("inngest"))
_log_lock = threading.Lock()


def record(entry: dict[str, typing.Any]) -> None:
    """Append one JSON line to E2E_LOG before the SDK answers the engine."""
    if not log_path:
        return
    line = json.dumps({**entry, "t": int(time.time() * 1000)}) + "\n"
    with _log_lock, open(log_path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def timed_step(
    ctx: inngest.ContextSync,
    fn_id: str,
    step_id: str,
    extra: dict[str, typing.Any],
    seconds: float = 0,
) -> None:
    """A step whose body logs `start`, sleeps `seconds` and logs `end`."""

    def body() -> None:
        record({"fn": fn_id, "step": step_id, "run_id": ctx.run_id, "phase": "start", **extra})
        if seconds:
            time.sleep(seconds)
        record({"fn": fn_id, "step": step_id, "run_id": ctx.run_id, "phase": "end", **extra})

    ctx.step.run(step_id, body)


def sleeper(ctx: inngest.ContextSync, fn_id: str, seconds: int) -> str:
    """Logs step `begin`, then sleeps `nap` for `seconds`."""
    data = ctx.event.data
    timed_step(ctx, fn_id, "begin", {"user": data.get("user"), "n": data.get("n")})
    ctx.step.sleep("nap", datetime.timedelta(seconds=seconds))
    return "finished"


def ev(name: str) -> inngest.TriggerEvent:
    return inngest.TriggerEvent(event=name)


def secs(n: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=n)


@client.create_function(
    fn_id="conc",
    name="Concurrency",
    trigger=ev("flow/conc"),
    concurrency=[inngest.Concurrency(limit=1, key="event.data.user")],
)
def conc(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    user = ctx.event.data.get("user")
    timed_step(ctx, "conc", "work", {"user": user, "n": ctx.event.data.get("n")}, 0.3)
    return {"user": user}


# The SDK's default throttle burst (1) is kept on purpose: a user writing
# Throttle(limit=1, period=1s) gets one run per second on Inngest.
@client.create_function(
    fn_id="throttle",
    name="Throttle",
    trigger=ev("flow/throttle"),
    throttle=inngest.Throttle(limit=1, period=secs(1)),
)
def throttle(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    n = ctx.event.data.get("n")
    timed_step(ctx, "throttle", "go", {"n": n})
    return {"n": n}


@client.create_function(
    fn_id="rate",
    name="Rate limit",
    trigger=ev("flow/rate"),
    rate_limit=inngest.RateLimit(limit=1, period=secs(5), key="event.data.user"),
)
def rate(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    user, n = ctx.event.data.get("user"), ctx.event.data.get("n")
    timed_step(ctx, "rate", "go", {"user": user, "n": n})
    return {"user": user, "n": n}


@client.create_function(
    fn_id="debounce",
    name="Debounce",
    trigger=ev("flow/debounce"),
    debounce=inngest.Debounce(period=secs(1), key="event.data.user", timeout=secs(3)),
)
def debounce(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    user, n = ctx.event.data.get("user"), ctx.event.data.get("n")
    timed_step(ctx, "debounce", "go", {"user": user, "n": n})
    return {"user": user, "n": n}


@client.create_function(
    fn_id="batch",
    name="Batch",
    trigger=ev("flow/batch"),
    batch_events=inngest.Batch(max_size=3, timeout=secs(2)),
)
def batch(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    count = len(ctx.events)
    ns = [e.data.get("n") for e in ctx.events]
    ids = [e.id for e in ctx.events]
    timed_step(ctx, "batch", "go", {"count": count, "ns": ns})
    return {"count": count, "ns": ns, "ids": ids}


@client.create_function(
    fn_id="priority",
    name="Priority",
    trigger=ev("flow/priority"),
    concurrency=[inngest.Concurrency(limit=1)],
    priority=inngest.Priority(run="event.data.priority"),
)
def priority(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    label = ctx.event.data.get("label")
    timed_step(ctx, "priority", "work", {"label": label}, 0.3)
    return {"label": label}


@client.create_function(fn_id="idem", name="Idempotency", trigger=ev("flow/idem"), idempotency="event.data.id")
def idem(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    id_, n = ctx.event.data.get("id"), ctx.event.data.get("n")
    timed_step(ctx, "idem", "go", {"id": id_, "n": n})
    return {"id": id_, "n": n}


@client.create_function(
    fn_id="singleton-skip",
    name="Singleton skip",
    trigger=ev("flow/singleton-skip"),
    singleton=inngest.Singleton(key="event.data.user", mode="skip"),
)
def singleton_skip(ctx: inngest.ContextSync) -> str:
    return sleeper(ctx, "singleton-skip", 3)


@client.create_function(
    fn_id="singleton-cancel",
    name="Singleton cancel",
    trigger=ev("flow/singleton-cancel"),
    singleton=inngest.Singleton(key="event.data.user", mode="cancel"),
)
def singleton_cancel(ctx: inngest.ContextSync) -> str:
    return sleeper(ctx, "singleton-cancel", 3)


@client.create_function(
    fn_id="timeout-start",
    name="Start timeout",
    trigger=ev("flow/timeout-start"),
    concurrency=[inngest.Concurrency(limit=1)],
    timeouts=inngest.Timeouts(start=secs(1)),
)
def timeout_start(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    n = ctx.event.data.get("n")
    timed_step(ctx, "timeout-start", "work", {"n": n}, 2.5)
    return {"n": n}


@client.create_function(
    fn_id="timeout-finish",
    name="Finish timeout",
    trigger=ev("flow/timeout-finish"),
    timeouts=inngest.Timeouts(finish=secs(2)),
)
def timeout_finish(ctx: inngest.ContextSync) -> str:
    return sleeper(ctx, "timeout-finish", 10)


@client.create_function(
    fn_id="cancel-if",
    name="Cancel on (if)",
    trigger=ev("flow/cancellable"),
    cancel=[inngest.Cancel(event="flow/cancel", if_exp="async.data.id == event.data.id")],
)
def cancel_if(ctx: inngest.ContextSync) -> str:
    return sleeper(ctx, "cancel-if", 30)


@client.create_function(fn_id="bulk", name="Bulk cancel target", trigger=ev("flow/bulk"))
def bulk(ctx: inngest.ContextSync) -> str:
    return sleeper(ctx, "bulk", 30)


@client.create_function(fn_id="cron", name="Cron", trigger=inngest.TriggerCron(cron="* * * * *"))
def cron(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    timed_step(ctx, "cron", "tick", {"event": ctx.event.name, "scheduledAt": ctx.event.data.get("scheduledAt")})
    return {"event": ctx.event.name}


functions = [
    conc,
    throttle,
    rate,
    debounce,
    batch,
    priority,
    idem,
    singleton_skip,
    singleton_cancel,
    timeout_start,
    timeout_finish,
    cancel_if,
    bulk,
    cron,
]

app = flask.Flask(__name__)
inngest.flask.serve(app, client, functions)

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    print(f"[{app_id}] inngest-py listening on http://127.0.0.1:{port}/api/inngest", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
