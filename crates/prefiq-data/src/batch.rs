//! Group commit on SQLite's single writer connection.
//!
//! SQLite takes one writer at a time. Committing each write on its own pays `BEGIN` and
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
//!
//! The batcher owns the process's one writer connection (rusqlite); statements, `BEGIN`
//! and `COMMIT` run inline on the task that holds the lock (with `synchronous=NORMAL` in
//! WAL mode a commit does not wait for the disk). Every use of the writer starts with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock; when another connection holds it
//! (another process on the same file), the wait is an async sleep, never a blocked thread,
//! so that the holder (which may be a task of this very runtime) can finish.

use std::collections::VecDeque;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::DataError;

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
    /// The writer connection; `None` once the batcher is closed.
    conn: Option<Connection>,
    /// How long `BEGIN IMMEDIATE` waits for another connection's write lock.
    busy_timeout: std::time::Duration,
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

    /// Ends the open batch with `sql` (`COMMIT` or `ROLLBACK`).
    fn end(&mut self, sql: &'static str) -> Outcome {
        let mut outcome = Outcome::Committed;
        if let Some(conn) = &self.conn
            && let Err(error) = conn.execute_batch(sql)
        {
            outcome = Outcome::Failed(error.to_string().into());
            // A failed COMMIT can leave the transaction open; make sure it is not.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        self.open = false;
        self.poisoned = false;
        self.members = 0;
        outcome
    }

    fn commit(&mut self) -> Outcome {
        let outcome = self.end("COMMIT");
        self.publish(self.batch, outcome.clone());
        outcome
    }

    fn roll_back(&mut self) {
        let _ = self.end("ROLLBACK");
        self.publish(self.batch, Outcome::Retry);
    }

    /// Rolls back a batch that a writer left half-written.
    fn settle(&mut self) {
        if self.open && self.poisoned {
            self.roll_back();
        }
    }

    /// Takes SQLite's write lock with `BEGIN IMMEDIATE`. The connection's own busy
    /// timeout is 0: a lock held elsewhere is waited for here, with async sleeps of
    /// growing length, for at most `busy_timeout`.
    ///
    /// `&mut self`: a `&State` held across the sleep would not be `Send` (a connection
    /// is not `Sync`), and neither is a borrowed connection, so none is.
    async fn begin(&mut self) -> Result<(), DataError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let began = self
                .conn
                .as_ref()
                .ok_or(DataError::NotConnected)?
                .execute_batch("BEGIN IMMEDIATE");
            match began {
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && started.elapsed() < self.busy_timeout =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                other => return Ok(other?),
            }
        }
    }
}

/// Queues writers on the SQLite writer connection and commits them in batches.
#[derive(Debug, Clone)]
pub struct WriteBatcher {
    state: Arc<Mutex<State>>,
}

impl WriteBatcher {
    /// A batcher that owns `conn`, the one writer connection, waiting at most
    /// `busy_timeout` for another connection's write lock.
    pub fn new(conn: Connection, busy_timeout: std::time::Duration) -> Self {
        // The waits happen in `State::begin`, where they do not block the thread.
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        WriteBatcher {
            state: Arc::new(Mutex::new(State {
                conn: Some(conn),
                busy_timeout,
                ..State::default()
            })),
        }
    }

    /// Waits for the writer connection and opens or joins a batch. A `solo` writer first
    /// commits whatever batch is open and then gets a transaction of its own.
    pub async fn enter(&self, solo: bool) -> Result<Ticket, DataError> {
        let mut state = self.state.clone().lock_owned().await;
        state.settle();
        if solo && state.open {
            state.commit();
        }
        if !state.open {
            state.begin().await?;
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

    /// The writer connection for statements that are not entity writes (DDL, a
    /// script, a statement that must not join a batch), once the open batch is
    /// committed: in a transaction of its own, committed when the guard is dropped (each
    /// statement is atomic, as outside a transaction). Other writers wait until then.
    pub async fn alone(&self) -> Result<Alone, DataError> {
        let mut state = self.state.clone().lock_owned().await;
        state.settle();
        if state.open {
            state.commit();
        }
        state.begin().await?;
        Ok(Alone { guard: state })
    }

    /// Lets the write-ahead log start over from its beginning, between batches: a
    /// `RESTART` checkpoint on the writer once the background checkpointer has copied the
    /// log into the database. Under a steady stream of batches the log otherwise never
    /// restarts (a new batch begins as soon as one commits) and grows without bound.
    /// Readers are not waited for: with one inside the log it answers busy and changes
    /// nothing, and the next call tries again. Returns whether the log restarted.
    pub async fn restart_wal(&self) -> Result<bool, DataError> {
        let mut state = self.state.lock().await;
        state.settle();
        if state.open {
            state.commit();
        }
        let conn = state.conn.as_ref().ok_or(DataError::NotConnected)?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }

    /// Commits any open batch and closes the writer connection (at shutdown).
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        state.settle();
        if state.open {
            state.commit();
        }
        state.conn = None;
    }
}

/// The writer connection held outside a batch (see [`WriteBatcher::alone`]).
#[derive(Debug)]
pub struct Alone {
    guard: OwnedMutexGuard<State>,
}

impl Alone {
    /// The writer connection.
    ///
    /// # Panics
    ///
    /// Never: `alone` hands out a guard only while the connection is open.
    #[allow(clippy::expect_used)]
    pub fn conn(&mut self) -> &mut Connection {
        self.guard
            .conn
            .as_mut()
            .expect("an Alone guard holds an open connection")
    }

    /// Commits the guard's transaction and answers for it: a drop commits too, but can
    /// only log a failed commit. A failed commit is rolled back.
    pub fn commit(mut self) -> Result<(), rusqlite::Error> {
        commit_open(self.conn())
    }
}

/// Commits the transaction `conn` is in, if any; a failed commit is rolled back.
fn commit_open(conn: &Connection) -> Result<(), rusqlite::Error> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("COMMIT").inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

impl Drop for Alone {
    /// Commits what the holder wrote; a failed commit is rolled back and logged (each
    /// statement had already answered for itself).
    fn drop(&mut self) {
        if let Some(conn) = &self.guard.conn
            && let Err(error) = commit_open(conn)
        {
            tracing::error!(target: "prefiq::data", %error, "a commit on the SQLite writer failed; rolled back");
        }
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
    pub fn conn(&mut self) -> &mut Connection {
        self.guard
            .as_mut()
            .and_then(|state| state.conn.as_mut())
            .expect("a ticket holds the connection until it is consumed")
    }

    /// The writer's statements failed: rolls the batch back (its other members retry).
    pub async fn abort(mut self) {
        if let Some(mut state) = self.guard.take() {
            state.roll_back();
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
            state.commit()
        } else {
            // Let the writers queued behind this one add to the batch, then come back.
            drop(state);
            let mut state = self.state.clone().lock_owned().await;
            state.settle();
            if state.open && state.batch == self.batch {
                state.commit()
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
                state.settle();
                if state.open && state.batch == batch {
                    state.commit();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn open(dir: &tempfile::TempDir) -> Connection {
        crate::sqlite::open(
            &dir.path().join("batch.db"),
            crate::sqlite::Role::Writer,
            std::time::Duration::from_secs(5),
        )
        .unwrap()
    }

    fn batcher() -> (WriteBatcher, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir);
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (
            WriteBatcher::new(conn, std::time::Duration::from_secs(5)),
            dir,
        )
    }

    async fn insert(batcher: &WriteBatcher, v: i64) -> Result<Outcome, DataError> {
        insert_solo(batcher, v, false).await
    }

    fn values(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = open(dir);
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_are_all_committed() {
        let (batcher, dir) = batcher();
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
        assert_eq!(values(&dir).len(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_writer_rolls_back_only_itself_after_retries() {
        let (batcher, dir) = batcher();
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
        assert_eq!(values(&dir).len(), 100);
    }

    async fn insert_solo(batcher: &WriteBatcher, v: i64, solo: bool) -> Result<Outcome, DataError> {
        let mut ticket = batcher.enter(solo).await?;
        // A yield between the statements of a write, as a real request has, so that
        // writers queue up behind the batch.
        tokio::task::yield_now().await;
        let inserted = ticket.conn().execute("INSERT INTO t (v) VALUES (?1)", [v]);
        match inserted {
            Ok(_) => Ok(ticket.commit().await),
            Err(e) => {
                ticket.abort().await;
                Err(e.into())
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_ticket_rolls_back_its_half_write() {
        let (batcher, dir) = batcher();
        {
            let mut ticket = batcher.enter(false).await.unwrap();
            ticket
                .conn()
                .execute_batch("INSERT INTO t (v) VALUES (1)")
                .unwrap();
            // Dropped mid-write, as when a request is cancelled.
        }
        assert_eq!(insert(&batcher, 2).await.unwrap(), Outcome::Committed);
        batcher.close().await;
        assert_eq!(values(&dir), vec![2]);
    }

    #[tokio::test]
    async fn alone_commits_the_open_batch_and_its_own_writes() {
        let (batcher, dir) = batcher();
        let mut ticket = batcher.enter(false).await.unwrap();
        ticket
            .conn()
            .execute_batch("INSERT INTO t (v) VALUES (1)")
            .unwrap();
        // Committed by the member's own second turn, which `alone` may not wait for:
        // a ticket gives the lock back after its statements.
        let committing = tokio::spawn(async move { ticket.commit().await });
        {
            let mut alone = batcher.alone().await.unwrap();
            alone
                .conn()
                .execute_batch("INSERT INTO t (v) VALUES (3)")
                .unwrap();
            // A failed statement undoes only itself.
            assert!(
                alone
                    .conn()
                    .execute_batch("INSERT INTO t (v) VALUES (3)")
                    .is_err()
            );
        }
        assert_eq!(committing.await.unwrap(), Outcome::Committed);
        assert_eq!(insert(&batcher, 2).await.unwrap(), Outcome::Committed);
        batcher.close().await;
        assert_eq!(values(&dir), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_write_lock_held_by_another_connection_is_waited_for_without_blocking() {
        // Two writers on one file, as two replicas (or a command beside the server) have,
        // on a runtime of one thread: the second waits while the first finishes.
        let (first, dir) = batcher();
        let second = WriteBatcher::new(open(&dir), std::time::Duration::from_secs(5));
        let mut ticket = first.enter(false).await.unwrap();
        ticket
            .conn()
            .execute_batch("INSERT INTO t (v) VALUES (1)")
            .unwrap();
        let waiting = tokio::spawn(async move { insert(&second, 2).await.unwrap() });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(ticket.commit().await, Outcome::Committed);
        assert_eq!(waiting.await.unwrap(), Outcome::Committed);
        first.close().await;
        assert_eq!(values(&dir), vec![1, 2]);
    }
}
