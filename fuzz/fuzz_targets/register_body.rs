//! Bytes as a `POST /fn/register` body: `RegisterRequest`, then what
//! `ingot_engine::registry::compile` does for each function (triggers and
//! their CEL, flow-control blocks and their CEL, durations), done here with
//! the same protocol and core calls so the target does not build the
//! engine; then the compiled triggers are matched against an event.
#![no_main]

use ingot_core::expr::Expr;
use ingot_core::matching::EventTrigger;
use ingot_protocol::flow::FlowConfig;
use ingot_protocol::sync::{FunctionConfig, RegisterRequest};
use ingot_protocol::timestr::parse_duration;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn compile(config: &FunctionConfig) -> Result<(Vec<EventTrigger>, FlowConfig), String> {
    let mut triggers = Vec::new();
    for t in &config.triggers {
        if let Some(event) = &t.event {
            triggers.push(EventTrigger::new(event, t.expression.as_deref())?);
        }
    }
    let flow = FlowConfig::parse(&config.rest)?;
    let mut exprs: Vec<&str> = Vec::new();
    exprs.extend(flow.concurrency.iter().filter_map(|c| c.key.as_deref()));
    exprs.extend(flow.throttle.as_ref().and_then(|t| t.key.as_deref()));
    exprs.extend(flow.rate_limit.as_ref().and_then(|t| t.key.as_deref()));
    exprs.extend(flow.debounce.as_ref().and_then(|t| t.key.as_deref()));
    exprs.extend(flow.batch.as_ref().and_then(|t| t.key.as_deref()));
    exprs.extend(flow.batch.as_ref().and_then(|t| t.if_exp.as_deref()));
    exprs.extend(flow.priority.as_ref().and_then(|t| t.run.as_deref()));
    exprs.extend(flow.idempotency.as_deref());
    exprs.extend(flow.singleton.as_ref().and_then(|t| t.key.as_deref()));
    exprs.extend(config.cancel.iter().flatten().filter_map(|c| c.if_exp.as_deref()));
    let event = json!({"name": "app/x", "data": {"plan": "pro", "n": 1}});
    for src in exprs.into_iter().filter(|s| !s.trim().is_empty()) {
        let e = Expr::compile(src)?;
        if let Some(v) = e.value(&[("event", &event)]) {
            let _ = ingot_core::flow::priority_offset_ms(&v);
            let _ = ingot_core::flow::key_string(&v);
        }
    }
    let periods = [
        flow.throttle.as_ref().map(|t| t.period.as_str()),
        flow.rate_limit.as_ref().map(|t| t.period.as_str()),
        flow.debounce.as_ref().map(|t| t.period.as_str()),
        flow.debounce.as_ref().and_then(|t| t.timeout.as_deref()),
        flow.batch.as_ref().map(|t| t.timeout.as_str()),
        flow.timeouts.as_ref().and_then(|t| t.start.as_deref()),
        flow.timeouts.as_ref().and_then(|t| t.finish.as_deref()),
    ];
    let now = 1_700_000_000_000i64;
    for p in periods.into_iter().flatten() {
        if let Ok(d) = parse_duration(p) {
            let ms = ingot_protocol::timestr::millis_i64(d);
            let _ = now.checked_add(ms).expect("a parsed duration fits after now");
            if let Some(t) = &flow.throttle {
                let _ = ingot_core::flow::gcra(Some(now), now, t.limit, ms, t.burst);
            }
            if let Some(r) = &flow.rate_limit {
                let _ = ingot_core::flow::rate_limit_gcra(None, now, r.limit, ms);
            }
            let _ = ingot_core::flow::debounce_fire_at(now, now, ms, Some(ms));
        }
    }
    Ok((triggers, flow))
}

fuzz_target!(|data: &[u8]| {
    ingot_fuzz_quiet_panics();
    let Ok(req) = serde_json::from_slice::<RegisterRequest>(data) else {
        return;
    };
    let event = json!({"name": "app/x", "data": {"plan": "pro", "n": 1}});
    for f in &req.functions {
        // The engine compiles the config as stored (JSON), as here.
        let Ok(stored) = serde_json::to_value(f) else {
            continue;
        };
        let Ok(config) = serde_json::from_value::<FunctionConfig>(stored) else {
            continue;
        };
        let attempts = config.max_attempts();
        assert!((1..=ingot_protocol::sync::MAX_RETRIES + 1).contains(&attempts));
        let _ = config.url();
        if let Ok((triggers, _)) = compile(&config) {
            for t in &triggers {
                let _ = t.matches("app/x", &event);
            }
        }
    }
});

/// cel-interpreter panics on some inputs and `Expr` turns those panics into
/// errors; libFuzzer's hook would abort on them first. An uncaught panic
/// still aborts (libfuzzer-sys catches it at the top).
fn ingot_fuzz_quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
