//! `export-pdf` on `export/pdf`: loads the document the event names
//! ([`document`]), renders it to PDF ([`render`]), stores it in the export
//! storage ([`crate::storage`]) and emits `export/pdf.ready` with where it
//! is and how big.
//!
//! What the event says is checked first ([`check_request`]): a requested
//! file name with path syntax in it (`/`, `\`, `..`, NUL, `%`) or a
//! strategy id that is not an id fails the run at once, rather than being
//! quietly renamed; the stored name is then made of safe characters only
//! ([`file_name`]), and the storage checks it again.

pub mod document;
pub mod render;

use std::sync::Arc;

use ingot::{Ctx, Error, Function};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::client::{DocumentRef, ExportPdf, PdfReady};
use super::Deps;
use document::LoadError;
use render::Document;

/// The function's id.
pub const ID: &str = "export-pdf";

/// The function.
pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID).name("Export a PDF").trigger_event::<ExportPdf>().retries(3).with_shared_state(deps).handler(export).into()
}

/// What the render-and-store step memoizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPdf {
    location: String,
    key: String,
    size_bytes: u64,
    pages: u32,
    sha256: String,
}

/// The longest strategy id accepted (ids are ULIDs, 26 characters).
pub const MAX_ID_CHARS: usize = 64;

/// An export request that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The requested file name tries to say where the file goes.
    #[error("the file name {name:?} is refused: {reason}")]
    FileName {
        /// The name given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The strategy id is not an id.
    #[error("{id:?} is not a valid strategy id (at most {MAX_ID_CHARS} letters, digits, '-' or '_')")]
    StrategyId {
        /// The id given.
        id: String,
    },
}

/// Refuses what could name a place outside the export folder: a file name
/// with path syntax, or a strategy id with anything but letters, digits,
/// `-` and `_`.
pub fn check_request(req: &ExportPdf) -> Result<(), RequestError> {
    if let Some(name) = &req.file_name {
        let reason = if name.contains(['/', '\\']) {
            Some("it holds a path separator")
        } else if name.contains("..") {
            Some("it holds '..'")
        } else if name.contains('%') {
            Some("it holds a '%' escape")
        } else if name.chars().any(char::is_control) {
            Some("it holds a control character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(RequestError::FileName { name: name.clone(), reason });
        }
    }
    if let DocumentRef::Strategy { id } = &req.document {
        let valid = !id.is_empty() && id.len() <= MAX_ID_CHARS && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid {
            return Err(RequestError::StrategyId { id: id.clone() });
        }
    }
    Ok(())
}

/// A file name made safe for any storage: `[A-Za-z0-9._-]`, ending in `.pdf`.
pub fn file_name(requested: Option<&str>, doc: &DocumentRef, unique: &str) -> String {
    let base = match (requested, doc) {
        (Some(name), _) => name.trim_end_matches(".pdf").to_string(),
        (None, DocumentRef::Strategy { id }) => format!("strategy-{id}"),
        (None, DocumentRef::WebhookReport { url }) => {
            format!("webhook-report-{}-{unique}", &hex::encode(Sha256::digest(url.as_bytes()))[..12])
        }
        (None, DocumentRef::Note { title, .. }) => format!("note-{}-{unique}", title.to_lowercase()),
    };
    let safe: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    let safe = safe.trim_matches(|c| c == '-' || c == '.').chars().take(120).collect::<String>();
    format!("{}.pdf", if safe.is_empty() { "document" } else { &safe })
}

async fn export(ctx: Ctx<ExportPdf>) -> Result<PdfReady, Error> {
    let deps = ctx.state::<Deps>()?;
    let req = &ctx.event.data;
    // Events sent around the app's API are checked here too.
    check_request(req).map_err(Error::non_retriable)?;
    let doc: Document = ctx
        .step
        .run("load-document", || async {
            document::load(&deps.db, &req.document).await.map_err(|e| match e {
                LoadError::NotFound(_) => Error::non_retriable(e),
                LoadError::Db(_) => Error::retriable(e),
            })
        })
        .await?;
    let unique = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.to_string());
    let name = file_name(req.file_name.as_deref(), &req.document, &unique);
    // Rendering and storing share a step: the bytes are not worth
    // memoizing, only where they went.
    let stored: StoredPdf = ctx
        .step
        .run("render-and-store", || async {
            let to_render = doc.clone();
            let rendered = tokio::task::spawn_blocking(move || render::render(&to_render)).await?.map_err(Error::non_retriable)?;
            let sha256 = hex::encode(Sha256::digest(&rendered.bytes));
            let object = deps.exports.put(&name, rendered.bytes).await?;
            tracing::info!(location = %object.location, size = object.size_bytes, pages = rendered.pages, "PDF stored");
            Ok(StoredPdf { location: object.location, key: object.key, size_bytes: object.size_bytes, pages: rendered.pages, sha256 })
        })
        .await?;
    let ready = PdfReady {
        document: req.document.clone(),
        title: doc.title,
        location: stored.location,
        key: stored.key,
        size_bytes: stored.size_bytes,
        pages: stored.pages,
        sha256: stored.sha256,
    };
    ctx.step.send_event("emit-ready", ready.clone()).await?;
    Ok(ready)
}
