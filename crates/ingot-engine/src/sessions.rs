//! Dashboard sessions: stored by the digest of their token, so they work on
//! every node and end everywhere at sign-out.

use std::sync::Arc;

use ingot_store::{SessionRecord, WriteOp};

use crate::error::Result;
use crate::shared::Shared;

/// Stored dashboard sessions.
pub struct Sessions {
    shared: Arc<Shared>,
}

impl Sessions {
    pub fn new(shared: Arc<Shared>) -> Sessions {
        Sessions { shared }
    }

    pub async fn insert(&self, session: SessionRecord) -> Result<()> {
        self.shared.commit(vec![WriteOp::InsertSession(session)]).await.map(|_| ())
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        self.shared.commit(vec![WriteOp::DeleteSession(id.to_string())]).await.map(|_| ())
    }

    /// Whether the session `id` exists and has not expired.
    pub async fn live(&self, id: &str) -> Result<bool> {
        Ok(self.shared.store.session(id).await?.is_some_and(|s| s.expires_at_ms > self.shared.clock.now_ms()))
    }
}
