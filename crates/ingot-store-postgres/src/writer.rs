//! The writer task: it owns one connection, groups the commits waiting in
//! its channel into one transaction (one WAL flush for the group), and, only
//! if one of them fails, redoes the group with a savepoint per commit so that
//! only that one fails. A group that adds due work also sends
//! `NOTIFY ingot_work`, delivered to the other nodes when it commits.

use std::sync::Arc;

use ingot_store::{Commit, CommitOutcome, Lease, Result, StoreError, WriteOp};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Config, NoTls};

use crate::apply::apply_all;
use crate::sql::{params, pg_error, Statements, Tx};
use crate::Local;

/// Most commits grouped into one transaction.
const MAX_GROUP: usize = 512;

/// The channel the store's [`commit`](ingot_store::Store::commit) feeds.
pub(crate) type Request = (Commit, oneshot::Sender<Result<CommitOutcome>>);

/// The writer's connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    stmts: Statements,
}

/// Opens a connection and drives it on its own task.
pub(crate) async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

impl Conn {
    pub(crate) fn new(client: Client) -> Conn {
        Conn { client, stmts: Statements::default() }
    }
}

/// Runs until every sender is gone. A lost connection fails the group that
/// was using it; the next group opens a new one.
pub(crate) async fn writer(config: Config, first: Conn, mut rx: mpsc::Receiver<Request>, local: Arc<Local>) {
    let mut conn = Some(first);
    while let Some(req) = rx.recv().await {
        let mut group = vec![req];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(req) => group.push(req),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = match connect(&config).await {
                Ok(client) => Some(Conn::new(client)),
                Err(e) => {
                    for (_, reply) in group {
                        let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
                    }
                    continue;
                }
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let results = commit_group_fast(c, &group, &local.node).await;
        let mut enqueued = false;
        let mut acked: Vec<Lease> = Vec::new();
        for ((commit, _), r) in group.iter().zip(&results) {
            if r.is_ok() {
                enqueued |= adds_work(&commit.ops);
                acked.extend(flatten(&commit.ops).into_iter().filter_map(|op| match op {
                    WriteOp::Ack(lease) => Some(lease.clone()),
                    _ => None,
                }));
            }
        }
        if !acked.is_empty() {
            let mut held = local.held();
            for lease in &acked {
                if held.get(&lease.item) == Some(&lease.token) {
                    held.remove(&lease.item);
                }
            }
        }
        if enqueued {
            local.notify.notify_one();
        }
        for ((_, reply), r) in group.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }
}

fn flatten(ops: &[WriteOp]) -> Vec<&WriteOp> {
    let mut out = Vec::new();
    for op in ops {
        out.push(op);
        if let WriteOp::Guarded { then, otherwise, .. } = op {
            out.extend(flatten(then));
            out.extend(flatten(otherwise));
        }
    }
    out
}

/// Whether a commit may insert or move up a queue item (and so should wake
/// the dispatchers, here and on the other nodes).
fn adds_work(ops: &[WriteOp]) -> bool {
    flatten(ops).into_iter().any(|op| {
        matches!(
            op,
            WriteOp::Enqueue(_)
                | WriteOp::Throttled { .. }
                | WriteOp::Debounce { .. }
                | WriteOp::AppendBatch { .. }
                | WriteOp::ReplaceSingleton { .. }
        )
    })
}

const NOTIFY: &str = "SELECT pg_notify('ingot_work', $1)";

async fn rollback(client: &Client) {
    // Outside a transaction this is only a warning.
    if let Err(e) = client.batch_execute("ROLLBACK").await {
        tracing::warn!(error = %e, "rollback failed");
    }
}

fn all_failed<T>(n: usize, e: &StoreError) -> Vec<Result<T>> {
    (0..n).map(|_| Err(StoreError::Unavailable(e.to_string()))).collect()
}

/// The common case: every commit applies, at the cost of one `BEGIN`/`COMMIT`
/// (sent with the group's first and last writes) for the whole group.
async fn commit_group_fast(conn: &mut Conn, group: &[Request], node: &str) -> Vec<Result<CommitOutcome>> {
    let mut outs = Vec::with_capacity(group.len());
    let failed = {
        let mut tx = Tx::new(&conn.client, &mut conn.stmts);
        tx.command("BEGIN");
        let mut failed = None;
        for (commit, _) in group {
            match apply_all(&mut tx, &commit.ops, node).await {
                Ok(out) => outs.push(out),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            if group.iter().any(|(c, _)| adds_work(&c.ops)) {
                tx.write(NOTIFY, params![node.to_string()]);
            }
            // Checked before COMMIT: a write that had to change one row and did not fails the commit.
            failed = tx.flush().await.err();
        }
        if failed.is_none() {
            match conn.client.batch_execute("COMMIT").await {
                Ok(()) => return outs.into_iter().map(Ok).collect(),
                Err(e) => {
                    let e = pg_error(e);
                    rollback(&conn.client).await;
                    return all_failed(group.len(), &e);
                }
            }
        }
        tx.discard();
        failed
    };
    rollback(&conn.client).await;
    match failed {
        Some(e) if group.len() == 1 => vec![Err(e)],
        _ => commit_group(conn, group, node).await,
    }
}

/// The group again with a savepoint per commit, so a failing commit leaves
/// nothing behind and the others still apply.
async fn commit_group(conn: &mut Conn, group: &[Request], node: &str) -> Vec<Result<CommitOutcome>> {
    if let Err(e) = conn.client.batch_execute("BEGIN").await {
        let e = pg_error(e);
        rollback(&conn.client).await;
        return all_failed(group.len(), &e);
    }
    let mut results = Vec::with_capacity(group.len());
    let mut enqueued = false;
    for (commit, _) in group {
        if let Err(e) = conn.client.batch_execute("SAVEPOINT one_commit").await {
            results.push(Err(pg_error(e)));
            continue;
        }
        let applied = {
            let mut tx = Tx::new(&conn.client, &mut conn.stmts);
            let out = apply_all(&mut tx, &commit.ops, node).await;
            let out = match out {
                Ok(out) => tx.flush().await.map(|()| out),
                Err(e) => Err(e),
            };
            tx.discard();
            out
        };
        match applied {
            Ok(out) => match conn.client.batch_execute("RELEASE SAVEPOINT one_commit").await {
                Ok(()) => {
                    enqueued |= adds_work(&commit.ops);
                    results.push(Ok(out));
                }
                Err(e) => results.push(Err(pg_error(e))),
            },
            Err(e) => {
                if let Err(undo) = conn.client.batch_execute("ROLLBACK TO SAVEPOINT one_commit; RELEASE SAVEPOINT one_commit").await {
                    // The transaction cannot go on: none of the group is applied.
                    let undo = pg_error(undo);
                    rollback(&conn.client).await;
                    return all_failed(group.len(), &undo);
                }
                results.push(Err(e));
            }
        }
    }
    if enqueued {
        if let Err(e) = conn.client.execute(NOTIFY, &[&node]).await {
            let e = pg_error(e);
            rollback(&conn.client).await;
            return all_failed(group.len(), &e);
        }
    }
    if let Err(e) = conn.client.batch_execute("COMMIT").await {
        let e = pg_error(e);
        rollback(&conn.client).await;
        return all_failed(group.len(), &e);
    }
    results
}
