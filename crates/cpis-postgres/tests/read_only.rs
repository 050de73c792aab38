//! The store opened only to read (`cpis audit verify`) changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cpis_postgres::testing::TestSchema;
use cpis_postgres::{PgStore, PoolSettings};
use cpis_store::Store;

/// Opened to read, a database not at this cpis's schema version is refused
/// and left as it was; one at it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_to_read_migrates_nothing() {
    let Some(schema) = TestSchema::new("the read-only open test") else {
        return;
    };
    schema.create_empty().await;
    let url = schema.url_with_search_path();
    let refused = PgStore::connect_to_read(&url, PoolSettings::default()).await;
    let error = refused
        .err()
        .expect("an empty schema is refused")
        .to_string();
    assert!(error.contains("schema version 0"), "{error}");
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing was created");

    drop(schema.store().await);
    let store = PgStore::connect_to_read(&url, PoolSettings::default())
        .await
        .unwrap();
    assert_eq!(store.counts().await.unwrap().access_records, 0);
}
