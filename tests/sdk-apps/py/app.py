"""End-to-end test app for Ingot, served with the official Inngest Python SDK on Flask.

The Rust harness in crates/ingot-cli/tests/support starts it as
`.venv/bin/python app.py` with:

  PORT       listen port (binds 127.0.0.1 only)
  APP_ID     app id, e.g. e2e-py; function slugs are f"{APP_ID}-{fn id}"
  E2E_LOG    file that every step body appends one JSON line to, synchronously,
             so tests can count how often each body ran
  INNGEST_DEV=1, INNGEST_BASE_URL=http://127.0.0.1:<engine port>

Functions, triggers and results match the JS app (tests/sdk-apps/js/app.cjs)
where they overlap; see tests/sdk-apps/README.md.
"""

import datetime
import json
import logging
import os
import re
import typing

import flask
import inngest
import inngest.flask

app_id = os.environ.get("APP_ID", "e2e-py")
log_path = os.environ.get("E2E_LOG")
client = inngest.Inngest(app_id=app_id, logger=logging.getLogger("inngest"))


def record(entry: dict[str, typing.Any]) -> None:
    """Append one JSON line to E2E_LOG before the SDK answers the engine."""
    if not log_path:
        return
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def logged_step(
    ctx: inngest.ContextSync, fn_id: str, step_id: str, body: typing.Callable[[], typing.Any]
) -> typing.Any:
    def run() -> typing.Any:
        record({"fn": fn_id, "step": step_id, "run_id": ctx.run_id, "attempt": ctx.attempt})
        return body()

    return ctx.step.run(step_id, run)


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: typing.Any, default: datetime.timedelta) -> datetime.timedelta:
    """Accept the JS-style time strings the tests send ("2s", "30s", "1h")."""
    if not value:
        return default
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"unsupported duration {value!r}")
    return datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def ev(name: str) -> inngest.TriggerEvent:
    return inngest.TriggerEvent(event=name)


@client.create_function(fn_id="hello", name="Hello", trigger=ev("e2e/hello"))
def hello(ctx: inngest.ContextSync) -> dict[str, str]:
    message = logged_step(ctx, "hello", "greet", lambda: "Hello " + str(ctx.event.data.get("name")))
    return {"message": message}


@client.create_function(fn_id="memo", name="Memo", trigger=ev("e2e/memo"))
def memo(ctx: inngest.ContextSync) -> list[str]:
    a = logged_step(ctx, "memo", "a", lambda: "A")
    b = logged_step(ctx, "memo", "b", lambda: "B")
    c = logged_step(ctx, "memo", "c", lambda: "C")
    return [a, b, c]


@client.create_function(fn_id="waiter", name="Waiter", trigger=ev("e2e/wait"))
def waiter(ctx: inngest.ContextSync) -> dict[str, typing.Any]:
    got = ctx.step.wait_for_event(
        "wait-approve",
        event="e2e/approve",
        if_exp="async.data.id == event.data.id",
        timeout=parse_duration(ctx.event.data.get("timeout"), datetime.timedelta(seconds=30)),
    )
    return {
        "matched": got is not None,
        "approver": got.data.get("by") if got is not None else None,
    }


@client.create_function(fn_id="non-retriable", name="Non-retriable", trigger=ev("e2e/nonretriable"))
def non_retriable(ctx: inngest.ContextSync) -> str:
    def doomed() -> None:
        raise inngest.NonRetriableError("nope")

    logged_step(ctx, "non-retriable", "doomed", doomed)
    return "unreachable"


@client.create_function(fn_id="sleeper", name="Sleeper", trigger=ev("e2e/sleep"))
def sleeper(ctx: inngest.ContextSync) -> str:
    ctx.step.sleep("nap", datetime.timedelta(seconds=2))
    return "woke"


functions = [hello, memo, waiter, non_retriable, sleeper]

app = flask.Flask(__name__)
inngest.flask.serve(app, client, functions)

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    print(f"[{app_id}] inngest-py listening on http://127.0.0.1:{port}/api/inngest", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
