//! `strategy-generate` on `strategy/generate`: turns a campaign brief into a
//! stored strategy, one step per stage (validate, allocate, schedule, KPIs,
//! store), then emits `strategy/generated`. The rules are in [`plan`], the
//! rows in [`store`].

pub mod plan;
pub mod store;

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use ingot::{Ctx, Error, Function};

use super::client::{GenerateStrategy, StrategyGenerated};
use super::Deps;
use plan::{Allocation, Brief, Kpi, Phase};
use store::StoredStrategy;

/// The function's id.
pub const ID: &str = "strategy-generate";

/// The function.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID)
        .name("Generate a campaign strategy")
        .trigger_event::<GenerateStrategy>()
        .retries(3)
        .with_shared_state(deps)
        .handler(generate)
        .into()
}

async fn generate(ctx: Ctx<GenerateStrategy>) -> Result<StrategyGenerated, Error> {
    let deps = ctx.state::<Deps>()?;
    let event = &ctx.event.data;
    // The id is drawn inside a step, so every later call of the run sees
    // the same one and a retried save replaces its own rows.
    let (id, brief): (String, Brief) = ctx
        .step
        .run("validate-brief", || async {
            let brief = plan::validate(event).map_err(|p| Error::non_retriable(format!("the brief is invalid: {}", p.join("; "))))?;
            Ok((ulid::Ulid::new().to_string(), brief))
        })
        .await?;
    let allocations: Vec<Allocation> = ctx.step.run("allocate-budget", || async { Ok(plan::allocate(&brief)) }).await?;
    let phases: Vec<Phase> = ctx.step.run("plan-schedule", || async { Ok(plan::schedule(&brief, &allocations)) }).await?;
    let kpis: Vec<Kpi> = ctx.step.run("set-kpis", || async { Ok(plan::kpis(&brief, &allocations)) }).await?;
    let summary = plan::summarize(&brief, &allocations, &phases, &kpis);
    let generated = StrategyGenerated {
        strategy_id: id.clone(),
        campaign: brief.campaign.clone(),
        goal: brief.goal,
        total_budget_cents: brief.budget_cents,
        currency: brief.currency.clone(),
        channels: allocations.iter().map(|a| a.channel).collect(),
    };
    let stored = StoredStrategy {
        id,
        brief,
        allocations,
        phases,
        kpis,
        summary,
        event_id: ctx.event.id.clone(),
        run_id: ctx.run_id.to_string(),
        created_at: String::new(),
    };
    ctx.step
        .run("store-strategy", || async {
            let row = StoredStrategy { created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true), ..stored.clone() };
            store::save(&deps.db, &row).await?;
            tracing::info!(strategy_id = %row.id, campaign = %row.brief.campaign, "strategy stored");
            Ok(row.id)
        })
        .await?;
    ctx.step.send_event("emit-generated", generated.clone()).await?;
    Ok(generated)
}
