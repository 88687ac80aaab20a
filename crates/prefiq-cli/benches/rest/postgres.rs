//! The PostgreSQL mode: a fresh database per run, dropped at the end (also when the run
//! panics, since the guard is dropped while unwinding).

use sqlx::Connection as _;

/// A database made for one bench run on the server `REST_BENCH_DATABASE_URL` names.
pub struct BenchDatabase {
    /// The `database.url` the server is given.
    pub url: String,
    admin_url: String,
    name: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl BenchDatabase {
    /// Creates `rest_bench_<pid>` on the server of `admin_url` (a URL the bench may create
    /// databases with, such as `postgres://postgres@127.0.0.1:5432/test`). Nothing is
    /// analysed by the bench: the rows are loaded through the API just before the run, and
    /// the plans must hold on a table PostgreSQL has no statistics for yet.
    pub fn create(admin_url: &str) -> Self {
        let name = format!("rest_bench_{}", std::process::id());
        runtime().block_on(async {
            let mut conn = sqlx::PgConnection::connect(admin_url)
                .await
                .unwrap_or_else(|e| panic!("REST_BENCH_DATABASE_URL: cannot connect: {e}"));
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
            let _ = conn.close().await;
        });
        // The server's URL is the admin URL with the database replaced (query kept).
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url, ""), |(b, q)| (b, q));
        let authority_end = base.find("://").map_or(0, |i| {
            i + 3 + base[i + 3..].find('/').unwrap_or(base.len() - i - 3)
        });
        let mut url = format!("{}/{name}", &base[..authority_end]);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        Self {
            url,
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let dropped = runtime().block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
            sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await?;
            conn.close().await
        });
        match dropped {
            Ok(()) => println!("database {} dropped", self.name),
            Err(e) => println!("!!! could not drop database {}: {e}", self.name),
        }
    }
}
