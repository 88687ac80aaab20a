//! `Writing::commit` answers for the commit of the transaction SQLite's writer runs in,
//! where dropping the writer could only log a failed one.
#![allow(clippy::unwrap_used)]

use prefiq_data::Database;
use prefiq_data::entity::sql::{Cell, Sql, SqlType};
use prefiq_data::testing::TestDatabase;

async fn count(database: &Database, table: &str) -> i64 {
    let mut reading = database.reader().await.unwrap();
    let rows = reading
        .conn()
        .fetch(
            &Sql::new(format!("SELECT COUNT(*) FROM {table}"), Vec::new()),
            &[SqlType::Int],
        )
        .await
        .unwrap();
    match rows.first().and_then(|r| r.first()) {
        Some(Cell::Int(n)) => *n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failed_commit_on_the_sqlite_writer_is_reported_and_rolled_back() {
    let db = TestDatabase::sqlite().unwrap();
    let database = db.connect().await;
    let mut writing = database.writer().await.unwrap();
    writing
        .conn()
        .execute_script("CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);")
        .await
        .unwrap();
    writing.commit().unwrap();

    // The writer runs in a transaction of its own; a deferred foreign key fails at its
    // COMMIT, not at the statement.
    let mut writing = database.writer().await.unwrap();
    writing
        .conn()
        .execute_script("INSERT INTO child VALUES (7);")
        .await
        .unwrap();
    let error = writing.commit().unwrap_err();
    assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    assert_eq!(count(&database, "child").await, 0);

    // A good one commits.
    let mut writing = database.writer().await.unwrap();
    writing
        .conn()
        .execute_script("INSERT INTO parent VALUES (7); INSERT INTO child VALUES (7);")
        .await
        .unwrap();
    writing.commit().unwrap();
    assert_eq!(count(&database, "child").await, 1);
    database.close().await;
}
