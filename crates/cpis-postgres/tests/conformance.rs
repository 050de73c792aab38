//! The store conformance suite, run against PostgreSQL, each test in a
//! schema of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cpis_postgres::PgStore;
use cpis_postgres::testing::TestSchema;
use cpis_store::conformance::Fixture;

async fn fresh_store() -> Option<Fixture<PgStore>> {
    let schema = TestSchema::new("the store conformance suite")?;
    let store = schema.store().await;
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(schema),
    })
}

cpis_store::conformance_tests!(fresh_store);
