//! Helpers for tests that run against PostgreSQL: each test gets a schema of
//! its own, dropped afterwards, so tests can run in parallel on one database.
//!
//! The server comes from `CPIS_TEST_DATABASE_URL`. Without it the tests are
//! skipped with a printed notice, unless `CPIS_REQUIRE_ALL=1`, when they fail.

use crate::{PgStore, PoolSettings};

/// The test database URL, or `None` (after printing why) to skip.
///
/// # Panics
/// When the URL is missing and `CPIS_REQUIRE_ALL=1` is set.
pub fn test_database_url(test: &str) -> Option<String> {
    match std::env::var("CPIS_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CPIS_REQUIRE_ALL").is_ok_and(|value| value == "1") {
                #[allow(clippy::panic)]
                {
                    panic!(
                        "{test}: CPIS_REQUIRE_ALL=1 but CPIS_TEST_DATABASE_URL is not set; point it at a PostgreSQL database"
                    );
                }
            }
            eprintln!(
                "notice: skipping the PostgreSQL run of {test}: set CPIS_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run it"
            );
            None
        }
    }
}

/// A schema made for one test; dropped with everything in it when this is dropped.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// A fresh, uniquely named schema on the test database, or `None` to skip.
    pub fn new(test: &str) -> Option<TestSchema> {
        let url = test_database_url(test)?;
        let name = format!("cpis_test_{}", uuid::Uuid::now_v7().simple());
        Some(TestSchema { url, name })
    }

    /// The database URL with this schema first on the search path, for a
    /// `cpis` process to use as `CPIS_DATABASE_URL`.
    pub fn url_with_search_path(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }

    /// Creates the schema, empty, as an operator would before starting nodes.
    pub async fn create_empty(&self) {
        let (client, connection) =
            match tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await {
                Ok(connected) => connected,
                #[allow(clippy::panic)]
                Err(error) => panic!("cannot reach the test database {}: {error}", self.url),
            };
        tokio::spawn(connection);
        if let Err(error) = client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", self.name))
            .await
        {
            #[allow(clippy::panic)]
            {
                panic!("cannot create the test schema {}: {error}", self.name);
            }
        }
    }

    /// Opens a store in this schema, creating the schema and its tables.
    pub async fn store(&self) -> PgStore {
        match PgStore::connect_with_schema(&self.url, Some(&self.name), PoolSettings::default())
            .await
        {
            Ok(store) => store,
            #[allow(clippy::panic)]
            Err(error) => panic!("cannot open the test store on {}: {error}", self.url),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        // A server of the finished test may still hold a transaction open in
        // the schema, and cannot finish it while this drop blocks the test's
        // runtime: end such sessions first, or the drop would wait forever.
        let sql = format!(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
                 JOIN pg_class c ON c.oid = l.relation
                 JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = '{name}' AND l.pid <> pg_backend_pid();
             DROP SCHEMA IF EXISTS {name} CASCADE",
            name = self.name
        );
        // Drop may run inside an async test; a thread of its own may block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("notice: could not drop the test schema {}", self.name);
        }
    }
}
