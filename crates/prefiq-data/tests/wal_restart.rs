//! Under a steady stream of write batches SQLite's write-ahead log never starts over by
//! itself (a new batch begins as soon as one commits), so it grew past a gigabyte in
//! seconds of creates and stalled commits. `WriteBatcher::restart_wal` lets it restart
//! once it is copied into the database.
#![allow(clippy::unwrap_used)]

use prefiq_data::Database;
use prefiq_data::testing::TestDatabase;

/// Pages in the log, as a checkpoint from a connection of its own sees them.
fn log_pages(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
        .unwrap()
}

async fn write(database: &Database, rows: usize) {
    for i in 0..rows {
        let mut writing = database.writer().await.unwrap();
        writing
            .conn()
            .execute_script(&format!(
                "INSERT INTO filler (body) VALUES ('{}');",
                "x".repeat(2000 + i % 7)
            ))
            .await
            .unwrap();
        writing.commit().unwrap();
    }
}

#[tokio::test]
async fn the_write_ahead_log_starts_over_once_it_is_copied_into_the_database() {
    let db = TestDatabase::sqlite().unwrap();
    let database = db.connect().await;
    let Database::Sqlite(sqlite) = &database else {
        panic!("a SQLite database");
    };
    let path = sqlite.path.clone();
    {
        let mut writing = database.writer().await.unwrap();
        writing
            .conn()
            .execute_script("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
            .await
            .unwrap();
        writing.commit().unwrap();
    }
    write(&database, 300).await;
    let before = log_pages(&path);
    assert!(before > 300, "the log holds every write so far: {before}");
    assert!(sqlite.batcher.restart_wal().await.unwrap());
    write(&database, 3).await;
    let after = log_pages(&path);
    assert!(
        after < 20,
        "the log started over: {after} pages after 3 writes (before: {before})"
    );
    database.close().await;
}
