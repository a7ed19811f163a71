//! `export-pdf` on `export/pdf`: loads the document the event names
//! ([`document`]), renders it to PDF ([`render`]), stores it in the export
//! storage ([`crate::storage`]) and emits `export/pdf.ready` with where it
//! is and how big.

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
    Function::new(ID).name("Export a PDF").trigger_event::<ExportPdf>().retries(3).handler(move |ctx| export(ctx, deps.clone()))
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

async fn export(ctx: Ctx<ExportPdf>, deps: Arc<Deps>) -> Result<PdfReady, Error> {
    let req = &ctx.event.data;
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
