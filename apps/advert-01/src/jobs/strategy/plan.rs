//! The strategy rules: pure, deterministic functions from a campaign brief to
//! a budget split, a schedule and KPIs. Every number comes from a table in
//! this file and carries a sentence saying how it was reached, so a planner
//! can check (and argue with) each one.
//!
//! Money is in cents (`i64`) throughout; splits use the largest-remainder
//! method so the parts always add up to the whole.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::jobs::client::{Audience, Channel, GenerateStrategy, Goal};

/// The longest campaign the rules plan for.
pub const MAX_DAYS: i64 = 366;
/// The largest budget accepted, in currency units.
pub const MAX_BUDGET: f64 = 1e10;

/// A brief that passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brief {
    /// The campaign's name.
    pub campaign: String,
    /// Its goal.
    pub goal: Goal,
    /// The budget in cents.
    pub budget_cents: i64,
    /// Upper-case ISO 4217 code.
    pub currency: String,
    /// The channels, without repeats, in the order given.
    pub channels: Vec<Channel>,
    /// Who it is for.
    pub audience: Audience,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day (inclusive).
    pub end_date: NaiveDate,
}

impl Brief {
    /// Days the campaign runs, both ends included.
    pub fn days(&self) -> i64 {
        (self.end_date - self.start_date).num_days() + 1
    }
}

/// A channel's part of the budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The channel.
    pub channel: Channel,
    /// Its share in basis points (all shares add up to 10,000).
    pub share_bps: i64,
    /// Its budget in cents (all add up to the total).
    pub amount_cents: i64,
    /// Why.
    pub rationale: String,
}

/// A stretch of the campaign with its own budget and focus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Launch, Optimise, Close (or Flight for one-day campaigns).
    pub name: String,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day (inclusive).
    pub end_date: NaiveDate,
    /// Its budget in cents (all add up to the total).
    pub budget_cents: i64,
    /// What to do in it.
    pub focus: String,
}

/// A target to measure the campaign by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpi {
    /// The channel it applies to; `None` for the whole campaign.
    pub channel: Option<Channel>,
    /// What is counted: impressions, clicks, leads, purchases, cpm, cpc, cpl, cpa.
    pub metric: String,
    /// The target.
    pub target: i64,
    /// `count` or `cents`.
    pub unit: String,
    /// How the target was reached.
    pub rationale: String,
}

/// Checks a brief and normalizes it; every problem found is listed.
pub fn validate(event: &GenerateStrategy) -> Result<Brief, Vec<String>> {
    let mut problems = Vec::new();
    let campaign = event.campaign.trim().to_string();
    if campaign.is_empty() {
        problems.push("campaign must not be empty".to_string());
    }
    if !(event.budget.is_finite() && event.budget > 0.0 && event.budget <= MAX_BUDGET) {
        problems.push(format!("budget must be a positive amount up to {MAX_BUDGET}, got {}", event.budget));
    }
    let currency = event.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        problems.push(format!("currency must be a three-letter ISO 4217 code, got {:?}", event.currency));
    }
    let mut channels = Vec::new();
    for c in &event.channels {
        if !channels.contains(c) {
            channels.push(*c);
        }
    }
    if channels.is_empty() {
        problems.push("at least one channel is needed".to_string());
    }
    let days = (event.end_date - event.start_date).num_days() + 1;
    if days < 1 {
        problems.push(format!("end_date {} is before start_date {}", event.end_date, event.start_date));
    } else if days > MAX_DAYS {
        problems.push(format!("the campaign runs {days} days; at most {MAX_DAYS} are planned"));
    }
    let a = &event.audience;
    if a.description.trim().is_empty() {
        problems.push("audience.description must not be empty".to_string());
    }
    for age in [a.age_min, a.age_max].into_iter().flatten() {
        if !(13..=100).contains(&age) {
            problems.push(format!("audience ages must be between 13 and 100, got {age}"));
        }
    }
    if let (Some(lo), Some(hi)) = (a.age_min, a.age_max) {
        if lo > hi {
            problems.push(format!("audience.age_min {lo} is above age_max {hi}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Brief {
        campaign,
        goal: event.goal,
        budget_cents: (event.budget * 100.0).round() as i64,
        currency,
        channels,
        audience: a.clone(),
        start_date: event.start_date,
        end_date: event.end_date,
    })
}

/// Base weight points of a channel for a goal, and why it gets them.
fn base_weight(goal: Goal, channel: Channel) -> (i64, &'static str) {
    use Channel::*;
    use Goal::*;
    match (goal, channel) {
        (Awareness, Video) => (30, "video builds reach and recall at scale"),
        (Awareness, Social) => (30, "social reaches broad audiences cheaply"),
        (Awareness, Display) => (25, "display gives the lowest cost per thousand impressions"),
        (Awareness, Search) => (10, "search only reaches people already looking"),
        (Awareness, Email) => (5, "email only reaches people already known"),
        (Traffic, Search) => (35, "search clicks come from people with intent"),
        (Traffic, Social) => (30, "social drives cheap clicks"),
        (Traffic, Display) => (20, "display adds cheap volume"),
        (Traffic, Email) => (10, "email brings known people back"),
        (Traffic, Video) => (5, "video rarely drives clicks"),
        (Leads, Search) => (40, "search captures people already looking for a solution"),
        (Leads, Social) => (25, "social lead forms convert well"),
        (Leads, Email) => (20, "email nurtures known contacts into leads"),
        (Leads, Display) => (10, "display supports retargeting"),
        (Leads, Video) => (5, "video rarely converts directly"),
        (Sales, Search) => (45, "search has the highest purchase intent"),
        (Sales, Social) => (20, "social retargeting and shopping ads convert"),
        (Sales, Email) => (15, "email converts existing customers cheaply"),
        (Sales, Display) => (15, "display retargeting recovers abandoned carts"),
        (Sales, Video) => (5, "video rarely converts directly"),
    }
}

/// Audience adjustments to a channel's weight, in percent, with reasons.
fn audience_adjustments(audience: &Audience, channel: Channel) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    if audience.age_max.is_some_and(|a| a <= 34) {
        match channel {
            Channel::Social => out.push((150, "×1.5: an audience under 35 spends more time on social".to_string())),
            Channel::Video => out.push((125, "×1.25: an audience under 35 watches more online video".to_string())),
            _ => {}
        }
    }
    if audience.age_min.is_some_and(|a| a >= 45) {
        match channel {
            Channel::Email => out.push((150, "×1.5: an audience over 45 reads more email".to_string())),
            Channel::Search => out.push((125, "×1.25: an audience over 45 searches before buying".to_string())),
            Channel::Social => out.push((75, "×0.75: an audience over 45 uses social less".to_string())),
            _ => {}
        }
    }
    if !audience.interests.is_empty() && channel == Channel::Display {
        out.push((120, "×1.2: interest targeting is strongest on display networks".to_string()));
    }
    out
}

/// Splits `total` in proportion to `weights` (largest remainder: the parts
/// add up to `total`; ties go to the earlier weight).
pub fn split(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().sum();
    if sum <= 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i64> = weights.iter().map(|w| total * w / sum).collect();
    let mut rest = total - parts.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse((total * weights[i]) % sum), i));
    for i in order {
        if rest <= 0 {
            break;
        }
        parts[i] += 1;
        rest -= 1;
    }
    parts
}

/// `12345678` cents as `123,456.78`.
pub fn money(cents: i64) -> String {
    let units = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{grouped}.{:02}", cents % 100)
}

fn percent(bps: i64) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// Splits the budget across the brief's channels: base points by goal,
/// adjusted for the audience, shares in proportion to the points.
pub fn allocate(brief: &Brief) -> Vec<Allocation> {
    // Points are kept ×100 so percentage adjustments stay whole numbers.
    let mut weights = Vec::new();
    let mut reasons = Vec::new();
    for &channel in &brief.channels {
        let (base, why) = base_weight(brief.goal, channel);
        let mut points = base * 100;
        let mut reason = format!("{base} base points for a {} goal ({why})", brief.goal.as_str());
        for (pct, adj) in audience_adjustments(&brief.audience, channel) {
            points = points * pct / 100;
            reason.push_str("; ");
            reason.push_str(&adj);
        }
        weights.push(points);
        reasons.push(reason);
    }
    let total_points: i64 = weights.iter().sum();
    let shares = split(10_000, &weights);
    let amounts = split(brief.budget_cents, &weights);
    let mut out: Vec<Allocation> = brief
        .channels
        .iter()
        .enumerate()
        .map(|(i, &channel)| Allocation {
            channel,
            share_bps: shares[i],
            amount_cents: amounts[i],
            rationale: format!(
                "{}: {} → {:.2} of {:.2} points = {}",
                channel.as_str(),
                reasons[i],
                weights[i] as f64 / 100.0,
                total_points as f64 / 100.0,
                percent(shares[i])
            ),
        })
        .collect();
    out.sort_by_key(|a| (std::cmp::Reverse(a.amount_cents), a.channel));
    out
}

/// Budget weights of the Launch, Optimise and Close phases for a goal.
fn phase_weights(goal: Goal) -> [i64; 3] {
    match goal {
        Goal::Awareness => [40, 35, 25],
        Goal::Traffic => [30, 40, 30],
        Goal::Leads => [25, 45, 30],
        Goal::Sales => [20, 40, 40],
    }
}

fn close_focus(goal: Goal) -> &'static str {
    match goal {
        Goal::Awareness => "hold frequency at 2-3 a week; rotate in fresh creatives to avoid fatigue",
        Goal::Traffic => "keep only ad sets whose cost per click is under target; push the best landing page",
        Goal::Leads => "retarget visitors who did not convert; follow up every lead within a day",
        Goal::Sales => "retarget cart abandoners and push offers before the end date",
    }
}

/// Splits the campaign into phases: Launch (first quarter), Optimise, Close
/// (last quarter); two phases under 14 days, one for a single day.
pub fn schedule(brief: &Brief, allocations: &[Allocation]) -> Vec<Phase> {
    let days = brief.days();
    let lead = allocations.first().map(|a| a.channel.as_str()).unwrap_or("the main channel");
    let w = phase_weights(brief.goal);
    let launch_focus = format!("launch on every channel, weight on {lead}; test at least 3 creatives per channel");
    let optimise_focus = "move 10% of budget each week from the weakest channel to the strongest; pause creatives below median CTR";
    let plan: Vec<(&str, i64, i64, String)> = if days == 1 {
        vec![("Flight", 1, 100, launch_focus)]
    } else if days < 14 {
        let first = (days + 1) / 2;
        vec![
            ("Launch", first, w[0] * 2 + w[1], launch_focus),
            ("Close", days - first, w[1] + w[2] * 2, close_focus(brief.goal).to_string()),
        ]
    } else {
        let edge = ((days as f64) * 0.25).round() as i64;
        vec![
            ("Launch", edge, w[0], launch_focus),
            ("Optimise", days - 2 * edge, w[1], optimise_focus.to_string()),
            ("Close", edge, w[2], close_focus(brief.goal).to_string()),
        ]
    };
    let budgets = split(brief.budget_cents, &plan.iter().map(|p| p.2).collect::<Vec<_>>());
    let mut start = brief.start_date;
    plan.into_iter()
        .zip(budgets)
        .map(|((name, len, _, focus), budget_cents)| {
            let end = start + chrono::Duration::days(len - 1);
            let phase = Phase { name: name.to_string(), start_date: start, end_date: end, budget_cents, focus };
            start = end + chrono::Duration::days(1);
            phase
        })
        .collect()
}

/// Benchmarks per channel: cost per thousand impressions (cents), click
/// rate and conversion rate (basis points).
fn benchmarks(channel: Channel) -> (i64, i64, i64) {
    match channel {
        Channel::Search => (4_000, 300, 400),
        Channel::Social => (800, 90, 150),
        Channel::Display => (300, 10, 80),
        Channel::Video => (1_200, 40, 50),
        Channel::Email => (500, 250, 300),
    }
}

/// The metric a goal is judged by, and the cost metric that goes with it.
fn goal_metrics(goal: Goal) -> (&'static str, &'static str) {
    match goal {
        Goal::Awareness => ("impressions", "cpm"),
        Goal::Traffic => ("clicks", "cpc"),
        Goal::Leads => ("leads", "cpl"),
        Goal::Sales => ("purchases", "cpa"),
    }
}

/// Targets per channel for the goal's metric, and for the whole campaign
/// the total and its cost per result.
pub fn kpis(brief: &Brief, allocations: &[Allocation]) -> Vec<Kpi> {
    let (metric, cost_metric) = goal_metrics(brief.goal);
    let mut out = Vec::new();
    let mut total = 0;
    for a in allocations {
        let (cpm, ctr, cvr) = benchmarks(a.channel);
        let impressions = a.amount_cents * 1_000 / cpm;
        let clicks = impressions * ctr / 10_000;
        let conversions = clicks * cvr / 10_000;
        let target = match brief.goal {
            Goal::Awareness => impressions,
            Goal::Traffic => clicks,
            Goal::Leads | Goal::Sales => conversions,
        };
        total += target;
        out.push(Kpi {
            channel: Some(a.channel),
            metric: metric.to_string(),
            target,
            unit: "count".to_string(),
            rationale: format!(
                "{} {} at a {} {} CPM, {} CTR, {} conversion rate → {impressions} impressions, {clicks} clicks, {conversions} conversions",
                brief.currency,
                money(a.amount_cents),
                brief.currency,
                money(cpm),
                percent(ctr),
                percent(cvr)
            ),
        });
    }
    out.push(Kpi {
        channel: None,
        metric: metric.to_string(),
        target: total,
        unit: "count".to_string(),
        rationale: format!("sum of the channel targets for {metric}"),
    });
    let (cost, how) = match (brief.goal, total) {
        (_, 0) => (brief.budget_cents, "no result expected at benchmark rates: the whole budget per result".to_string()),
        (Goal::Awareness, n) => (brief.budget_cents * 1_000 / n, format!("budget ÷ {n} impressions × 1,000")),
        (_, n) => (brief.budget_cents / n, format!("budget ÷ {n} {metric}")),
    };
    out.push(Kpi { channel: None, metric: cost_metric.to_string(), target: cost, unit: "cents".to_string(), rationale: how });
    out
}

/// One paragraph saying what the strategy is.
pub fn summarize(brief: &Brief, allocations: &[Allocation], phases: &[Phase], kpis: &[Kpi]) -> String {
    let split: Vec<String> = allocations.iter().map(|a| format!("{} {}", a.channel.as_str(), percent(a.share_bps))).collect();
    let total = kpis.iter().find(|k| k.channel.is_none() && k.unit == "count");
    let cost = kpis.iter().find(|k| k.channel.is_none() && k.unit == "cents");
    let mut s = format!(
        "{} ({} goal): {} {} over {} days, split {}; {} phases.",
        brief.campaign,
        brief.goal.as_str(),
        brief.currency,
        money(brief.budget_cents),
        brief.days(),
        split.join(", "),
        phases.len()
    );
    if let (Some(t), Some(c)) = (total, cost) {
        s.push_str(&format!(" Target: {} {} at {} {} ({}).", t.target, t.metric, brief.currency, money(c.target), c.metric));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(goal: Goal, channels: Vec<Channel>, days: i64) -> Brief {
        let start = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        Brief {
            campaign: "Spring".into(),
            goal,
            budget_cents: 1_200_000,
            currency: "EUR".into(),
            channels,
            audience: Audience { description: "owners".into(), age_min: Some(45), age_max: None, locations: vec![], interests: vec![] },
            start_date: start,
            end_date: start + chrono::Duration::days(days - 1),
        }
    }

    #[test]
    fn split_always_adds_up() {
        assert_eq!(split(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(split(10_000, &[4000, 2500, 2000]), [4706, 2941, 2353]);
        assert_eq!(split(5, &[0, 0]), [0, 0]);
        for total in [1, 7, 999_999] {
            assert_eq!(split(total, &[3, 5, 11, 13]).iter().sum::<i64>(), total);
        }
    }

    #[test]
    fn allocation_follows_the_goal_table_and_the_audience() {
        let b = brief(Goal::Leads, vec![Channel::Search, Channel::Social, Channel::Email], 61);
        let a = allocate(&b);
        // Leads: search 40 ×1.25 = 50, social 25 ×0.75 = 18.75, email 20 ×1.5 = 30.
        assert_eq!(a.iter().map(|a| a.channel).collect::<Vec<_>>(), [Channel::Search, Channel::Email, Channel::Social]);
        assert_eq!(a.iter().map(|a| a.share_bps).collect::<Vec<_>>(), [5063, 3038, 1899]);
        assert_eq!(a.iter().map(|a| a.amount_cents).sum::<i64>(), 1_200_000);
        assert!(a[0].rationale.contains("40 base points for a leads goal"), "{}", a[0].rationale);
        assert!(a[0].rationale.contains("×1.25"), "{}", a[0].rationale);
    }

    #[test]
    fn schedule_covers_every_day_once() {
        for days in [1, 5, 13, 14, 61, 366] {
            let b = brief(Goal::Sales, vec![Channel::Search], days);
            let p = schedule(&b, &allocate(&b));
            assert_eq!(p.first().unwrap().start_date, b.start_date);
            assert_eq!(p.last().unwrap().end_date, b.end_date, "{days} days");
            assert_eq!(p.iter().map(|p| p.budget_cents).sum::<i64>(), b.budget_cents);
            for w in p.windows(2) {
                assert_eq!(w[1].start_date, w[0].end_date + chrono::Duration::days(1));
            }
        }
    }

    #[test]
    fn kpis_come_from_the_benchmarks() {
        let b = brief(Goal::Awareness, vec![Channel::Display], 30);
        let k = kpis(&b, &allocate(&b));
        // 12,000.00 at a 3.00 CPM = 4,000,000 impressions.
        assert_eq!((k[0].metric.as_str(), k[0].target), ("impressions", 4_000_000));
        assert_eq!((k[2].metric.as_str(), k[2].target), ("cpm", 300));
    }

    #[test]
    fn validation_lists_every_problem() {
        let mut e = GenerateStrategy {
            campaign: " ".into(),
            goal: Goal::Sales,
            budget: -1.0,
            currency: "euro".into(),
            channels: vec![],
            audience: Audience { description: "x".into(), age_min: Some(50), age_max: Some(30), locations: vec![], interests: vec![] },
            start_date: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
            end_date: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        };
        assert_eq!(validate(&e).unwrap_err().len(), 6);
        e.campaign = "ok".into();
        e.budget = 10.25;
        e.currency = "usd".into();
        e.channels = vec![Channel::Video, Channel::Video];
        e.audience.age_max = Some(60);
        e.end_date = e.start_date;
        let b = validate(&e).unwrap();
        assert_eq!((b.budget_cents, b.currency.as_str(), b.channels.len(), b.days()), (1025, "USD", 1, 1));
        assert_eq!(money(123_456_789), "1,234,567.89");
    }
}
