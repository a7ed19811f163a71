//! What an `export/pdf` event names, turned into a [`Document`]: a stored
//! strategy, the delivery report of a webhook destination, or a note.

use super::render::{Document, Section};
use crate::db::{Db, DbError};
use crate::jobs::client::DocumentRef;
use crate::jobs::strategy::plan::money;
use crate::jobs::strategy::store::{self, StoredStrategy};
use crate::jobs::webhook::attempts;

/// Most webhook attempts listed in a report.
pub const REPORT_LIMIT: u32 = 500;

/// The document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Nothing by that id.
    #[error("{0} not found")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Loads the document an event names.
pub async fn load(db: &Db, doc: &DocumentRef) -> Result<Document, LoadError> {
    match doc {
        DocumentRef::Strategy { id } => {
            let s = store::load(db, id).await?.ok_or_else(|| LoadError::NotFound(format!("strategy {id:?}")))?;
            Ok(strategy_document(&s))
        }
        DocumentRef::WebhookReport { url } => {
            let rows = attempts::for_url(db, url, REPORT_LIMIT).await?;
            let delivered = rows.iter().filter(|a| a.outcome == attempts::Outcome::Delivered).count();
            let lines = rows
                .iter()
                .map(|a| {
                    let status = a.status_code.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
                    let error = a.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
                    format!(
                        "{} · message {} · attempt {} · {status} · {} · {} ms{error}",
                        a.attempted_at,
                        a.message_id,
                        a.attempt,
                        a.outcome.as_str(),
                        a.duration_ms
                    )
                })
                .collect::<Vec<_>>();
            Ok(Document {
                title: "Webhook delivery report".to_string(),
                subtitle: Some(format!("{url}: {} attempts, {delivered} delivered", rows.len())),
                sections: vec![Section {
                    heading: "Attempts".to_string(),
                    paragraphs: if lines.is_empty() { vec!["No attempts recorded.".to_string()] } else { lines },
                }],
            })
        }
        DocumentRef::Note { title, body } => Ok(Document {
            title: title.clone(),
            subtitle: None,
            sections: vec![Section {
                heading: String::new(),
                paragraphs: body.split("\n\n").map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            }],
        }),
    }
}

/// A strategy laid out for reading.
pub fn strategy_document(s: &StoredStrategy) -> Document {
    let b = &s.brief;
    let cur = &b.currency;
    let a = &b.audience;
    let description = a.description.trim();
    let mut audience = vec![if description.ends_with(['.', '!', '?']) { description.to_string() } else { format!("{description}.") }];
    match (a.age_min, a.age_max) {
        (Some(lo), Some(hi)) => audience.push(format!("Ages {lo}–{hi}.")),
        (Some(lo), None) => audience.push(format!("Ages {lo} and over.")),
        (None, Some(hi)) => audience.push(format!("Ages up to {hi}.")),
        (None, None) => {}
    }
    if !a.locations.is_empty() {
        audience.push(format!("Locations: {}.", a.locations.join(", ")));
    }
    if !a.interests.is_empty() {
        audience.push(format!("Interests: {}.", a.interests.join(", ")));
    }
    let mut budget = Vec::new();
    for al in &s.allocations {
        budget.push(format!(
            "{} — {cur} {} ({}.{:02}%)",
            al.channel.as_str(),
            money(al.amount_cents),
            al.share_bps / 100,
            al.share_bps % 100
        ));
        budget.push(format!("Why: {}", al.rationale));
    }
    let schedule = s
        .phases
        .iter()
        .map(|p| format!("{}: {} to {} — {cur} {}. Focus: {}.", p.name, p.start_date, p.end_date, money(p.budget_cents), p.focus))
        .collect();
    let kpis = s
        .kpis
        .iter()
        .map(|k| {
            let scope = k.channel.map_or("campaign", |c| c.as_str());
            let target = if k.unit == "cents" { format!("{cur} {}", money(k.target)) } else { k.target.to_string() };
            format!("{scope}: {} {target} — {}", k.metric, k.rationale)
        })
        .collect();
    Document {
        title: format!("Media strategy: {}", b.campaign),
        subtitle: Some(format!("Strategy {} · {} goal · {} to {}", s.id, b.goal.as_str(), b.start_date, b.end_date)),
        sections: vec![
            Section { heading: "Summary".to_string(), paragraphs: vec![s.summary.clone()] },
            Section { heading: "Audience".to_string(), paragraphs: vec![audience.join(" ")] },
            Section { heading: "Budget by channel".to_string(), paragraphs: budget },
            Section { heading: "Schedule".to_string(), paragraphs: schedule },
            Section { heading: "KPIs".to_string(), paragraphs: kpis },
        ],
    }
}
