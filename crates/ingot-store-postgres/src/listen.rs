//! Wake-ups from other nodes: one connection that `LISTEN`s on
//! `ingot_work` and fires the store's notify for every notification another
//! node sent (this node's own commits notify locally). The connection is
//! opened again, with a growing pause, whenever it ends; after each
//! (re)connect the notify fires once, for whatever was missed meanwhile.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::Local;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Runs until the store is dropped (which also aborts it).
pub(crate) async fn listen(config: Config, local: Weak<Local>) {
    let mut retry = FIRST_RETRY;
    loop {
        match listen_once(&config, &local).await {
            End::StoreGone => return,
            End::Lost { listened, error } => {
                if listened {
                    retry = FIRST_RETRY;
                }
                tracing::warn!(%error, retry_ms = retry.as_millis() as u64, "LISTEN ingot_work connection lost");
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
        if local.strong_count() == 0 {
            return;
        }
    }
}

enum End {
    StoreGone,
    Lost { listened: bool, error: String },
}

/// One connection's life.
async fn listen_once(config: &Config, local: &Weak<Local>) -> End {
    let lost = |listened, error: String| End::Lost { listened, error };
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(c) => c,
        Err(e) => return lost(false, e.to_string()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let driver = tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            let stop = msg.is_err();
            if tx.send(msg).is_err() || stop {
                return;
            }
        }
    });
    let end = match client.batch_execute("LISTEN ingot_work").await {
        Err(e) => lost(false, e.to_string()),
        Ok(()) => match local.upgrade() {
            None => End::StoreGone,
            Some(l) => {
                l.notify.notify_one();
                drop(l);
                loop {
                    match rx.recv().await {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            let Some(l) = local.upgrade() else { break End::StoreGone };
                            if n.payload() != l.node {
                                l.notify.notify_one();
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break lost(true, e.to_string()),
                        None => break lost(true, "connection closed".into()),
                    }
                }
            }
        },
    };
    driver.abort();
    end
}
