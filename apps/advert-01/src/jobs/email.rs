//! `email-send` on `email/send`: sends one email with lettre over SMTP
//! (`SMTP_URL`), or, in dev mode without `SMTP_URL`, writes it as an `.eml`
//! file to the outbox folder and logs where.
//!
//! SMTP failures are sorted by what retrying can do: a permanent rejection
//! (5xx: no such mailbox, message refused) fails the run at once
//! ([`ingot::Error::NonRetriable`]); transient ones (4xx, connection
//! refused or dropped, timeouts) are retried by the engine with backoff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use ingot::{Ctx, Error, Function};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::client::SendEmail;
use super::Deps;
use crate::config::MailTarget;

/// The function's id.
pub const ID: &str = "email-send";

/// Building or delivering an email failed.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// An address does not parse.
    #[error("{field} {value:?} is not an email address: {source}")]
    Address {
        /// Which header.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why.
        source: lettre::address::AddressError,
    },
    /// The message could not be built.
    #[error("the message cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// `SMTP_URL` is not usable.
    #[error("SMTP_URL is not usable: {0}")]
    SmtpUrl(lettre::transport::smtp::Error),
    /// The SMTP server refused for good (5xx).
    #[error("the SMTP server rejected the message permanently: {0}")]
    Rejected(lettre::transport::smtp::Error),
    /// The SMTP exchange failed in a way worth retrying.
    #[error("SMTP delivery failed (will retry): {0}")]
    Transient(lettre::transport::smtp::Error),
    /// The outbox file could not be written.
    #[error("cannot write {path}: {source}")]
    Outbox {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl EmailError {
    /// Whether retrying could help.
    pub fn is_retriable(&self) -> bool {
        matches!(self, EmailError::Transient(_) | EmailError::Outbox { .. })
    }

    /// The SDK error for this failure: retried or not, as it deserves.
    /// (`?` alone would make every error retriable.)
    pub fn into_step_error(self) -> Error {
        if self.is_retriable() {
            Error::retriable(self)
        } else {
            Error::non_retriable(self)
        }
    }
}

/// Where emails go.
pub enum Mailer {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// A folder of `.eml` files.
    Outbox(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The transport holds the URL's credentials: not shown.
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::Outbox(dir) => f.debug_tuple("Mailer::Outbox").field(dir).finish(),
        }
    }
}

/// How a message was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Delivery {
    /// Accepted by the SMTP server.
    Smtp {
        /// The server's reply code, e.g. `250`.
        code: String,
        /// The server's reply text.
        reply: String,
    },
    /// Written to the outbox.
    Outbox {
        /// The `.eml` file.
        path: String,
    },
}

/// What a run returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The `Message-ID` (without angle brackets).
    pub message_id: String,
    /// The recipient.
    pub to: String,
    /// How it went out.
    pub delivery: Delivery,
}

impl Mailer {
    /// The mailer for the configured target.
    pub fn new(target: &MailTarget) -> Result<Mailer, EmailError> {
        Ok(match target {
            MailTarget::Smtp { url, timeout } => Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(EmailError::SmtpUrl)?.timeout(Some(*timeout)).build(),
            ),
            MailTarget::Outbox(dir) => Mailer::Outbox(dir.clone()),
        })
    }

    /// Delivers one message.
    pub async fn deliver(&self, message: &Message, message_id: &str) -> Result<Delivery, EmailError> {
        match self {
            Mailer::Smtp(transport) => match transport.send(message.clone()).await {
                Ok(resp) => Ok(Delivery::Smtp { code: resp.code().to_string(), reply: resp.message().collect::<Vec<_>>().join(" ") }),
                Err(e) if e.is_permanent() => Err(EmailError::Rejected(e)),
                Err(e) => Err(EmailError::Transient(e)),
            },
            Mailer::Outbox(dir) => {
                let path = write_outbox(dir, message, message_id).await?;
                tracing::info!(path = %path.display(), "no SMTP_URL in dev mode: email written to the outbox");
                Ok(Delivery::Outbox { path: path.display().to_string() })
            }
        }
    }
}

async fn write_outbox(dir: &Path, message: &Message, message_id: &str) -> Result<PathBuf, EmailError> {
    let outbox = |path: &Path, source| EmailError::Outbox { path: path.display().to_string(), source };
    tokio::fs::create_dir_all(dir).await.map_err(|e| outbox(dir, e))?;
    let safe: String = message_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let path = dir.join(format!("{}-{safe}.eml", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
    tokio::fs::write(&path, message.formatted()).await.map_err(|e| outbox(&path, e))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, EmailError> {
    value.trim().parse().map_err(|source| EmailError::Address { field, value: value.to_string(), source })
}

/// Builds the message: text, or text and HTML as alternatives.
pub fn compose(from: &str, email: &SendEmail, message_id: &str) -> Result<Message, EmailError> {
    let mut b = Message::builder()
        .from(mailbox("from", from)?)
        .to(mailbox("to", &email.to)?)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{message_id}>")));
    if let Some(r) = &email.reply_to {
        b = b.reply_to(mailbox("reply_to", r)?);
    }
    let message = match &email.html {
        None => b.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text.clone()))?,
        Some(html) => b.multipart(MultiPart::alternative_plain_html(email.text.clone(), html.clone()))?,
    };
    Ok(message)
}

/// The function.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID).name("Send an email").trigger_event::<SendEmail>().retries(5).with_shared_state(deps).handler(send).into()
}

async fn send(ctx: Ctx<SendEmail>) -> Result<Sent, Error> {
    let deps = ctx.state::<Deps>()?;
    let email = &ctx.event.data;
    // The same id on every attempt, so a receiver can spot a duplicate.
    let key = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.to_string());
    let message_id = format!("{key}@advert-01");
    let from = &deps.settings.mail_from;
    // Bad addresses fail here for good, before anything is sent.
    ctx.step
        .run("check-addresses", || async {
            compose(from, email, &message_id).map_err(EmailError::into_step_error)?;
            Ok(())
        })
        .await?;
    let delivery: Delivery = ctx
        .step
        .run("deliver", || async {
            let message = compose(from, email, &message_id).map_err(EmailError::into_step_error)?;
            match deps.mailer.deliver(&message, &message_id).await {
                Ok(delivery) => Ok(delivery),
                Err(e) => {
                    tracing::warn!(error = %e, retriable = e.is_retriable(), "email not sent");
                    Err(e.into_step_error())
                }
            }
        })
        .await?;
    Ok(Sent { message_id, to: email.to.clone(), delivery })
}
