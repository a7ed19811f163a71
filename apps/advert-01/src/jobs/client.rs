//! The advert-01 Ingot client and its typed events.
//!
//! Every event the app sends or handles is a Rust type bound to its name by
//! [`ingot::Event`], so a payload of the wrong shape does not compile:
//!
//! ```compile_fail,E0308
//! use advert_01::jobs::client::{HelloWorld, SendEmail};
//! use ingot::TypedEvent;
//!
//! // An email is not a `test/hello.world` payload.
//! let email = SendEmail { to: "a@example.com".into(), subject: "Hi".into(), text: "Hi".into(), html: None, reply_to: None };
//! let _ = TypedEvent::<HelloWorld>::new(email);
//! ```
//!
//! ```compile_fail,E0631
//! use advert_01::jobs::client::{HelloWorld, SendEmail};
//! use ingot::{Ctx, Function};
//!
//! // A handler for emails cannot handle `test/hello.world`.
//! let _ = Function::new("wrong").trigger_event::<HelloWorld>().handler(|_ctx: Ctx<SendEmail>| async { Ok(()) });
//! ```
//!
//! ```compile_fail,E0271
//! use advert_01::jobs::client::{HelloWorld, SendEmail};
//! use ingot::Function;
//!
//! // One function cannot be triggered by events with different payloads.
//! let _ = Function::new("wrong").trigger_event::<HelloWorld>().trigger_event::<SendEmail>();
//! ```
//!
//! The same code with the right types compiles (so the three snippets above
//! fail for their types alone; rustdoc checks the error codes on nightly):
//!
//! ```
//! use advert_01::jobs::client::{HelloWorld, SendEmail};
//! use ingot::{Ctx, Function, TypedEvent};
//!
//! let _ = TypedEvent::<HelloWorld>::new(HelloWorld { name: Some("Ada".into()) });
//! let _ = TypedEvent::<SendEmail>::new(SendEmail { to: "a@example.com".into(), subject: "Hi".into(), text: "Hi".into(), html: None, reply_to: None });
//! let _ = Function::new("right").trigger_event::<HelloWorld>().handler(|_ctx: Ctx<HelloWorld>| async { Ok(()) });
//! ```

use chrono::NaiveDate;
use ingot::{Client, ClientBuilder, ConfigError, Event, EventId, SendError, TypedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::export_pdf;
use super::webhook::destination::{self, DestinationPolicy};

/// The app id the engine knows advert-01 by.
pub const APP_ID: &str = "advert-01";

/// How the app reaches its engine, beyond the `INNGEST_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineTarget {
    /// The engine's origin, overriding `INNGEST_BASE_URL` (the embedded
    /// engine's URL, or `--engine-url`).
    pub base_url: Option<String>,
    /// Forces dev mode: the app talks to its own embedded engine, or to a
    /// local engine when nothing says otherwise.
    pub force_dev: bool,
}

/// A client builder for advert-01 reading the `INNGEST_*` variables through
/// `lookup` (`INNGEST_DEV`, `INNGEST_BASE_URL`, `INNGEST_EVENT_KEY`,
/// `INNGEST_SIGNING_KEY`, `INNGEST_SIGNING_KEY_FALLBACK`, ...).
pub fn builder(lookup: impl Fn(&str) -> Option<String>) -> ClientBuilder {
    ClientBuilder::new(APP_ID).read_env(lookup)
}

/// The client, configured from `lookup` and `target`. Outside dev mode the
/// event and signing keys are required.
pub fn client_from(lookup: impl Fn(&str) -> Option<String>, target: &EngineTarget) -> Result<Client, ConfigError> {
    let mut b = builder(lookup);
    if target.force_dev {
        b = b.dev();
    }
    if let Some(url) = &target.base_url {
        b = b.base_url(url.clone());
    }
    b.build()
}

/// The client, configured from the process environment.
pub fn client(target: &EngineTarget) -> Result<Client, ConfigError> {
    client_from(|k| std::env::var(k).ok(), target)
}

/// `test/hello.world`: greet someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloWorld {
    /// Who to greet; "world" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

ingot::event!(HelloWorld = "test/hello.world");

/// `email/send`: send one email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    /// The recipient, `name@example.com` or `Name <name@example.com>`.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML body, sent as an alternative to the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// A `Reply-To` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

ingot::event!(SendEmail = "email/send");

/// What a campaign is for; it decides how the budget is split and which KPI
/// leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Be seen: reach and frequency.
    Awareness,
    /// Visits to a site.
    Traffic,
    /// Sign-ups and enquiries.
    Leads,
    /// Purchases.
    Sales,
}

impl Goal {
    /// The goal's name, as in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Awareness => "awareness",
            Goal::Traffic => "traffic",
            Goal::Leads => "leads",
            Goal::Sales => "sales",
        }
    }
}

/// A media channel a campaign can buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Paid search.
    Search,
    /// Paid social.
    Social,
    /// Display banners.
    Display,
    /// Online video.
    Video,
    /// Email to owned or rented lists.
    Email,
}

impl Channel {
    /// Every channel, in a fixed order.
    pub const ALL: [Channel; 5] = [Channel::Search, Channel::Social, Channel::Display, Channel::Video, Channel::Email];

    /// The channel's name, as in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Search => "search",
            Channel::Social => "social",
            Channel::Display => "display",
            Channel::Video => "video",
            Channel::Email => "email",
        }
    }

    /// Reads a channel's name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Who a campaign is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// A sentence describing the audience.
    pub description: String,
    /// Youngest age targeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_min: Option<u8>,
    /// Oldest age targeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_max: Option<u8>,
    /// Countries, regions or cities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// Interests to target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
}

/// `strategy/generate`: a campaign brief to turn into a media strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateStrategy {
    /// The campaign's name.
    pub campaign: String,
    /// What the campaign is for.
    pub goal: Goal,
    /// The total budget, in `currency` units (e.g. `12000.50`).
    pub budget: f64,
    /// ISO 4217 currency code.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// The channels to buy (at least one).
    pub channels: Vec<Channel>,
    /// Who the campaign is for.
    pub audience: Audience,
    /// First day of the campaign.
    pub start_date: NaiveDate,
    /// Last day of the campaign (inclusive).
    pub end_date: NaiveDate,
}

fn default_currency() -> String {
    "EUR".to_string()
}

ingot::event!(GenerateStrategy = "strategy/generate");

/// `strategy/generated`: a strategy was stored (emitted by `strategy/generate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyGenerated {
    /// The stored strategy's id.
    pub strategy_id: String,
    /// The campaign's name.
    pub campaign: String,
    /// The campaign's goal.
    pub goal: Goal,
    /// The total budget in cents.
    pub total_budget_cents: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The channels the budget was split across, largest share first.
    pub channels: Vec<Channel>,
}

ingot::event!(StrategyGenerated = "strategy/generated");

/// A document to export: a stored strategy, or a note given inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocumentRef {
    /// A strategy stored by `strategy/generate`.
    Strategy {
        /// The strategy's id.
        id: String,
    },
    /// The webhook delivery report of one destination (every attempt).
    WebhookReport {
        /// The destination URL.
        url: String,
    },
    /// Free text: a title and paragraphs separated by blank lines.
    Note {
        /// The title.
        title: String,
        /// The body.
        body: String,
    },
}

/// `export/pdf`: render a document to PDF and store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPdf {
    /// What to render.
    pub document: DocumentRef,
    /// The file name to store it under (a `.pdf` name is derived otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

ingot::event!(ExportPdf = "export/pdf");

/// `export/pdf.ready`: a PDF was stored (emitted by `export/pdf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfReady {
    /// What was rendered.
    pub document: DocumentRef,
    /// The PDF's title.
    pub title: String,
    /// Where it is: a `file://` or `s3://` URL.
    pub location: String,
    /// Its key within the export storage.
    pub key: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// How many pages it has.
    pub pages: u32,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

ingot::event!(PdfReady = "export/pdf.ready");

/// `webhook/deliver`: POST a JSON payload to a URL, signed per the Standard
/// Webhooks spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    /// The destination (http or https).
    pub url: String,
    /// The JSON body to POST, as is.
    pub payload: Value,
    /// The `webhook-id`; the triggering event's id when absent. It stays
    /// the same across retries so receivers can deduplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

ingot::event!(DeliverWebhook = "webhook/deliver");

/// The events the app's own code can send, by name (the functions' triggers).
pub const SENDABLE: [&str; 5] = [HelloWorld::NAME, SendEmail::NAME, GenerateStrategy::NAME, ExportPdf::NAME, DeliverWebhook::NAME];

/// Why an event given by name could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendNamedError {
    /// No function of the app handles this event name.
    #[error("unknown event {name:?}; advert-01 handles {}", SENDABLE.join(", "))]
    UnknownEvent {
        /// The name given.
        name: String,
    },
    /// The data does not fit the event's payload type.
    #[error("the data does not fit {name}: {source}")]
    InvalidData {
        /// The event name.
        name: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The data fits, but asks for something the app refuses (a webhook
    /// to a private address, an export name that leaves its folder).
    #[error("{name} refused: {reason}")]
    Refused {
        /// The event name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The engine did not take the event.
    #[error(transparent)]
    Send(#[from] SendError),
}

fn typed<E: Event>(data: Value) -> Result<TypedEvent<E>, SendNamedError> {
    serde_json::from_value::<E::Data>(data)
        .map(TypedEvent::new)
        .map_err(|source| SendNamedError::InvalidData { name: E::NAME.to_string(), source })
}

fn refused(name: &str, reason: impl std::fmt::Display) -> SendNamedError {
    SendNamedError::Refused { name: name.to_string(), reason: reason.to_string() }
}

/// Sends the event `name` with JSON `data`, checked against the event's
/// payload type first (so a bad payload never reaches the engine), and
/// what the functions would refuse anyway refused here: a webhook URL that
/// `webhooks` does not allow as written, an export name or id that could
/// leave the export folder. (The functions check again when they run.)
pub async fn send_named(client: &Client, name: &str, data: Value, webhooks: DestinationPolicy) -> Result<EventId, SendNamedError> {
    let id = match name {
        HelloWorld::NAME => client.send(typed::<HelloWorld>(data)?).await?,
        SendEmail::NAME => client.send(typed::<SendEmail>(data)?).await?,
        GenerateStrategy::NAME => client.send(typed::<GenerateStrategy>(data)?).await?,
        ExportPdf::NAME => {
            let event = typed::<ExportPdf>(data)?;
            export_pdf::check_request(&event.data).map_err(|e| refused(name, e))?;
            client.send(event).await?
        }
        DeliverWebhook::NAME => {
            let event = typed::<DeliverWebhook>(data)?;
            destination::check_url(&event.data.url, webhooks).map_err(|e| refused(name, e))?;
            client.send(event).await?
        }
        other => return Err(SendNamedError::UnknownEvent { name: other.to_string() }),
    };
    Ok(id)
}

/// An example payload for each sendable event, for `GET /api/events` and
/// the dashboard's "send event" form.
pub fn examples() -> Value {
    json!({
        HelloWorld::NAME: {"name": "Ada"},
        SendEmail::NAME: {"to": "ada@example.com", "subject": "Welcome", "text": "Hello from advert-01."},
        GenerateStrategy::NAME: {
            "campaign": "Spring launch",
            "goal": "leads",
            "budget": 12000,
            "currency": "EUR",
            "channels": ["search", "social", "email"],
            "audience": {"description": "Small-business owners", "age_min": 25, "age_max": 54, "locations": ["FR", "BE"]},
            "start_date": "2026-04-01",
            "end_date": "2026-05-31"
        },
        ExportPdf::NAME: {"document": {"kind": "note", "title": "Hello", "body": "A first PDF."}},
        DeliverWebhook::NAME: {"url": "https://hooks.example.com/advert-01", "payload": {"type": "strategy.generated", "data": {"id": "..."}}},
    })
}
