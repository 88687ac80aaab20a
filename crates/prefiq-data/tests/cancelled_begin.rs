//! A request cancelled while its transaction's `BEGIN` is in flight must not leave the
//! pooled PostgreSQL connection inside a transaction (transact-rs/sqlx#4393: the next
//! borrower's statements would run in it, uncommitted). PostgreSQL only.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use prefiq_data::testing::TestDatabase;
use sqlx::postgres::PgPoolOptions;

/// Polls `future` `polls` times, 40 µs apart, and drops it: a caller cancelled at one of
/// its awaits. The other worker of the runtime drives the sockets meanwhile.
fn poll_and_drop<F: Future>(future: F, polls: u32) {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if future.as_mut().poll(&mut context).is_ready() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(40));
    }
}

/// Whether the pool's one connection is inside a transaction that outlives a statement:
/// two statements then see the same transaction id.
async fn in_stale_transaction(pool: &sqlx::PgPool) -> bool {
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            sqlx::query_scalar::<_, i64>("SELECT txid_current()")
                .fetch_one(pool)
                .await
                .unwrap(),
        );
    }
    ids[0] == ids[1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_begin_leaves_no_transaction_open_on_the_pooled_connection() {
    let Some(db) = TestDatabase::postgres("cancelled_begin").await else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    for round in 0..200 {
        poll_and_drop(prefiq_data::begin_postgres(&pool), 1 + round % 12);
        // Let the spawned BEGIN, and the rollback of its dropped transaction, run.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        assert!(
            !in_stale_transaction(&pool).await,
            "round {round}: the connection came back inside a transaction"
        );
    }
    pool.close().await;
    db.cleanup().await;
}
