//! The app's own settings (database, SMTP, export storage, webhooks), read
//! in two phases: [`RawSettings::from_lookup`] takes the variables as they
//! are, [`RawSettings::resolve`] validates them and applies the defaults.
//!
//! Outside dev mode the settings that have no safe default are required:
//! `SMTP_URL` (in dev mode mail goes to an outbox folder instead),
//! `WEBHOOK_SECRET` (in dev mode a fixed, logged dev secret is used) and
//! `ADVERT_API_TOKEN` (in dev mode the app API is open unless it is set).
//! Webhooks go to public addresses only unless `WEBHOOK_ALLOW_PRIVATE=true`,
//! in every mode.
//! The `INNGEST_*` variables belong to the client ([`crate::jobs::client`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::api::auth::{ApiAccess, ApiToken};
use crate::jobs::webhook::destination::DestinationPolicy;
use crate::jobs::webhook::signature::WebhookSecret;
use crate::storage;

/// Where the app keeps its files when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = ".advert-01";
/// The sender of emails when `MAIL_FROM` is not set.
pub const DEFAULT_MAIL_FROM: &str = "advert-01 <no-reply@advert-01.localhost>";
/// The webhook secret used in dev mode when `WEBHOOK_SECRET` is not set
/// (`whsec_` + base64 of `advert-01-dev-webhook-secret`). Never use it in
/// production: it is public.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_YWR2ZXJ0LTAxLWRldi13ZWJob29rLXNlY3JldA==";
/// How long one webhook POST may take.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How many deliveries to one destination run at once.
pub const DEFAULT_WEBHOOK_CONCURRENCY: u32 = 2;
/// How long one SMTP exchange may take.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A setting is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Required outside dev mode.
    #[error("{var} is required outside dev mode ({why}); set it, or set INNGEST_DEV=1")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// Set, but not usable.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The variables, as they were given (trimmed, empty ones dropped).
#[derive(Debug, Clone, Default)]
pub struct RawSettings {
    data_dir: Option<String>,
    database: Option<String>,
    smtp_url: Option<String>,
    smtp_timeout_secs: Option<String>,
    mail_from: Option<String>,
    outbox_dir: Option<String>,
    export_dir: Option<String>,
    s3_bucket: Option<String>,
    export_prefix: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    s3_allow_http: Option<String>,
    webhook_secret: Option<String>,
    webhook_timeout_secs: Option<String>,
    webhook_concurrency: Option<String>,
    webhook_allow_private: Option<String>,
    api_token: Option<String>,
}

/// S3-compatible export storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The endpoint (MinIO, R2, ...); AWS when absent.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when absent).
    pub region: String,
    /// Access key id; the AWS credential chain when absent.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints (local MinIO).
    pub allow_http: bool,
}

/// Where exported PDFs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// A local folder.
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Settings),
}

/// Where emails go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTarget {
    /// An SMTP server: `smtp://user:pass@host:587?tls=required`, `smtps://...`.
    Smtp {
        /// The URL (with credentials: never log it).
        url: String,
        /// How long one exchange may take.
        timeout: Duration,
    },
    /// `.eml` files in a folder (dev mode without `SMTP_URL`).
    Outbox(PathBuf),
}

/// Validated settings.
#[derive(Clone)]
pub struct Settings {
    /// The app's SQLite database file.
    pub database: PathBuf,
    /// The data folder (database, outbox, exports, the embedded engine's database).
    pub data_dir: PathBuf,
    /// Where emails go.
    pub mail: MailTarget,
    /// The `From` of every email.
    pub mail_from: String,
    /// Where exported PDFs go.
    pub export: ExportTarget,
    /// Key prefix for exported PDFs.
    pub export_prefix: String,
    /// Signs webhook deliveries.
    pub webhook_secret: WebhookSecret,
    /// `true` when the secret is the public dev secret.
    pub webhook_secret_is_dev: bool,
    /// How long one webhook POST may take.
    pub webhook_timeout: Duration,
    /// Deliveries to one destination at once.
    pub webhook_concurrency: u32,
    /// Which addresses webhooks may go to.
    pub webhook_destinations: DestinationPolicy,
    /// Who may use the app API (`/api/*` but `/api/inngest`).
    pub api_access: ApiAccess,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP URL and the webhook secret are left out on purpose.
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("export", &self.export)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_destinations", &self.webhook_destinations)
            .finish_non_exhaustive()
    }
}

fn parse_secs(var: &'static str, v: &str) -> Result<Duration, SettingsError> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(SettingsError::Invalid { var, value: v.to_string(), reason: "expected a positive number of seconds".into() }),
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, SettingsError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::Invalid { var, value: v.to_string(), reason: "expected true or false".into() }),
    }
}

/// Reads `WEBHOOK_ALLOW_PRIVATE`: public destinations only unless it is
/// true (in every mode: a receiver on this machine needs it in dev mode too).
pub fn webhook_policy(allow_private: Option<&str>) -> Result<DestinationPolicy, SettingsError> {
    match allow_private.map(str::trim).filter(|v| !v.is_empty()).map(|v| parse_bool("WEBHOOK_ALLOW_PRIVATE", v)).transpose()? {
        Some(true) => Ok(DestinationPolicy::AnyAddress),
        Some(false) | None => Ok(DestinationPolicy::PublicOnly),
    }
}

impl RawSettings {
    /// Reads the variables through `lookup` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> RawSettings {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        RawSettings {
            data_dir: get("ADVERT_DATA_DIR"),
            database: get("ADVERT_DATABASE"),
            smtp_url: get("SMTP_URL"),
            smtp_timeout_secs: get("SMTP_TIMEOUT_SECS"),
            mail_from: get("MAIL_FROM"),
            outbox_dir: get("MAIL_OUTBOX_DIR"),
            export_dir: get("EXPORT_DIR"),
            s3_bucket: get("EXPORT_S3_BUCKET"),
            export_prefix: get("EXPORT_PREFIX"),
            s3_endpoint: get("EXPORT_S3_ENDPOINT"),
            s3_region: get("EXPORT_S3_REGION"),
            s3_access_key_id: get("EXPORT_S3_ACCESS_KEY_ID"),
            s3_secret_access_key: get("EXPORT_S3_SECRET_ACCESS_KEY"),
            s3_allow_http: get("EXPORT_S3_ALLOW_HTTP"),
            webhook_secret: get("WEBHOOK_SECRET"),
            webhook_timeout_secs: get("WEBHOOK_TIMEOUT_SECS"),
            webhook_concurrency: get("WEBHOOK_CONCURRENCY"),
            webhook_allow_private: get("WEBHOOK_ALLOW_PRIVATE"),
            api_token: get("ADVERT_API_TOKEN"),
        }
    }

    /// Validates the settings; `dev` relaxes what has a dev-mode fallback.
    pub fn resolve(self, dev: bool) -> Result<Settings, SettingsError> {
        let data_dir = PathBuf::from(self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()));
        let database = self.database.map(PathBuf::from).unwrap_or_else(|| data_dir.join("advert-01.db"));
        let smtp_timeout = self.smtp_timeout_secs.map(|v| parse_secs("SMTP_TIMEOUT_SECS", &v)).transpose()?.unwrap_or(DEFAULT_SMTP_TIMEOUT);
        let mail = match self.smtp_url {
            Some(url) => {
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(SettingsError::Invalid {
                        var: "SMTP_URL",
                        value: "(hidden)".into(),
                        reason: "expected smtp://... or smtps://...".into(),
                    });
                }
                MailTarget::Smtp { url, timeout: smtp_timeout }
            }
            None if dev => MailTarget::Outbox(self.outbox_dir.map(PathBuf::from).unwrap_or_else(|| data_dir.join("outbox"))),
            None => return Err(SettingsError::Missing { var: "SMTP_URL", why: "emails are sent through it" }),
        };
        let export = match self.s3_bucket {
            Some(bucket) => ExportTarget::S3(S3Settings {
                bucket,
                endpoint: self.s3_endpoint,
                region: self.s3_region.unwrap_or_else(|| "us-east-1".to_string()),
                access_key_id: self.s3_access_key_id,
                secret_access_key: self.s3_secret_access_key,
                allow_http: self.s3_allow_http.map(|v| parse_bool("EXPORT_S3_ALLOW_HTTP", &v)).transpose()?.unwrap_or(false),
            }),
            None => ExportTarget::Local(self.export_dir.map(PathBuf::from).unwrap_or_else(|| data_dir.join("exports"))),
        };
        let (secret_text, webhook_secret_is_dev) = match self.webhook_secret {
            Some(s) => (s, false),
            None if dev => (DEV_WEBHOOK_SECRET.to_string(), true),
            None => return Err(SettingsError::Missing { var: "WEBHOOK_SECRET", why: "webhook deliveries are signed with it" }),
        };
        let webhook_secret = WebhookSecret::parse(&secret_text).map_err(|e| SettingsError::Invalid {
            var: "WEBHOOK_SECRET",
            value: "(hidden)".into(),
            reason: e.to_string(),
        })?;
        let webhook_timeout =
            self.webhook_timeout_secs.map(|v| parse_secs("WEBHOOK_TIMEOUT_SECS", &v)).transpose()?.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
        let webhook_concurrency = match self.webhook_concurrency {
            None => DEFAULT_WEBHOOK_CONCURRENCY,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(SettingsError::Invalid {
                        var: "WEBHOOK_CONCURRENCY",
                        value: v,
                        reason: "expected a positive integer".into(),
                    })
                }
            },
        };
        let webhook_destinations = webhook_policy(self.webhook_allow_private.as_deref())?;
        let api_access = match self.api_token {
            Some(t) => ApiAccess::Token(ApiToken::parse(&t).map_err(|e| SettingsError::Invalid {
                var: "ADVERT_API_TOKEN",
                value: "(hidden)".into(),
                reason: e.to_string(),
            })?),
            None if dev => ApiAccess::Open,
            None => {
                return Err(SettingsError::Missing {
                    var: "ADVERT_API_TOKEN",
                    why: "the app API at /api/* is only served to requests carrying it",
                })
            }
        };
        let export_prefix = self.export_prefix.unwrap_or_default().trim_matches('/').to_string();
        storage::check_prefix(&export_prefix).map_err(|e| SettingsError::Invalid {
            var: "EXPORT_PREFIX",
            value: export_prefix.clone(),
            reason: e.to_string(),
        })?;
        Ok(Settings {
            database,
            data_dir,
            mail,
            mail_from: self.mail_from.unwrap_or_else(|| DEFAULT_MAIL_FROM.to_string()),
            export,
            export_prefix,
            webhook_secret,
            webhook_secret_is_dev,
            webhook_timeout,
            webhook_concurrency,
            webhook_destinations,
            api_access,
        })
    }
}
