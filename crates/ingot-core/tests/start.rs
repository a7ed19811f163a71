//! Table tests of the start planner, `plan_start`: one event, one function,
//! every flow-control choice at run start. Configs are written as the SDKs
//! register them (the flow blocks of a function config).

use ingot_core::flow::ConcurrencyKey;
use ingot_core::start::{plan_start, CancelListener, RunPlan, Singleton, StartGuard, StartPlan, StartRequest, Throttle, IDEMPOTENCY_MS};
use ingot_protocol::flow::FlowConfig;
use ingot_protocol::sync::CancelConfig;
use serde_json::{json, Value};

const NOW: i64 = 1_795_709_519_104;
const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

fn flow(blocks: Value) -> FlowConfig {
    let map = blocks.as_object().expect("an object").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    FlowConfig::parse(&map).expect("valid flow blocks")
}

fn event() -> Value {
    json!({"name": "shop/order", "data": {"user": "u1", "region": "eu", "vip": true, "prio": 30}, "id": "ev-1", "ts": NOW})
}

fn plan(blocks: Value, cancel: &[CancelConfig], paused: bool, user_id: Option<&str>) -> StartPlan {
    let flow = flow(blocks);
    let ev = event();
    plan_start(&StartRequest { function: "app-f", flow: &flow, cancel, paused, event: &ev, user_event_id: user_id, now_ms: NOW })
}

/// A run with no flow control: first call now, nothing else.
fn plain_run() -> RunPlan {
    RunPlan {
        concurrency: vec![],
        first_call_at_ms: NOW,
        throttle: None,
        cancel_listeners: vec![],
        start_timeout_at_ms: None,
        finish_timeout_at_ms: None,
    }
}

fn run_with(edit: impl FnOnce(&mut RunPlan)) -> StartPlan {
    let mut run = plain_run();
    edit(&mut run);
    StartPlan::Run { guards: vec![], singleton: None, run }
}

#[test]
fn each_flow_control_choice() {
    let cases: Vec<(&str, Value, StartPlan)> = vec![
        ("no flow control", json!({}), run_with(|_| {})),
        (
            "batch by key",
            json!({"batchEvents": {"maxSize": 10, "timeout": "5s", "key": "event.data.user"}}),
            StartPlan::Batch { key: "u1".into(), max_size: 10, timeout_ms: 5_000 },
        ),
        (
            "batch timeout has a floor",
            json!({"batchEvents": {"maxSize": 10, "timeout": "10ms"}}),
            StartPlan::Batch { key: String::new(), max_size: 10, timeout_ms: 1_000 },
        ),
        ("batch of one is a plain run", json!({"batchEvents": {"maxSize": 1, "timeout": "5s"}}), run_with(|_| {})),
        (
            "batch `if` excludes the event",
            json!({"batchEvents": {"maxSize": 5, "timeout": "5s", "if": "event.data.vip == false"}}),
            run_with(|_| {}),
        ),
        (
            "debounce with timeout",
            json!({"debounce": {"period": "10s", "key": "event.data.region", "timeout": "1m"}}),
            StartPlan::Debounce { key: "eu".into(), period_ms: 10_000, timeout_ms: Some(60_000) },
        ),
        (
            "singleton skip",
            json!({"singleton": {"key": "event.data.user", "mode": "skip"}}),
            StartPlan::Run {
                guards: vec![StartGuard::Singleton {
                    scope: "single:app-f".into(),
                    key: "u1".into(),
                    skip: "singleton: a run with this key is already running".into(),
                }],
                singleton: None,
                run: plain_run(),
            },
        ),
        (
            "singleton cancel replaces the holder",
            json!({"singleton": {"key": "event.data.user", "mode": "cancel"}}),
            StartPlan::Run {
                guards: vec![],
                singleton: Some(Singleton { scope: "single:app-f".into(), key: "u1".into() }),
                run: plain_run(),
            },
        ),
        (
            "rate limit",
            json!({"rateLimit": {"limit": 0, "period": "1m", "key": "event.data.user"}}),
            StartPlan::Run {
                guards: vec![StartGuard::RateLimit {
                    name: "rl:app-f:u1".into(),
                    limit: 1,
                    period_ms: 60_000,
                    skip: "rate limited".into(),
                }],
                singleton: None,
                run: plain_run(),
            },
        ),
        (
            "idempotency",
            json!({"idempotency": "event.data.user"}),
            StartPlan::Run {
                guards: vec![StartGuard::UniqueKey {
                    scope: "idem:app-f".into(),
                    key: "u1".into(),
                    expires_at_ms: NOW + IDEMPOTENCY_MS,
                    skip: Some("idempotency key already used".into()),
                }],
                singleton: None,
                run: plain_run(),
            },
        ),
        (
            "throttle keyed",
            json!({"throttle": {"limit": 3, "period": "10s", "burst": 2, "key": "event.data.region"}}),
            run_with(|r| r.throttle = Some(Throttle { name: "thr:app-f:eu".into(), limit: 3, period_ms: 10_000, burst: 2 })),
        ),
        ("priority runs earlier", json!({"priority": {"run": "event.data.prio"}}), run_with(|r| r.first_call_at_ms = NOW - 30_000)),
        ("negative priority runs later", json!({"priority": {"run": "-30"}}), run_with(|r| r.first_call_at_ms = NOW + 30_000)),
        (
            "concurrency keys by scope",
            json!({"concurrency": [{"limit": 2, "key": "event.data.user"}, {"limit": 5, "scope": "env", "key": "event.data.region"}]}),
            run_with(|r| {
                r.concurrency = vec![
                    ConcurrencyKey { key: "c:fn:app-f:event.data.user:u1".into(), limit: 2 },
                    ConcurrencyKey { key: "c:env:event.data.region:eu".into(), limit: 5 },
                ]
            }),
        ),
        (
            "timeouts",
            json!({"timeouts": {"start": "30s", "finish": "2m"}}),
            run_with(|r| {
                r.start_timeout_at_ms = Some(NOW + 30_000);
                r.finish_timeout_at_ms = Some(NOW + 120_000);
            }),
        ),
        (
            "durations over a year are capped at a year",
            json!({"timeouts": {"finish": "10000h"}, "throttle": {"limit": 1, "period": "10000h"}}),
            run_with(|r| {
                r.finish_timeout_at_ms = Some(NOW + YEAR_MS);
                r.throttle = Some(Throttle { name: "thr:app-f:".into(), limit: 1, period_ms: YEAR_MS, burst: 0 });
            }),
        ),
    ];
    for (case, blocks, want) in cases {
        assert_eq!(plan(blocks, &[], false, None), want, "case {case:?}");
    }
}

#[test]
fn paused_functions_skip_before_anything_else() {
    let got = plan(json!({"batchEvents": {"maxSize": 10, "timeout": "5s"}}), &[], true, Some("ev-1"));
    assert_eq!(got, StartPlan::Skip { reason: "function paused".into() });
}

#[test]
fn batching_comes_before_debounce_and_guards() {
    let blocks = json!({"batchEvents": {"maxSize": 10, "timeout": "5s"}, "debounce": {"period": "1s"}, "idempotency": "event.data.user"});
    assert!(matches!(plan(blocks, &[], false, Some("ev-1")), StartPlan::Batch { .. }));
    let blocks = json!({"debounce": {"period": "1s"}, "rateLimit": {"limit": 1, "period": "1m"}});
    assert!(matches!(plan(blocks, &[], false, None), StartPlan::Debounce { .. }));
}

#[test]
fn guards_nest_event_id_then_idempotency_then_rate_limit_then_singleton() {
    let blocks = json!({
        "singleton": {"mode": "skip"},
        "rateLimit": {"limit": 5, "period": "1h"},
        "idempotency": "event.data.user",
    });
    let StartPlan::Run { guards, .. } = plan(blocks, &[], false, Some("ev-1")) else { panic!("a run") };
    let kinds: Vec<&str> = guards
        .iter()
        .map(|g| match g {
            StartGuard::UniqueKey { scope, .. } if scope.starts_with("run:") => "event id",
            StartGuard::UniqueKey { .. } => "idempotency",
            StartGuard::RateLimit { .. } => "rate limit",
            StartGuard::Singleton { .. } => "singleton",
        })
        .collect();
    assert_eq!(kinds, ["event id", "idempotency", "rate limit", "singleton"]);
    assert!(matches!(&guards[0], StartGuard::UniqueKey { key, skip: None, .. } if key == "ev-1"), "a repeated event id is not a skip");
}

#[test]
fn cancel_listeners_default_to_a_year() {
    let cancel = vec![
        CancelConfig {
            event: "shop/cancelled".into(),
            if_exp: Some("event.data.user == async.data.user".into()),
            timeout: Some("1h".into()),
        },
        CancelConfig { event: "shop/void".into(), if_exp: Some("  ".into()), timeout: None },
    ];
    let got = plan(json!({}), &cancel, false, None);
    assert_eq!(
        got,
        run_with(|r| r.cancel_listeners = vec![
            CancelListener {
                event: "shop/cancelled".into(),
                if_exp: Some("event.data.user == async.data.user".into()),
                expires_at_ms: NOW + 3_600_000
            },
            CancelListener { event: "shop/void".into(), if_exp: None, expires_at_ms: NOW + YEAR_MS },
        ])
    );
}
