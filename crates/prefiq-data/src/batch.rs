//! Group commit on SQLite's single writer connection.
//!
//! SQLite takes one writer at a time, and with `sqlx` every statement is a round trip to
//! the connection's worker thread. Committing each write on its own pays `BEGIN` and
//! `COMMIT` (and the hand-off of the connection) per write; here the writes that queue up
//! while one runs share a transaction instead:
//!
//! - a writer [`enter`](WriteBatcher::enter)s: it waits for the connection (a FIFO lock),
//!   joins the open batch or opens one with `BEGIN IMMEDIATE`, and runs its statements;
//! - it then asks to [`commit`](Ticket::commit): it gives the connection to the writers
//!   queued behind it and queues again itself. When its turn comes back and its batch is
//!   still open, everyone queued in between has written, so it commits the batch for all;
//!   otherwise it reads the outcome another member published;
//! - a writer whose statements fail rolls the whole batch back ([`Ticket::abort`]); the
//!   other members are told to [`Outcome::Retry`], which they do alone (`solo`), so a failure
//!   never leaks from one request into another's result.
//!
//! A caller sees its write committed before `commit` returns, so after-hooks and the HTTP
//! response come after the data is durable as configured, exactly as without batching.

use std::collections::VecDeque;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Most writes committed in one transaction: bounds how long the first of them waits.
pub const MAX_BATCH: usize = 64;

/// How many batch outcomes are kept for members that have not read theirs yet. A member
/// reads its outcome at its next turn on the lock, so at most one batch per queued writer
/// can close in between; this is far above any real queue.
const OUTCOMES_KEPT: usize = 4096;

/// What happened to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It is committed.
    Committed,
    /// Another member failed and the batch was rolled back: run the write again, alone.
    Retry,
    /// `COMMIT` failed; the batch was rolled back.
    Failed(Arc<str>),
}

#[derive(Debug, Default)]
struct State {
    /// The writer connection, checked out of its pool while a batch is open.
    conn: Option<PoolConnection<Sqlite>>,
    /// The number of the open batch (or of the last one).
    batch: u64,
    /// Whether `conn` is inside `BEGIN IMMEDIATE`.
    open: bool,
    /// Writes done in the open batch.
    members: usize,
    /// A writer stopped in the middle of its statements (an early return or a cancelled
    /// request): the open batch holds a partial write and must be rolled back.
    poisoned: bool,
    outcomes: VecDeque<(u64, Outcome)>,
}

impl State {
    fn publish(&mut self, batch: u64, outcome: Outcome) {
        if self.outcomes.len() == OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((batch, outcome));
    }

    fn outcome_of(&self, batch: u64) -> Outcome {
        self.outcomes
            .iter()
            .rev()
            .find(|(b, _)| *b == batch)
            .map_or_else(
                || Outcome::Failed("the outcome of the write batch was lost".into()),
                |(_, o)| o.clone(),
            )
    }

    /// Ends the open batch with `sql` (`COMMIT` or `ROLLBACK`) and returns the connection
    /// to its pool.
    async fn end(&mut self, sql: &'static str) -> Outcome {
        let mut outcome = Outcome::Committed;
        if let Some(conn) = self.conn.as_deref_mut()
            && let Err(error) = run(conn, sql).await
        {
            outcome = Outcome::Failed(error.to_string().into());
            // A failed COMMIT can leave the transaction open; make sure it is not.
            let _ = run(conn, "ROLLBACK").await;
        }
        self.open = false;
        self.poisoned = false;
        self.members = 0;
        self.conn = None;
        outcome
    }

    async fn commit(&mut self) -> Outcome {
        let outcome = self.end("COMMIT").await;
        self.publish(self.batch, outcome.clone());
        outcome
    }

    async fn roll_back(&mut self) {
        let _ = self.end("ROLLBACK").await;
        self.publish(self.batch, Outcome::Retry);
    }

    /// Rolls back a batch that a writer left half-written.
    async fn settle(&mut self) {
        if self.open && self.poisoned {
            self.roll_back().await;
        }
    }
}

/// Runs one statement without arguments. A plain function, so that the futures that call it
/// stay `Send` for every lifetime (sqlx's executor bounds otherwise confuse the compiler).
fn run<'c>(
    conn: &'c mut SqliteConnection,
    sql: &'static str,
) -> futures_util::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        sqlx::query(sql).execute(conn).await?;
        Ok(())
    })
}

/// Queues writers on the SQLite writer pool and commits them in batches.
#[derive(Debug, Clone)]
pub struct WriteBatcher {
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
}

impl WriteBatcher {
    /// A batcher over `pool`, which should hold one connection.
    pub fn new(pool: SqlitePool) -> Self {
        WriteBatcher {
            pool,
            state: Arc::default(),
        }
    }

    /// Waits for the writer connection and opens or joins a batch. A `solo` writer first
    /// commits whatever batch is open and then gets a transaction of its own.
    pub async fn enter(&self, solo: bool) -> Result<Ticket, sqlx::Error> {
        let mut state = self.state.clone().lock_owned().await;
        state.settle().await;
        if solo && state.open {
            state.commit().await;
        }
        if !state.open {
            let mut conn = match state.conn.take() {
                Some(conn) => conn,
                None => self.pool.acquire().await?,
            };
            run(&mut conn, "BEGIN IMMEDIATE").await?;
            state.conn = Some(conn);
            state.open = true;
            state.batch += 1;
            state.members = 0;
        }
        // Until the writer says how its statements went, the batch counts as half-written.
        state.poisoned = true;
        let batch = state.batch;
        Ok(Ticket {
            guard: Some(state),
            state: self.state.clone(),
            batch,
            solo,
            settled: false,
        })
    }

    /// Commits any open batch and returns the connection to its pool (before the pool is
    /// closed at shutdown).
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        state.settle().await;
        if state.open {
            state.commit().await;
        }
        state.conn = None;
    }
}

/// One writer's place in a batch.
#[derive(Debug)]
pub struct Ticket {
    guard: Option<OwnedMutexGuard<State>>,
    state: Arc<Mutex<State>>,
    batch: u64,
    solo: bool,
    settled: bool,
}

impl Ticket {
    /// The writer connection, inside the batch's transaction.
    ///
    /// # Panics
    ///
    /// Never: a ticket holds the connection from `enter` until `commit` or `abort`,
    /// which consume it.
    #[allow(clippy::expect_used)]
    pub fn conn(&mut self) -> &mut SqliteConnection {
        self.guard
            .as_mut()
            .and_then(|state| state.conn.as_deref_mut())
            .expect("a ticket holds the connection until it is consumed")
    }

    /// The writer's statements failed: rolls the batch back (its other members retry).
    pub async fn abort(mut self) {
        if let Some(mut state) = self.guard.take() {
            state.roll_back().await;
        }
        self.settled = true;
    }

    /// The writer's statements succeeded: waits until its batch is committed or failed.
    pub async fn commit(mut self) -> Outcome {
        let Some(mut state) = self.guard.take() else {
            return Outcome::Failed("the write ticket was used twice".into());
        };
        state.poisoned = false;
        state.members += 1;
        let outcome = if self.solo || state.members >= MAX_BATCH {
            state.commit().await
        } else {
            // Let the writers queued behind this one add to the batch, then come back.
            drop(state);
            let mut state = self.state.clone().lock_owned().await;
            state.settle().await;
            if state.open && state.batch == self.batch {
                state.commit().await
            } else {
                state.outcome_of(self.batch)
            }
        };
        self.settled = true;
        outcome
    }
}

impl Drop for Ticket {
    /// A ticket dropped before it settled (an early return or a cancelled request) must not
    /// leave a batch open: the batch is rolled back if the writer was mid-statement, and
    /// committed otherwise, by a task on the runtime.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let held = self.guard.take();
        let state = self.state.clone();
        let batch = self.batch;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                drop(held);
                let mut state = state.lock().await;
                state.settle().await;
                if state.open && state.batch == batch {
                    state.commit().await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    async fn batcher() -> (WriteBatcher, SqlitePool, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("batch.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        (WriteBatcher::new(pool.clone()), pool, dir)
    }

    async fn insert(batcher: &WriteBatcher, v: i64) -> Result<Outcome, sqlx::Error> {
        insert_solo(batcher, v, false).await
    }

    async fn count(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_are_all_committed() {
        let (batcher, pool, _dir) = batcher().await;
        let tasks: Vec<_> = (0..200)
            .map(|v| {
                let batcher = batcher.clone();
                tokio::spawn(async move { insert(&batcher, v).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Outcome::Committed);
        }
        batcher.close().await;
        assert_eq!(count(&pool).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_writer_rolls_back_only_itself_after_retries() {
        let (batcher, pool, _dir) = batcher().await;
        // Every value twice: one insert of each pair must fail on the primary key, and
        // every other write must still land exactly once.
        let tasks: Vec<_> = (0..100)
            .flat_map(|v| [v, v])
            .map(|v| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    let mut solo = false;
                    loop {
                        match insert_solo(&batcher, v, solo).await {
                            Ok(Outcome::Retry) => solo = true,
                            other => return other.map(|o| o == Outcome::Committed),
                        }
                    }
                })
            })
            .collect();
        let mut committed = 0;
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(true) => committed += 1,
                Ok(false) => panic!("a batch failed to commit"),
                Err(_) => refused += 1,
            }
        }
        batcher.close().await;
        assert_eq!((committed, refused), (100, 100));
        assert_eq!(count(&pool).await, 100);
    }

    async fn insert_solo(
        batcher: &WriteBatcher,
        v: i64,
        solo: bool,
    ) -> Result<Outcome, sqlx::Error> {
        let mut ticket = batcher.enter(solo).await?;
        match sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(v)
            .execute(ticket.conn())
            .await
        {
            Ok(_) => Ok(ticket.commit().await),
            Err(e) => {
                ticket.abort().await;
                Err(e)
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_ticket_rolls_back_its_half_write() {
        let (batcher, pool, _dir) = batcher().await;
        {
            let mut ticket = batcher.enter(false).await.unwrap();
            sqlx::query("INSERT INTO t (v) VALUES (1)")
                .execute(ticket.conn())
                .await
                .unwrap();
            // Dropped mid-write, as when a request is cancelled.
        }
        assert_eq!(insert(&batcher, 2).await.unwrap(), Outcome::Committed);
        batcher.close().await;
        let values: Vec<i64> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(values, vec![2]);
    }
}
