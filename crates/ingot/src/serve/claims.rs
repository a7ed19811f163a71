//! Binding a call to its function and step. The signature covers the body
//! but not the URL, so `fnId` and `stepId` in the query are checked against
//! what the signed body says it is for; a signed call for one function or
//! step then cannot be replayed to another.
//!
//! What the body names, and what is checked (function checks in cloud mode
//! only, where the body is signed):
//!
//! * `ctx.fn_id`. Ingot sends the UUID it derives from the function's slug
//!   (the first 16 bytes of SHA-256 of the slug); Inngest sends its own
//!   function UUID, which the SDK cannot derive. A `fn_id` that is the slug
//!   or derived UUID of *another* function of this app is refused; an
//!   unknown UUID (Inngest's) names nothing we can check.
//! * An `inngest/function.invoked` event: `data._inngest.fn_id` is the slug
//!   of the invoked function, and only that function runs for it. Skipped
//!   for a function whose own triggers could match that event name.
//! * An `inngest/function.failed` event sent to an `on_failure` handler:
//!   `data.function_id` is the slug of the function that failed, the only
//!   one whose failures that handler is triggered by.
//! * `ctx.step_id`. Ingot sends the query's `stepId` in it (`step` for
//!   discovery, else the hashed step id); Inngest sends its function's one
//!   step id, `step`, in every call, with the hashed id only in the query.
//!   So `ctx.step_id` must equal `stepId`, or be `step` when the body is not
//!   from Ingot; a body is from Ingot when its `ctx.fn_id` is the derived
//!   UUID of the query's function, or absent (Inngest always sends one).
//!   This holds in dev mode too: no engine sends anything else.
//!
//! The event's name is not matched against the function's triggers: a
//! deploy that changes a trigger leaves runs of the old trigger in flight.

use std::collections::HashMap;

use ingot_protocol::call::IncomingCallRequest;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::Mode;
use crate::function::Role;

/// The event that starts an invoked function's run.
pub(crate) const INVOKED_EVENT: &str = "inngest/function.invoked";
/// The event that starts an `on_failure` handler's run.
const FAILED_EVENT: &str = "inngest/function.failed";
/// The step id of discovery calls, and Inngest's `ctx.step_id` in all calls.
const DISCOVERY_STEP: &str = "step";

/// The UUID Ingot sends as `ctx.fn_id` for the function `slug`: the first
/// 16 bytes of SHA-256 of the slug, as a hyphenated UUID (the engine's
/// `stable_uuid`).
pub(crate) fn derived_uuid(slug: &str) -> String {
    let x = hex::encode(&Sha256::digest(slug.as_bytes())[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// Every name a body may use for the app's functions (composite slug and
/// derived UUID) → the function's composite slug.
#[derive(Default)]
pub(crate) struct FunctionNames(HashMap<String, String>);

impl FunctionNames {
    pub(crate) fn add(&mut self, slug: &str) {
        self.0.insert(slug.to_string(), slug.to_string());
        self.0.insert(derived_uuid(slug), slug.to_string());
    }

    fn resolve(&self, name: &str) -> Option<&str> {
        self.0.get(name).or_else(|| self.0.get(&name.to_ascii_lowercase())).map(String::as_str)
    }
}

/// The function and step the query addresses.
pub(crate) struct Addressed<'a> {
    /// `fnId`: the composite slug.
    pub(crate) slug: &'a str,
    pub(crate) role: Role,
    /// The composite slug of the function an `on_failure` handler belongs to.
    pub(crate) main_slug: &'a str,
    /// The function's own triggers could match `inngest/function.invoked`.
    pub(crate) hears_invoked_events: bool,
    /// `stepId`, if the query has one.
    pub(crate) step_id: Option<&'a str>,
}

/// Why a call was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The body is for another function or step.
    Mismatch(String),
    /// The body names its function in a form no engine sends.
    Malformed(String),
}

/// The part of the body only this check reads: `ctx.fn_id`.
/// (It belongs in `ingot_protocol::call::IncomingCallCtx`, which lacks it.)
#[derive(Deserialize)]
struct FnIdOnly {
    #[serde(default)]
    ctx: Option<CtxFnId>,
}

#[derive(Deserialize)]
struct CtxFnId {
    #[serde(default)]
    fn_id: Option<Value>,
}

/// Checks that the call request in `body` (parsed as `request`) is for the
/// function and step `to` addresses.
pub(crate) fn check(
    names: &FunctionNames,
    to: &Addressed<'_>,
    body: &[u8],
    request: &IncomingCallRequest,
    mode: Mode,
) -> Result<(), Refusal> {
    let fn_id = match serde_json::from_slice::<FnIdOnly>(body).ok().and_then(|b| b.ctx).and_then(|c| c.fn_id) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(other) if mode == Mode::Cloud => return Err(Refusal::Malformed(format!("ctx.fn_id must be a string, not {other}"))),
        Some(_) => None,
    };
    let named = fn_id.as_deref().map(|id| names.resolve(id));
    if mode == Mode::Cloud {
        if let Some(Some(slug)) = named {
            if slug != to.slug {
                return Err(mismatch("ctx.fn_id", slug, to.slug));
            }
        }
        check_events(to, request)?;
    }
    // From Ingot: no fn_id (Inngest always sends one), or the derived UUID
    // of this function.
    let from_ingot = match named {
        None => true,
        Some(resolved) => resolved == Some(to.slug),
    };
    if let (Some(query), Some(signed)) = (to.step_id, request.ctx.step_id.as_deref()) {
        if query != signed && (from_ingot || signed != DISCOVERY_STEP) {
            return Err(Refusal::Mismatch(format!("the request was signed for step {signed:?}, not {query:?}")));
        }
    }
    Ok(())
}

/// The invoke and failure events of the run must be for this function.
fn check_events(to: &Addressed<'_>, request: &IncomingCallRequest) -> Result<(), Refusal> {
    for event in std::iter::once(&request.event).chain(&request.events) {
        match event.get("name").and_then(Value::as_str) {
            Some(INVOKED_EVENT) if !to.hears_invoked_events => {
                if let Some(target) = event.pointer("/data/_inngest/fn_id").and_then(Value::as_str) {
                    if target != to.slug {
                        return Err(mismatch("its inngest/function.invoked event", target, to.slug));
                    }
                }
            }
            Some(FAILED_EVENT) if to.role == Role::OnFailure => {
                if let Some(failed) = event.pointer("/data/function_id").and_then(Value::as_str) {
                    if failed != to.main_slug {
                        let handler = format!("{failed}-failure");
                        return Err(mismatch("its inngest/function.failed event", &handler, to.slug));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn mismatch(by: &str, named: &str, addressed: &str) -> Refusal {
    Refusal::Mismatch(format!("the request was signed for function {named:?} (by {by}), not {addressed:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_uuids_match_the_engine() {
        // sha256("js-v4-two-steps"), first 16 bytes.
        assert_eq!(derived_uuid("js-v4-two-steps"), "1ddfabb8-fe6e-1ee8-de52-2c316dbdecd4");
        assert_eq!(derived_uuid("app-hello"), "e7bc21a5-9ec6-d913-6164-b8ab50f65e73");
    }

    fn names() -> FunctionNames {
        let mut n = FunctionNames::default();
        for slug in ["app-a", "app-b", "app-b-failure"] {
            n.add(slug);
        }
        n
    }

    fn to<'a>(slug: &'a str, step: Option<&'a str>) -> Addressed<'a> {
        let (role, main_slug) = match slug.strip_suffix("-failure") {
            Some(main) => (Role::OnFailure, main),
            None => (Role::Main, slug),
        };
        Addressed { slug, role, main_slug, hears_invoked_events: false, step_id: step }
    }

    fn run(to: &Addressed<'_>, body: Value, mode: Mode) -> Result<(), Refusal> {
        let raw = serde_json::to_vec(&body).unwrap();
        let request: IncomingCallRequest = serde_json::from_slice(&raw).unwrap();
        check(&names(), to, &raw, &request, mode)
    }

    fn body(fn_id: Option<&str>, step_id: &str, event: Value) -> Value {
        let mut b = json!({"event": event, "events": [event], "steps": {}, "ctx": {"run_id": "r", "step_id": step_id}});
        if let Some(id) = fn_id {
            b["ctx"]["fn_id"] = json!(id);
        }
        b
    }

    const INNGEST_UUID: &str = "7c280ac7-69be-4cf3-8642-702a5f000469";

    #[test]
    fn legitimate_calls_pass() {
        let plain = json!({"name": "app/x", "data": {}});
        let a = derived_uuid("app-a");
        for mode in [Mode::Cloud, Mode::Dev] {
            // Ingot, with and without checkpointing.
            assert_eq!(run(&to("app-a", Some("step")), body(None, "step", plain.clone()), mode), Ok(()));
            assert_eq!(run(&to("app-a", Some("abc")), body(Some(&a), "abc", plain.clone()), mode), Ok(()));
            // Inngest: its own UUID, `step` in ctx for a planned step.
            assert_eq!(run(&to("app-a", Some("abc")), body(Some(INNGEST_UUID), "step", plain.clone()), mode), Ok(()));
            assert_eq!(run(&to("app-a", Some("abc")), body(Some(INNGEST_UUID), "abc", plain.clone()), mode), Ok(()));
            // No query stepId, no ctx: nothing to compare.
            assert_eq!(run(&to("app-a", None), body(None, "abc", plain.clone()), mode), Ok(()));
            assert_eq!(run(&to("app-a", Some("abc")), json!({"event": plain}), mode), Ok(()));
        }
        let invoked = json!({"name": INVOKED_EVENT, "data": {"_inngest": {"fn_id": "app-a"}}});
        assert_eq!(run(&to("app-a", Some("step")), body(Some(INNGEST_UUID), "step", invoked), Mode::Cloud), Ok(()));
        let failed = json!({"name": FAILED_EVENT, "data": {"function_id": "app-b"}});
        assert_eq!(run(&to("app-b-failure", Some("step")), body(None, "step", failed.clone()), Mode::Cloud), Ok(()));
        // A plain function may listen to every failure.
        assert_eq!(run(&to("app-a", Some("step")), body(None, "step", failed), Mode::Cloud), Ok(()));
    }

    /// Every call the capture sent to the official SDKs (all folders, dev
    /// and cloud, checkpointing included) passes, in cloud mode.
    #[test]
    fn every_captured_call_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
        let mut checked = 0;
        for folder in std::fs::read_dir(&root).unwrap().flatten().filter(|d| d.path().is_dir()) {
            let mut calls = Vec::new();
            for file in std::fs::read_dir(folder.path()).unwrap().flatten() {
                let Ok(text) = std::fs::read_to_string(file.path()) else { continue };
                let Ok(f) = serde_json::from_str::<Value>(&text) else { continue };
                let rq = &f["request"];
                if f["direction"] != "server->sdk" || rq["method"] != "POST" {
                    continue;
                }
                let url = reqwest::Url::parse(&format!("http://x{}", rq["path"].as_str().unwrap())).unwrap();
                let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
                if let Some(fn_id) = q.get("fnId") {
                    calls.push((file.path(), fn_id.clone(), q.get("stepId").cloned(), rq["body_raw"].as_str().unwrap().to_string()));
                }
            }
            let mut names = FunctionNames::default();
            for (_, slug, _, _) in &calls {
                names.add(slug);
            }
            for (path, slug, step, raw) in &calls {
                let Ok(request) = serde_json::from_str::<IncomingCallRequest>(raw) else { continue };
                let addressed = Addressed { step_id: step.as_deref(), ..to(slug, None) };
                assert_eq!(check(&names, &addressed, raw.as_bytes(), &request, Mode::Cloud), Ok(()), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked > 200, "only {checked} captured calls found");
    }

    #[test]
    fn calls_for_another_function_are_refused_in_cloud_mode() {
        let plain = json!({"name": "app/x", "data": {}});
        for name in [derived_uuid("app-b"), derived_uuid("app-b").to_uppercase(), "app-b".to_string()] {
            let r = run(&to("app-a", Some("step")), body(Some(&name), "step", plain.clone()), Mode::Cloud);
            assert!(matches!(&r, Err(Refusal::Mismatch(m)) if m.contains("\"app-b\"")), "{name}: {r:?}");
            // Dev mode keeps its old leniency about functions.
            assert_eq!(run(&to("app-a", Some("step")), body(Some(&name), "step", plain.clone()), Mode::Dev), Ok(()));
        }
        let invoked = json!({"name": INVOKED_EVENT, "data": {"_inngest": {"fn_id": "app-b"}}});
        let r = run(&to("app-a", Some("step")), body(Some(INNGEST_UUID), "step", invoked.clone()), Mode::Cloud);
        assert!(matches!(r, Err(Refusal::Mismatch(_))), "{r:?}");
        let hears = Addressed { hears_invoked_events: true, ..to("app-a", Some("step")) };
        assert_eq!(run(&hears, body(Some(INNGEST_UUID), "step", invoked), Mode::Cloud), Ok(()));
        let failed = json!({"name": FAILED_EVENT, "data": {"function_id": "app-a"}});
        let r = run(&to("app-b-failure", Some("step")), body(None, "step", failed), Mode::Cloud);
        assert!(matches!(&r, Err(Refusal::Mismatch(m)) if m.contains("app-a-failure")), "{r:?}");
        let r = run(&to("app-a", Some("step")), json!({"ctx": {"fn_id": 7}}), Mode::Cloud);
        assert!(matches!(r, Err(Refusal::Malformed(_))), "{r:?}");
    }

    #[test]
    fn calls_for_another_step_are_refused_in_both_modes() {
        let plain = json!({"name": "app/x", "data": {}});
        let a = derived_uuid("app-a");
        for mode in [Mode::Cloud, Mode::Dev] {
            for fn_id in [None, Some(a.as_str()), Some(INNGEST_UUID)] {
                let r = run(&to("app-a", Some("def")), body(fn_id, "abc", plain.clone()), mode);
                assert!(matches!(&r, Err(Refusal::Mismatch(m)) if m.contains("\"abc\"")), "{fn_id:?}: {r:?}");
            }
            // An Ingot discovery call replayed to a step.
            for fn_id in [None, Some(a.as_str())] {
                let r = run(&to("app-a", Some("def")), body(fn_id, "step", plain.clone()), mode);
                assert!(matches!(r, Err(Refusal::Mismatch(_))), "{fn_id:?}: {r:?}");
            }
            // A step call replayed as discovery.
            let r = run(&to("app-a", Some("step")), body(Some(INNGEST_UUID), "abc", plain.clone()), mode);
            assert!(matches!(r, Err(Refusal::Mismatch(_))), "{r:?}");
        }
    }
}
