//! `strategy/generate` end to end: a brief becomes stored rows (budget
//! split, schedule, KPIs) in the app's SQLite database, each stage a step,
//! and `strategy/generated` is emitted; an invalid brief fails at once.

use advert_01::jobs::client::{Audience, Channel, GenerateStrategy, Goal};
use advert_01::jobs::strategy::{self, store};
use chrono::NaiveDate;
use sqlx::Row;

use crate::support::TestApp;

pub fn brief() -> GenerateStrategy {
    GenerateStrategy {
        campaign: "Spring launch".to_string(),
        goal: Goal::Leads,
        budget: 12_000.0,
        currency: "eur".to_string(),
        channels: vec![Channel::Search, Channel::Social, Channel::Email],
        audience: Audience {
            description: "Owners of small bakeries".to_string(),
            age_min: Some(45),
            age_max: Some(64),
            locations: vec!["FR".to_string(), "BE".to_string()],
            interests: vec![],
        },
        start_date: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        end_date: NaiveDate::from_ymd_opt(2026, 5, 31).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brief_becomes_a_stored_strategy() {
    let app = TestApp::start(&[]).await;
    let event_id = app.send::<GenerateStrategy>(brief()).await;
    let run = app.wait_run(&event_id, strategy::ID).await.unwrap();
    assert_eq!(run.status, "Completed", "{run:?}");
    let id = run.output["strategy_id"].as_str().expect("a strategy id").to_string();
    assert_eq!(run.output["channels"], serde_json::json!(["search", "email", "social"]));

    // Each stage is its own step.
    let steps = app.steps(&run.run_id).await.unwrap();
    let text = serde_json::to_string(&steps).unwrap();
    for step in ["validate-brief", "allocate-budget", "plan-schedule", "set-kpis", "store-strategy", "emit-generated"] {
        assert!(text.contains(step), "step {step} not in {text}");
    }

    // The rows, read straight from the app's database.
    let pool = app.running.deps.db.pool();
    let row = sqlx::query("SELECT campaign, goal, currency, total_budget_cents, event_id, run_id FROM strategies WHERE id = ?")
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("campaign"), "Spring launch");
    assert_eq!(row.get::<String, _>("goal"), "leads");
    assert_eq!(row.get::<String, _>("currency"), "EUR");
    assert_eq!(row.get::<i64, _>("total_budget_cents"), 1_200_000);
    assert_eq!(row.get::<Option<String>, _>("event_id").as_deref(), Some(event_id.as_str()));
    assert_eq!(row.get::<String, _>("run_id"), run.run_id);
    let alloc: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT channel, share_bps, amount_cents FROM strategy_allocations WHERE strategy_id = ? ORDER BY position")
            .bind(&id)
            .fetch_all(pool)
            .await
            .unwrap();
    // Leads: search 40 ×1.25 (45+), email 20 ×1.5 (45+), social 25 ×0.75 (45+).
    assert_eq!(alloc, [("search".to_string(), 5063, 607_595), ("email".to_string(), 3038, 364_557), ("social".to_string(), 1899, 227_848)]);
    let phases: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT name, start_date, end_date, budget_cents FROM strategy_phases WHERE strategy_id = ? ORDER BY position")
            .bind(&id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(phases.len(), 3, "{phases:?}");
    assert_eq!((phases[0].0.as_str(), phases[0].1.as_str()), ("Launch", "2026-04-01"));
    assert_eq!((phases[2].0.as_str(), phases[2].2.as_str()), ("Close", "2026-05-31"));
    assert_eq!(phases.iter().map(|p| p.3).sum::<i64>(), 1_200_000);
    let kpis: Vec<(Option<String>, String, i64)> =
        sqlx::query_as("SELECT channel, metric, target FROM strategy_kpis WHERE strategy_id = ? ORDER BY position")
            .bind(&id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(kpis.len(), 5, "{kpis:?}");
    assert!(kpis[..3].iter().all(|k| k.1 == "leads" && k.0.is_some()), "{kpis:?}");
    assert_eq!((kpis[4].0.as_deref(), kpis[4].1.as_str()), (None, "cpl"));

    // The stored strategy reads back whole, and through the app's API.
    let stored = store::load(&app.running.deps.db, &id).await.unwrap().unwrap();
    assert!(stored.summary.starts_with("Spring launch (leads goal): EUR 12,000.00 over 61 days"), "{}", stored.summary);
    assert!(stored.allocations[0].rationale.contains("40 base points for a leads goal"), "{:?}", stored.allocations[0]);
    let api: serde_json::Value = reqwest::get(format!("{}/api/strategies/{id}", app.app())).await.unwrap().json().await.unwrap();
    assert_eq!(api["brief"]["campaign"], "Spring launch");

    // And the function said so.
    let generated = app.wait_event("strategy/generated", |d| d["strategy_id"] == id.as_str()).await.unwrap();
    assert_eq!(generated["data"]["total_budget_cents"], 1_200_000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_brief_fails_at_once_and_stores_nothing() {
    let app = TestApp::start(&[]).await;
    let mut bad = brief();
    bad.channels.clear();
    bad.end_date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let event_id = app.send::<GenerateStrategy>(bad).await;
    let run = app.wait_run(&event_id, strategy::ID).await.unwrap();
    assert_eq!(run.status, "Failed", "{run:?}");
    let out = run.output.to_string();
    assert!(out.contains("at least one channel is needed") && out.contains("is before start_date"), "{out}");
    assert!(out.contains("NonRetriableError"), "{out}");
    assert_eq!(store::count(&app.running.deps.db).await.unwrap(), 0);
    app.stop().await;
}
