//! Concurrent looks share statements and commits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cpis_postgres::testing::TestSchema;
use cpis_store::Store;
use cpis_store::conformance::{test_access, test_nhs_number};
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_looks_share_statements_and_all_land_and_are_read() {
    let Some(schema) = TestSchema::new("the group commit test") else {
        return;
    };
    let store = Arc::new(schema.store().await);
    let at = datetime!(2026-11-25 09:00 UTC);
    // The checkpointer places leaves while the looks write theirs.
    let sequencer = tokio::spawn({
        let store = store.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut sizes = vec![store.sequence_log().await.unwrap()];
            while sizes.last() < Some(&128) && std::time::Instant::now() < deadline {
                sizes.push(store.sequence_log().await.unwrap());
            }
            sizes
        }
    });
    let tasks: Vec<_> = (0..128)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let child = test_nhs_number(900 + i);
                let item = cpis_store::OutboxItem {
                    id: uuid::Uuid::now_v7(),
                    la: la(),
                    kind: cpis_store::OutboxKind::Access,
                    payload: serde_json::json!({"look": i}).into(),
                    created_at: at,
                    attempts: 0,
                };
                store
                    .record_access(test_access(child, at, true), vec![item], None)
                    .await
                    .unwrap();
                child
            })
        })
        .collect();
    let mut children = Vec::new();
    for task in tasks {
        let child = task.await.unwrap();
        let kept = store.recent_unscheduled_accesses(child, 10).await.unwrap();
        assert_eq!(kept.len(), 1);
        children.push(child);
    }
    let reads: Vec<_> = children
        .into_iter()
        .map(|child| {
            let store = store.clone();
            tokio::spawn(async move {
                let window = (at - time::Duration::days(1), at + time::Duration::days(1));
                let seen = store.attendances(child, window.0, window.1).await.unwrap();
                assert_eq!(seen.len(), 1);
                assert_eq!(seen[0].looks, 1);
            })
        })
        .collect();
    for read in reads {
        read.await.unwrap();
    }
    let [_, attendances, _] = store.shared();
    assert_eq!(attendances.requests, 128);
    assert!(attendances.batches < attendances.requests);
    let [_, _, writes] = store.shared();
    assert_eq!(writes.requests, 128);
    assert!(
        writes.batches < writes.requests,
        "128 looks at once were written in {} batches",
        writes.batches
    );
    assert_eq!(store.counts().await.unwrap().access_records, 128);
    let sizes = sequencer.await.unwrap();
    assert!(
        sizes.windows(2).all(|pair| pair[0] <= pair[1]),
        "the log only grows: {sizes:?}"
    );
    let entries = store.log_entries(0, 1_000).await.unwrap();
    let places: Vec<u64> = entries.iter().map(|entry| entry.leaf.index).collect();
    assert_eq!(
        places,
        (0..128).collect::<Vec<u64>>(),
        "each look has a place of its own, none skipped"
    );
    assert!(
        entries
            .iter()
            .all(|entry| entry.record.hash() == Some(entry.leaf.hash)),
        "each leaf is its own record's"
    );
    let feed = store.notifications(la(), 0, 1_000).await.unwrap();
    let numbers: Vec<u64> = feed.iter().map(|(number, _)| *number).collect();
    assert_eq!(
        numbers,
        (1..=128).collect::<Vec<u64>>(),
        "each look's item has a number of its own in the feed, none skipped"
    );
}

fn la() -> cpis_domain::LaCode {
    cpis_domain::LaCode::parse("E09000007").unwrap()
}
