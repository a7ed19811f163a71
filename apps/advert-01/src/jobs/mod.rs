//! advert-01's background jobs: the client and its typed events
//! ([`client`]), one module per function, and [`functions`], the list the
//! app serves at `/api/inngest`.
//!
//! | function id          | trigger             | effect                                            |
//! |----------------------|---------------------|---------------------------------------------------|
//! | `hello-world`        | `test/hello.world`  | a greeting, in steps                              |
//! | `email-send`         | `email/send`        | a mail over SMTP, or an `.eml` in the dev outbox  |
//! | `strategy-generate`  | `strategy/generate` | a strategy stored in SQLite, `strategy/generated` |
//! | `export-pdf`         | `export/pdf`        | a PDF in a folder or S3, `export/pdf.ready`       |
//! | `webhook-deliver`    | `webhook/deliver`   | a signed POST, every attempt recorded             |

pub mod client;
pub mod email;
pub mod export_pdf;
pub mod hello;
pub mod strategy;
pub mod webhook;

use std::sync::Arc;

use ingot::Function;

use crate::config::Settings;
use crate::db::Db;
use crate::storage::ExportStore;

/// What the functions need: the database, settings and the outside world's
/// handles. Built once at start-up.
pub struct Deps {
    /// The app's database.
    pub db: Db,
    /// The app's settings.
    pub settings: Settings,
    /// Where emails go.
    pub mailer: email::Mailer,
    /// Where PDFs go.
    pub exports: ExportStore,
    /// Where webhooks may go, and the pinned HTTP client of each delivery
    /// (no redirects followed, no proxy).
    pub webhooks: webhook::destination::Destinations,
}

/// Every function of the app.
pub fn functions(deps: &Arc<Deps>) -> Vec<Function> {
    vec![
        hello::function(),
        email::function(deps.clone()),
        strategy::function(deps.clone()),
        export_pdf::function(deps.clone()),
        webhook::function(deps.clone()),
    ]
}
