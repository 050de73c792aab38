//! Concurrent looks share the access writer's statements and commits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cpis_postgres::testing::TestSchema;
use cpis_store::Store;
use cpis_store::conformance::{test_access, test_nhs_number};
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_looks_share_statements_and_all_land() {
    let Some(schema) = TestSchema::new("the group commit test") else {
        return;
    };
    let store = Arc::new(schema.store().await);
    let at = datetime!(2026-11-25 09:00 UTC);
    let tasks: Vec<_> = (0..128)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let child = test_nhs_number(900 + i);
                store
                    .record_access(test_access(child, at, true), vec![], vec![])
                    .await
                    .unwrap();
                child
            })
        })
        .collect();
    for task in tasks {
        let child = task.await.unwrap();
        let kept = store.recent_unscheduled_accesses(child, 10).await.unwrap();
        assert_eq!(kept.len(), 1);
    }
    let shared = store.group_commits();
    assert_eq!(shared.looks, 128);
    assert!(
        shared.batches < shared.looks,
        "128 looks at once were written in {} batches",
        shared.batches
    );
    assert_eq!(store.counts().await.unwrap().access_records, 128);
}
