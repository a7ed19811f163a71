//! Statement plumbing: owned parameters, the statements prepared on one
//! connection, the pipelined transaction the writer applies ops through, and
//! the mapping of PostgreSQL errors to [`StoreError`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use ingot_store::{Result, StoreError};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Row, Statement};

/// One owned statement parameter, so writes can wait in a pipeline after
/// the op that made them has moved on.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Boxes statement parameters: `params![a, b]`.
macro_rules! params {
    ($($e:expr),* $(,)?) => { vec![$(Box::new($e) as $crate::sql::Param),*] };
}
pub(crate) use params;

/// A PostgreSQL error as a [`StoreError`]: a serialization failure or a
/// deadlock between nodes is a conflict (decide again), anything else means
/// the database could not do the work.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
            return StoreError::Conflict(db_message(&e));
        }
    }
    StoreError::Unavailable(db_message(&e))
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {db}"),
        None => format!("postgres: {e}"),
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Reads a column by name; a value of the wrong type is corrupt data.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T> {
    row.try_get(name).map_err(|e| corrupt(name, e))
}

/// A `usize` count or limit as a BIGINT (saturating: no table holds more).
pub(crate) fn big(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The statements prepared on one connection, by their SQL (every statement
/// is a `&'static str`, so the cache is bounded by the source).
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    pub(crate) async fn get(&mut self, client: &Client, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let st = client.prepare(sql).await.map_err(pg_error)?;
        self.0.insert(sql, st.clone());
        Ok(st)
    }
}

/// What a write must have changed.
enum Expect {
    Any,
    /// Exactly one row, else the commit fails with this conflict.
    One(String),
    /// Exactly one row, else the commit fails with `LeaseLost(this)`.
    Held(String),
}

enum Pending {
    /// A command without parameters (`BEGIN`, `SAVEPOINT …`), simple protocol.
    Simple(&'static str),
    Exec {
        sql: &'static str,
        params: Vec<Param>,
        expect: Expect,
    },
}

enum Last {
    Exec(&'static str, Vec<Param>),
    Query(&'static str, Vec<Param>),
}

enum Out {
    Done,
    Count(u64),
    Rows(Vec<Row>),
}

enum Ready<'p> {
    Simple(&'static str),
    Exec(Statement, &'p [Param]),
}

type Step<'a> = Pin<Box<dyn Future<Output = std::result::Result<Out, tokio_postgres::Error>> + Send + 'a>>;

/// Writes on the writer's connection, pipelined: writes whose result no op
/// needs wait here and go to the server together, in order, with the next
/// statement whose result is needed (a guard's read, a row count) or at the
/// end of the group. tokio-postgres sends every request of futures polled
/// together without waiting for the replies, so a step's commit of a few
/// blind writes costs one round trip instead of one per statement.
pub(crate) struct Tx<'c> {
    client: &'c Client,
    stmts: &'c mut Statements,
    pending: Vec<Pending>,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(client: &'c Client, stmts: &'c mut Statements) -> Tx<'c> {
        Tx { client, stmts, pending: Vec::new() }
    }

    /// Queues a parameterless command.
    pub(crate) fn command(&mut self, sql: &'static str) {
        self.pending.push(Pending::Simple(sql));
    }

    /// Queues a write whose row count does not matter.
    pub(crate) fn write(&mut self, sql: &'static str, params: Vec<Param>) {
        self.pending.push(Pending::Exec { sql, params, expect: Expect::Any });
    }

    /// Queues a write that must change exactly one row, else the commit
    /// fails with [`StoreError::Conflict`]`(conflict)`.
    pub(crate) fn write_one(&mut self, sql: &'static str, params: Vec<Param>, conflict: String) {
        self.pending.push(Pending::Exec { sql, params, expect: Expect::One(conflict) });
    }

    /// Queues a statement that must count exactly one row, else the commit
    /// fails with [`StoreError::LeaseLost`]`(lost)` (an ack under a lease
    /// another claim replaced).
    pub(crate) fn write_held(&mut self, sql: &'static str, params: Vec<Param>, lost: String) {
        self.pending.push(Pending::Exec { sql, params, expect: Expect::Held(lost) });
    }

    /// Sends what is queued and checks it.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.run(None).await.map(|_| ())
    }

    /// Runs a write after what is queued, returning the rows it changed.
    pub(crate) async fn exec(&mut self, sql: &'static str, params: Vec<Param>) -> Result<u64> {
        match self.run(Some(Last::Exec(sql, params))).await? {
            Out::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Runs a query after what is queued, returning its rows.
    pub(crate) async fn query(&mut self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>> {
        match self.run(Some(Last::Query(sql, params))).await? {
            Out::Rows(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    /// Forgets what is queued (the transaction is being rolled back).
    pub(crate) fn discard(&mut self) {
        self.pending.clear();
    }

    async fn run(&mut self, last: Option<Last>) -> Result<Out> {
        let pending = std::mem::take(&mut self.pending);
        // Statements are prepared once per connection; a miss costs its own round trip.
        let mut ready = Vec::with_capacity(pending.len());
        for p in &pending {
            ready.push(match p {
                Pending::Simple(sql) => Ready::Simple(sql),
                Pending::Exec { sql, params, .. } => Ready::Exec(self.stmts.get(self.client, sql).await?, params),
            });
        }
        let last_stmt = match &last {
            Some(Last::Exec(sql, _)) | Some(Last::Query(sql, _)) => Some(self.stmts.get(self.client, sql).await?),
            None => None,
        };
        let client = self.client;
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(pending.len() + 1);
        for r in &ready {
            match r {
                Ready::Simple(sql) => steps.push(Box::pin(async move { client.batch_execute(sql).await.map(|()| Out::Done) })),
                Ready::Exec(st, params) => steps.push(Box::pin(async move {
                    client.execute_raw(st, params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))).await.map(Out::Count)
                })),
            }
        }
        match (&last, &last_stmt) {
            (Some(Last::Exec(_, params)), Some(st)) => steps.push(Box::pin(async move {
                client.execute_raw(st, params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))).await.map(Out::Count)
            })),
            (Some(Last::Query(_, params)), Some(st)) => steps.push(Box::pin(async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
                client.query(st, &refs).await.map(Out::Rows)
            })),
            _ => {}
        }
        let mut results = futures::future::join_all(steps).await.into_iter();
        for p in &pending {
            let out = results.next().unwrap_or(Ok(Out::Done)).map_err(pg_error)?;
            match (p, &out) {
                (Pending::Exec { expect: Expect::One(conflict), .. }, Out::Count(n)) if *n != 1 => {
                    return Err(StoreError::Conflict(conflict.clone()));
                }
                (Pending::Exec { expect: Expect::Held(lost), .. }, Out::Count(n)) if *n != 1 => {
                    return Err(StoreError::LeaseLost(lost.clone()));
                }
                _ => {}
            }
        }
        match results.next() {
            Some(r) => r.map_err(pg_error),
            None => Ok(Out::Done),
        }
    }
}
