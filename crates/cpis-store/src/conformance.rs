//! The behaviour every [`Store`] backend must show, as plain async functions.
//!
//! A backend runs the whole suite with [`conformance_tests!`](crate::conformance_tests),
//! giving it a function that makes a fresh, empty store (or `None`, after
//! printing why, to skip). The functions panic on the first difference, so
//! they are for tests only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::sync::Arc;

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, NhsNumber, OdsCode, Organisation,
    PhoneNumber, Plan, PlanFields, PlanKey, PlanType, RepeatRule, SettingType,
};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    AccessFilter, AccessQuery, DeliveryCounts, LaClient, LookReads, OutboxClaim, OutboxItem,
    OutboxKind, PlanBatch, PlanPage, PlanSpoolWriter, Plans, Recorded, RepeatCheck, Snapshot,
    Store, StoreError, UploadRecord, Webhook,
    log::{self, Checkpoint, LoggedRecord, ReportRecord},
    merkle,
};

/// A store under test, and whatever must live as long as it (a temporary
/// directory, a database schema to drop).
pub struct Fixture<S> {
    pub store: Arc<S>,
    pub guard: Box<dyn Any + Send>,
}

/// Declares one `#[tokio::test]` per conformance check, each on a fresh store
/// made by `$fixture`, an `async fn() -> Option<Fixture<S>>`.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            reference_data_round_trips,
            plans_are_identified_by_la_nhs_number_type_and_start,
            plans_of_one_child_span_local_authorities,
            a_batch_with_a_foreign_or_unknown_la_changes_nothing,
            snapshots_withdraw_absent_plans_within_their_guard,
            plans_of_an_la_come_in_pages,
            a_spooled_batch_applies_like_a_listed_one,
            access_records_and_their_outbox_items_commit_together,
            a_failed_access_write_leaves_nothing,
            outbox_items_are_claimed_by_one_node_at_a_time,
            the_feed_lists_an_las_items_in_commit_order_and_only_its_own,
            a_long_feed_reads_whole_and_in_order_from_any_cursor,
            only_items_of_an_la_with_a_webhook_are_pushed,
            repeat_alerts_are_written_once_per_window,
            concurrent_looks_take_a_repeat_window_once,
            attendances_group_a_childs_unscheduled_looks_by_organisation,
            failed_items_are_parked_until_replayed,
            old_items_are_purged,
            every_access_and_upload_is_a_leaf_of_the_log,
            reports_list_accesses_by_child_user_or_organisation,
            reports_find_every_look_however_many_and_after_retention,
            retention_removes_old_records_and_keeps_their_leaves,
            concurrent_writes_all_land,
            concurrent_lookups_each_get_their_own_child,
            a_looks_reads_give_each_window_its_attendances,
            a_failed_write_among_concurrent_ones_fails_alone,
            meta_round_trips,
            ephemeral_entries_expire_and_are_taken_once,
            la_clients_round_trip,
            uploads_keep_their_acknowledgement_with_their_plans,
            a_refused_upload_leaves_nothing,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(fixture) = $fixture().await else { return };
                $crate::conformance::$name(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

const AT: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);
const TODAY: Date = date!(2026 - 11 - 25);

/// The `n`th valid NHS number in the 999 test range from 999 100 000.
pub fn test_nhs_number(n: u32) -> NhsNumber {
    (999_100_000 + n * 7..)
        .find_map(NhsNumber::with_check_digit)
        .expect("the test range has valid numbers")
}

pub fn test_la(code: &str, name: &str) -> LocalAuthority {
    LocalAuthority::new(
        LaCode::parse(code).unwrap(),
        name,
        PhoneNumber::parse("01632 960000").unwrap(),
        PhoneNumber::parse("01632 960001").unwrap(),
    )
    .unwrap()
}

pub fn test_plan(la: &str, nhs_number: NhsNumber, plan_type: PlanType, start: Date) -> Plan {
    Plan::new(PlanFields {
        key: PlanKey {
            la: LaCode::parse(la).unwrap(),
            nhs_number,
            plan_type,
            start_date: start,
        },
        end_date: None,
        delete_date: None,
        expected_delivery_date: None,
        local_reference: None,
    })
    .unwrap()
}

fn with_end(plan: &Plan, end: Date) -> Plan {
    Plan::new(PlanFields {
        key: *plan.key(),
        end_date: Some(end),
        delete_date: plan.delete_date(),
        expected_delivery_date: plan.expected_delivery_date(),
        local_reference: plan.local_reference().cloned(),
    })
    .unwrap()
}

/// A batch of `plans` from `la`, applied as a snapshot if `snapshot` is given.
pub fn batch(la: &str, plans: Vec<Plan>, snapshot: Option<Snapshot>) -> PlanBatch {
    PlanBatch {
        la: LaCode::parse(la).unwrap(),
        batch_id: Uuid::now_v7(),
        plans: plans.into(),
        snapshot,
        at: AT,
    }
}

pub fn test_access(nhs_number: NhsNumber, at: OffsetDateTime, unscheduled: bool) -> AccessRecord {
    AccessRecord {
        id: crate::log::id_at(at),
        at,
        nhs_number,
        user_id: "555000000001".to_owned(),
        user_name: "Dr Ada Example".to_owned(),
        role_code: "R8000".to_owned(),
        role_name: "Clinical Practitioner Access Role".to_owned(),
        activity_code: if unscheduled { "B0107" } else { "B0170" }.to_owned(),
        organisation_code: OdsCode::parse("X99ED").unwrap(),
        organisation_name: "Example Emergency Department".to_owned(),
        setting_type: SettingType::EmergencyDepartment,
        unscheduled,
        returned: Vec::new(),
        request_id: Uuid::now_v7().to_string(),
    }
}

fn outbox_item(la: &str, created_at: OffsetDateTime) -> OutboxItem {
    OutboxItem {
        id: crate::log::id_at(created_at),
        la: LaCode::parse(la).unwrap(),
        kind: OutboxKind::Access,
        payload: serde_json::json!({"organisation_code": "X99ED"}).into(),
        created_at,
        attempts: 0,
    }
}

async fn seed_las<S: Store>(store: &S) {
    store
        .put_local_authorities(vec![
            test_la("E09000007", "Camden"),
            test_la("E08000025", "Birmingham"),
            test_la("E10000016", "Kent"),
        ])
        .await
        .unwrap();
}

/// Gives `la` a webhook, so that its items are pushed (and claimable).
async fn push_to<S: Store>(store: &S, la: &str) {
    store
        .put_webhook(Webhook {
            la: LaCode::parse(la).unwrap(),
            url: format!("https://{la}.example/hook"),
            secret: "whsec_dGVzdA==".into(),
            created_at: AT - Duration::days(1),
        })
        .await
        .unwrap();
}

pub async fn reference_data_round_trips<S: Store>(store: Arc<S>) {
    assert!(store.check_ready().await.is_ok());
    assert_eq!(store.local_authorities().await.unwrap(), vec![]);
    seed_las(&*store).await;
    let camden = LaCode::parse("E09000007").unwrap();
    let listed = store.local_authorities().await.unwrap();
    assert_eq!(
        listed.iter().map(|la| la.code.as_str()).collect::<Vec<_>>(),
        vec!["E08000025", "E09000007", "E10000016"]
    );
    // Putting an authority again replaces it.
    let mut renamed = test_la("E09000007", "London Borough of Camden");
    renamed.emergency_duty_number = PhoneNumber::parse("020 7946 0000").unwrap();
    store
        .put_local_authorities(vec![renamed.clone()])
        .await
        .unwrap();
    assert_eq!(store.local_authority(camden).await.unwrap(), Some(renamed));
    let unknown = LaCode::parse("E06000001").unwrap();
    assert_eq!(store.local_authority(unknown).await.unwrap(), None);

    let ed = Organisation::new(
        OdsCode::parse("X99ED").unwrap(),
        "Example ED",
        SettingType::EmergencyDepartment,
    )
    .unwrap();
    let gp = Organisation::new(
        OdsCode::parse("X99GP").unwrap(),
        "Example Surgery",
        SettingType::GeneralPractice,
    )
    .unwrap();
    store
        .put_organisations(vec![gp.clone(), ed.clone()])
        .await
        .unwrap();
    assert_eq!(store.organisation(ed.code).await.unwrap(), Some(ed.clone()));
    assert_eq!(store.organisations().await.unwrap(), vec![ed, gp]);
    assert_eq!(
        store
            .organisation(OdsCode::parse("NOPE1").unwrap())
            .await
            .unwrap(),
        None
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.local_authorities, 3);
    assert_eq!(counts.organisations, 2);
}

pub async fn plans_are_identified_by_la_nhs_number_type_and_start<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let child = test_nhs_number(1);
    let cpp = test_plan("E09000007", child, PlanType::ChildProtection, TODAY);
    let applied = store
        .apply_plans(batch("E09000007", vec![cpp.clone()], None))
        .await
        .unwrap();
    assert_eq!(
        (applied.inserted, applied.updated, applied.withdrawn),
        (1, 0, 0)
    );

    // The same identity again updates; a different start date is another plan.
    let ended = with_end(&cpp, TODAY + Duration::days(10));
    let later = test_plan(
        "E09000007",
        child,
        PlanType::ChildProtection,
        TODAY - Duration::days(3),
    );
    let applied = store
        .apply_plans(batch("E09000007", vec![ended.clone(), later.clone()], None))
        .await
        .unwrap();
    assert_eq!((applied.inserted, applied.updated), (1, 1));

    let mut found: Vec<Plan> = store
        .plans_for_nhs_number(child)
        .await
        .unwrap()
        .into_iter()
        .map(|(plan, la)| {
            assert_eq!(la.name, "Camden");
            plan
        })
        .collect();
    found.sort_by_key(|plan| *plan.key());
    let mut expected = vec![ended, later];
    expected.sort_by_key(|plan| *plan.key());
    assert_eq!(found, expected);
    assert!(
        store
            .plans_for_nhs_number(test_nhs_number(2))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().await.unwrap().plans, 2);
}

pub async fn plans_of_one_child_span_local_authorities<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let child = test_nhs_number(3);
    let mut unborn = PlanFields {
        key: PlanKey {
            la: LaCode::parse("E08000025").unwrap(),
            nhs_number: child,
            plan_type: PlanType::UnbornChildProtection,
            start_date: TODAY - Duration::days(30),
        },
        end_date: None,
        delete_date: Some(TODAY),
        expected_delivery_date: Some(TODAY + Duration::days(60)),
        local_reference: Some(cpis_domain::LocalReference::parse("BHM/UCPP/0042").unwrap()),
    };
    let unborn_plan = Plan::new(unborn.clone()).unwrap();
    unborn.key.la = LaCode::parse("E09000007").unwrap();
    let camden_plan = test_plan(
        "E09000007",
        child,
        PlanType::LookedAfter,
        TODAY - Duration::days(400),
    );
    store
        .apply_plans(batch("E08000025", vec![unborn_plan.clone()], None))
        .await
        .unwrap();
    store
        .apply_plans(batch("E09000007", vec![camden_plan.clone()], None))
        .await
        .unwrap();
    let mut found = store.plans_for_nhs_number(child).await.unwrap();
    found.sort_by_key(|(plan, _)| *plan.key());
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].0, unborn_plan,
        "every field survives the round trip"
    );
    assert_eq!(found[0].1.name, "Birmingham");
    assert_eq!(found[1].0, camden_plan);
    assert_eq!(found[1].1.name, "Camden");
}

pub async fn a_batch_with_a_foreign_or_unknown_la_changes_nothing<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let ours = test_plan(
        "E09000007",
        test_nhs_number(4),
        PlanType::ChildProtection,
        TODAY,
    );
    let theirs = test_plan(
        "E10000016",
        test_nhs_number(5),
        PlanType::ChildProtection,
        TODAY,
    );
    let refused = store
        .apply_plans(batch("E09000007", vec![ours.clone(), theirs], None))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let unknown = test_plan(
        "E06000001",
        test_nhs_number(6),
        PlanType::LookedAfter,
        TODAY,
    );
    let refused = store
        .apply_plans(batch("E06000001", vec![unknown], None))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.counts().await.unwrap().plans, 0);
}

pub async fn snapshots_withdraw_absent_plans_within_their_guard<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let plans: Vec<Plan> = (0..10)
        .map(|i| {
            test_plan(
                "E10000016",
                test_nhs_number(100 + i),
                PlanType::LookedAfter,
                TODAY,
            )
        })
        .collect();
    // Another LA's plans are never touched by Kent's snapshot.
    let camden = test_plan(
        "E09000007",
        test_nhs_number(200),
        PlanType::LookedAfter,
        TODAY,
    );
    store
        .apply_plans(batch("E09000007", vec![camden.clone()], None))
        .await
        .unwrap();
    store
        .apply_plans(batch("E10000016", plans.clone(), None))
        .await
        .unwrap();
    let guard = |max| {
        Some(Snapshot {
            withdraw_on: TODAY,
            max_withdraw_percent: max,
        })
    };

    // Withdrawing 1 of 10 is exactly 10%: allowed.
    let applied = store
        .apply_plans(batch("E10000016", plans[1..].to_vec(), guard(Some(10))))
        .await
        .unwrap();
    assert_eq!(
        (applied.inserted, applied.updated, applied.withdrawn),
        (0, 9, 1)
    );
    let withdrawn = store
        .plans_for_nhs_number(plans[0].nhs_number())
        .await
        .unwrap();
    assert_eq!(withdrawn[0].0.delete_date(), Some(TODAY));

    // Withdrawing 2 of the 9 left is over 10%: refused, and nothing changes.
    let refused = store
        .apply_plans(batch("E10000016", plans[3..].to_vec(), guard(Some(10))))
        .await;
    match refused {
        Err(StoreError::SnapshotGuard {
            would_withdraw,
            visible,
            max_percent,
        }) => assert_eq!((would_withdraw, visible, max_percent), (2, 9, 10)),
        other => panic!("expected the snapshot guard, got {other:?}"),
    }
    let still_there = store
        .plans_for_nhs_number(plans[1].nhs_number())
        .await
        .unwrap();
    assert_eq!(still_there[0].0.delete_date(), None);

    // Forced, it goes through; a plan sent again is no longer withdrawn.
    let applied = store
        .apply_plans(batch("E10000016", plans[3..].to_vec(), guard(None)))
        .await
        .unwrap();
    assert_eq!(applied.withdrawn, 2);
    let applied = store
        .apply_plans(batch("E10000016", plans.clone(), guard(None)))
        .await
        .unwrap();
    assert_eq!(applied.withdrawn, 0);
    for plan in &plans {
        let found = store.plans_for_nhs_number(plan.nhs_number()).await.unwrap();
        assert_eq!(found[0].0.delete_date(), None);
    }
    let camden_found = store
        .plans_for_nhs_number(camden.nhs_number())
        .await
        .unwrap();
    assert_eq!(camden_found[0].0, camden);
}

pub async fn plans_of_an_la_come_in_pages<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let plans: Vec<Plan> = (0..25)
        .map(|i| {
            test_plan(
                "E08000025",
                test_nhs_number(300 + i),
                PlanType::ChildProtection,
                TODAY,
            )
        })
        .collect();
    store
        .apply_plans(batch("E08000025", plans.clone(), None))
        .await
        .unwrap();
    let la = LaCode::parse("E08000025").unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .plans_for_la(la, PlanPage { after, limit: 10 })
            .await
            .unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(*last.key());
        seen.extend(page);
    }
    let mut expected = plans;
    expected.sort_by_key(|plan| *plan.key());
    assert_eq!(seen, expected);
    let other = LaCode::parse("E09000007").unwrap();
    let none = store
        .plans_for_la(
            other,
            PlanPage {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// A large upload's plans come from a spool on disk, read in chunks; the
/// store must apply every chunk in the one transaction.
pub async fn a_spooled_batch_applies_like_a_listed_one<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let spool = |la: &str, plans: &[Plan]| {
        let mut writer = PlanSpoolWriter::new(LaCode::parse(la).unwrap()).unwrap();
        for plan in plans {
            writer.push(plan).unwrap();
        }
        Plans::Spooled(writer.finish().unwrap())
    };
    // More than one chunk in every backend.
    let plans: Vec<Plan> = (0..12_001)
        .map(|i| {
            test_plan(
                "E10000016",
                test_nhs_number(10_000 + i),
                PlanType::ALL[i as usize % 3],
                date!(2025 - 03 - 01),
            )
        })
        .collect();
    let applied = store
        .apply_plans(PlanBatch {
            la: LaCode::parse("E10000016").unwrap(),
            batch_id: Uuid::now_v7(),
            plans: spool("E10000016", &plans),
            snapshot: Some(Snapshot {
                withdraw_on: TODAY,
                max_withdraw_percent: Some(10),
            }),
            at: AT,
        })
        .await
        .unwrap();
    assert_eq!(
        (applied.inserted, applied.updated, applied.withdrawn),
        (12_001, 0, 0)
    );
    let found = store
        .plans_for_nhs_number(test_nhs_number(10_000 + 12_000))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, plans[12_000]);

    // A spool of one LA's plans sent as another's changes nothing.
    let refused = store
        .apply_plans(PlanBatch {
            la: LaCode::parse("E09000007").unwrap(),
            batch_id: Uuid::now_v7(),
            plans: spool("E10000016", &plans[..3]),
            snapshot: None,
            at: AT,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.counts().await.unwrap().plans, 12_001);
}

pub async fn access_records_and_their_outbox_items_commit_together<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    push_to(&*store, "E09000007").await;
    push_to(&*store, "E10000016").await;
    let child = test_nhs_number(400);
    let first = test_access(child, AT, true);
    let silent = test_access(child, AT + Duration::minutes(1), false);
    let mut second = test_access(child, AT + Duration::minutes(2), true);
    second.returned = vec![*test_plan("E09000007", child, PlanType::ChildProtection, TODAY).key()];
    let other_child = test_access(test_nhs_number(401), AT + Duration::minutes(3), true);
    store
        .record_access(first.clone(), vec![outbox_item("E09000007", AT)], None)
        .await
        .unwrap();
    store.record_access(silent, vec![], None).await.unwrap();
    store
        .record_access(
            second.clone(),
            vec![
                outbox_item("E09000007", AT + Duration::minutes(2)),
                outbox_item("E10000016", AT + Duration::minutes(2)),
            ],
            None,
        )
        .await
        .unwrap();
    store
        .record_access(other_child, vec![], None)
        .await
        .unwrap();

    let recent = store.recent_unscheduled_accesses(child, 10).await.unwrap();
    assert_eq!(recent, vec![second.clone(), first]);
    let limited = store.recent_unscheduled_accesses(child, 1).await.unwrap();
    assert_eq!(limited, vec![second]);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.access_records, 4);
    assert_eq!(counts.outbox_pending, 3);
}

/// Commits a look at the child `n` with one outbox item, and returns the
/// item: a later write reusing its id must fail.
async fn committed_item<S: Store>(store: &S, n: u32) -> OutboxItem {
    let item = outbox_item("E09000007", AT);
    store
        .record_access(
            test_access(test_nhs_number(n), AT, true),
            vec![item.clone()],
            None,
        )
        .await
        .unwrap();
    item
}

pub async fn a_failed_access_write_leaves_nothing<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let item = committed_item(&*store, 500).await;
    // Reusing the outbox item's id must fail the whole write: the access
    // record must not be kept without its notifications.
    let child = test_nhs_number(501);
    let refused = store
        .record_access(test_access(child, AT, true), vec![item], None)
        .await;
    assert!(refused.is_err());
    assert!(
        store
            .recent_unscheduled_accesses(child, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().await.unwrap().access_records, 1);
}

pub async fn outbox_items_are_claimed_by_one_node_at_a_time<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    push_to(&*store, "E09000007").await;
    let items: Vec<OutboxItem> = (0..3)
        .map(|i| outbox_item("E09000007", AT - Duration::seconds(3 - i)))
        .collect();
    store
        .record_access(
            test_access(test_nhs_number(600), AT, true),
            items.clone(),
            None,
        )
        .await
        .unwrap();
    let claim = |node: &str, now: OffsetDateTime| OutboxClaim {
        node: node.to_owned(),
        now,
        lease: Duration::seconds(30),
        limit: 2,
    };

    let a = store.claim_outbox(claim("a", AT)).await.unwrap();
    assert_eq!(
        a.iter().map(|item| item.id).collect::<Vec<_>>(),
        vec![items[0].id, items[1].id],
        "oldest first, up to the limit"
    );
    assert_eq!(a[0], items[0], "every field survives the round trip");
    let b = store.claim_outbox(claim("b", AT)).await.unwrap();
    assert_eq!(
        b.iter().map(|item| item.id).collect::<Vec<_>>(),
        vec![items[2].id]
    );
    assert!(store.claim_outbox(claim("c", AT)).await.unwrap().is_empty());

    // Node a stalls; after its lease, node c takes its items over.
    let later = AT + Duration::seconds(31);
    let c = store.claim_outbox(claim("c", later)).await.unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(
        store
            .complete_outbox("a", vec![items[0].id, items[1].id], later)
            .await
            .unwrap(),
        0,
        "a lost its claim"
    );
    assert_eq!(
        store
            .complete_outbox("c", vec![items[0].id, items[1].id], later)
            .await
            .unwrap(),
        2
    );

    // A failed attempt is counted and waits for its retry time.
    store
        .retry_outbox("b", items[2].id, later + Duration::minutes(5), "HTTP 500")
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(claim("d", later))
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store
        .claim_outbox(claim("d", later + Duration::minutes(5)))
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(store.counts().await.unwrap().outbox_pending, 1);
}

pub async fn the_feed_lists_an_las_items_in_commit_order_and_only_its_own<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let camden = LaCode::parse("E09000007").unwrap();
    let kent = LaCode::parse("E10000016").unwrap();
    let mut written = Vec::new();
    for i in 0..7 {
        let item = outbox_item("E09000007", AT + Duration::seconds(i));
        let kents = outbox_item("E10000016", AT + Duration::seconds(i));
        store
            .record_access(
                test_access(test_nhs_number(800), AT + Duration::seconds(i), true),
                vec![item.clone(), kents],
                None,
            )
            .await
            .unwrap();
        written.push(item);
    }
    let mut read = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.notifications(camden, cursor, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some((last, _)) = page.last() else { break };
        assert!(*last > cursor, "positions grow");
        cursor = *last;
        read.extend(page.into_iter().map(|(_, item)| item));
    }
    assert_eq!(read, written, "every item once, in order, every field kept");
    assert!(read.iter().all(|item| item.la == camden));
    assert_eq!(store.notifications(kent, 0, 100).await.unwrap().len(), 7);
    let birmingham = LaCode::parse("E08000025").unwrap();
    assert!(
        store
            .notifications(birmingham, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // An item written after a reader's last page comes after its cursor.
    let late = outbox_item("E09000007", AT - Duration::hours(1));
    store
        .record_access(
            test_access(test_nhs_number(801), AT, true),
            vec![late.clone()],
            None,
        )
        .await
        .unwrap();
    let next = store.notifications(camden, cursor, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1, late);

    // The dashboard's glance: last written first, as the feed gives them
    // (the late item was made earlier but reached the feed last), by kind,
    // only the LA's own.
    let latest = store.latest_notifications(camden, None, 3).await.unwrap();
    let newest: Vec<OutboxItem> = std::iter::once(&late)
        .chain(written.iter().rev())
        .take(3)
        .cloned()
        .collect();
    assert_eq!(latest, newest, "newest in the feed's order");
    assert!(
        store
            .latest_notifications(camden, Some(OutboxKind::RepeatAttendance), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .latest_notifications(camden, Some(OutboxKind::Access), 100)
            .await
            .unwrap()
            .len(),
        8
    );
    assert!(
        store
            .latest_notifications(birmingham, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Thousands of items, as a busy day brings: a store may index an LA's
/// items in bulk after they are written (the embedded store does, every
/// 1,024 items), and a feed read must still give every item once, in
/// order, from any cursor, and the newest first on the dashboard, whatever
/// is indexed yet and after old items are purged.
pub async fn a_long_feed_reads_whole_and_in_order_from_any_cursor<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    push_to(&*store, "E09000007").await;
    let camden = LaCode::parse("E09000007").unwrap();
    let las = ["E09000007", "E10000016", "E08000025"];
    // Written 64 at a time, so that a store may commit them together.
    let mut tasks = Vec::new();
    for i in 0..2_600_i64 {
        let store = store.clone();
        let item = outbox_item(las[(i % 3) as usize], AT + Duration::seconds(i));
        let record = test_access(test_nhs_number(900 + (i % 50) as u32), AT, true);
        tasks.push(tokio::spawn(async move {
            store.record_access(record, vec![item], None).await
        }));
        if tasks.len() == 64 || i == 2_599 {
            for task in tasks.drain(..) {
                task.await.unwrap().unwrap();
            }
        }
    }
    let feed = |after: u64, limit: usize| {
        let store = store.clone();
        async move { store.notifications(camden, after, limit).await.unwrap() }
    };
    // Every item after `cursor`, a page of `size` at a time.
    let in_pages = |mut cursor: u64, size: usize| async move {
        let mut read = Vec::new();
        loop {
            let page = feed(cursor, size).await;
            assert!(page.len() <= size);
            let Some((last, _)) = page.last() else { break };
            cursor = *last;
            read.extend(page);
        }
        read
    };
    let whole = feed(0, 10_000).await;
    assert_eq!(whole.len(), 867, "every third item is Camden's");
    assert!(whole.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let mut times: Vec<_> = whole.iter().map(|(_, item)| item.created_at).collect();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), 867, "each item once");
    assert!(whole.iter().all(|(_, item)| item.la == camden));
    // Pages of any size, from any cursor, give the same items.
    for (start, size) in [(0, 97), (300, 1), (500, 250), (866, 10)] {
        let cursor = if start == 0 { 0 } else { whole[start - 1].0 };
        assert_eq!(
            in_pages(cursor, size).await,
            whole[start..],
            "from item {start} in pages of {size}"
        );
    }
    let newest: Vec<OutboxItem> = whole
        .iter()
        .rev()
        .take(700)
        .map(|(_, item)| item.clone())
        .collect();
    assert_eq!(
        store.latest_notifications(camden, None, 700).await.unwrap(),
        newest
    );
    assert_eq!(
        store
            .latest_notifications(camden, Some(OutboxKind::Access), 5)
            .await
            .unwrap(),
        newest[..5]
    );

    // An LA's counts, and its webhook's removal, reach all its items.
    assert_eq!(store.delivery_counts(camden).await.unwrap().pending, 867);
    assert!(store.delete_webhook(camden).await.unwrap());
    assert_eq!(store.delivery_counts(camden).await.unwrap().pending, 0);
    assert_eq!(store.counts().await.unwrap().outbox_pending, 0);

    // Purged items leave the feed, and the rest read as before.
    let kept_from = AT + Duration::seconds(1_300);
    let purged = store.purge_outbox(kept_from).await.unwrap();
    assert_eq!(purged, 1_300);
    let kept: Vec<_> = whole
        .iter()
        .filter(|(_, item)| item.created_at >= kept_from)
        .cloned()
        .collect();
    assert_eq!(feed(0, 10_000).await, kept);
    assert_eq!(in_pages(0, 60).await, kept);
}

pub async fn only_items_of_an_la_with_a_webhook_are_pushed<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let camden = LaCode::parse("E09000007").unwrap();
    let claim = |now: OffsetDateTime| OutboxClaim {
        node: "a".into(),
        now,
        lease: Duration::seconds(30),
        limit: 100,
    };
    let before = outbox_item("E09000007", AT);
    let recorded = store
        .record_access(
            test_access(test_nhs_number(820), AT, true),
            vec![before],
            None,
        )
        .await
        .unwrap();
    assert!(!recorded.pushed, "nothing for the delivery worker to claim");
    assert!(
        store.claim_outbox(claim(AT)).await.unwrap().is_empty(),
        "no webhook yet"
    );
    assert!(store.webhook(camden).await.unwrap().is_none());

    push_to(&*store, "E09000007").await;
    let hook = store.webhook(camden).await.unwrap().unwrap();
    assert_eq!(hook.url, "https://E09000007.example/hook");
    let after = outbox_item("E09000007", AT);
    let unpushed = outbox_item("E10000016", AT);
    let recorded = store
        .record_access(
            test_access(test_nhs_number(822), AT, true),
            vec![unpushed],
            None,
        )
        .await
        .unwrap();
    assert!(
        !recorded.pushed,
        "another LA's webhook pushes nothing of Kent's"
    );
    let recorded = store
        .record_access(
            test_access(test_nhs_number(821), AT, true),
            vec![after.clone(), outbox_item("E10000016", AT)],
            None,
        )
        .await
        .unwrap();
    assert!(recorded.pushed);
    let claimed = store.claim_outbox(claim(AT)).await.unwrap();
    assert_eq!(
        claimed,
        vec![after.clone()],
        "only what was written with a webhook in place"
    );
    assert_eq!(store.counts().await.unwrap().outbox_pending, 1);

    // Without the webhook, its waiting items are only in the feed.
    store
        .retry_outbox("a", after.id, AT, "HTTP 503")
        .await
        .unwrap();
    assert!(store.delete_webhook(camden).await.unwrap());
    assert!(!store.delete_webhook(camden).await.unwrap());
    assert!(
        store
            .claim_outbox(claim(AT + Duration::hours(1)))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.notifications(camden, 0, 10).await.unwrap().len(), 2);
}

pub async fn attendances_group_a_childs_unscheduled_looks_by_organisation<S: Store>(store: Arc<S>) {
    let child = test_nhs_number(910);
    let look = |organisation: &str, at: OffsetDateTime, unscheduled: bool| AccessRecord {
        organisation_code: OdsCode::parse(organisation).unwrap(),
        organisation_name: format!("Setting {organisation}"),
        ..test_access(child, at, unscheduled)
    };
    let since = AT - Duration::days(30);
    store
        .put_organisations(vec![Organisation {
            code: OdsCode::parse("ZZA01").unwrap(),
            name: "Amberfield Emergency Department".to_owned(),
            setting_type: SettingType::EmergencyDepartment,
        }])
        .await
        .unwrap();
    for record in [
        look("ZZA01", AT - Duration::days(2), true),
        look("ZZA01", AT - Duration::hours(1), true),
        look("ZZB02", AT - Duration::days(10), true),
        // Not counted: scheduled, exactly at the window's start, after its end, another child.
        look("ZZC03", AT - Duration::days(1), false),
        look("ZZD04", since, true),
        look("ZZE05", AT + Duration::seconds(1), true),
        test_access(test_nhs_number(911), AT, true),
    ] {
        store.record_access(record, vec![], None).await.unwrap();
    }
    let mut seen = store.attendances(child, since, AT).await.unwrap();
    seen.sort_by(|a, b| a.organisation_code.cmp(&b.organisation_code));
    let summary: Vec<(&str, OffsetDateTime, OffsetDateTime, u32)> = seen
        .iter()
        .map(|a| {
            (
                a.organisation_code.as_str(),
                a.first_seen,
                a.last_seen,
                a.looks,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ZZA01", AT - Duration::days(2), AT - Duration::hours(1), 2),
            ("ZZB02", AT - Duration::days(10), AT - Duration::days(10), 1),
        ]
    );
    // Named as registered now; an unregistered code stands for its name.
    assert_eq!(seen[0].organisation_name, "Amberfield Emergency Department");
    assert_eq!(seen[1].organisation_name, "ZZB02");
    assert!(
        store
            .attendances(test_nhs_number(912), since, AT)
            .await
            .unwrap()
            .is_empty()
    );
}

/// How the conformance tests word an alert: the organisations seen, in
/// the order the store hands them over.
fn test_wording(
    la: LaCode,
    record: &AccessRecord,
    rule: RepeatRule,
    seen: &[Attendance],
) -> OutboxItem {
    OutboxItem {
        kind: OutboxKind::RepeatAttendance,
        payload: serde_json::json!({
            "rule": rule,
            "organisations": seen
                .iter()
                .map(|a| (a.organisation_code.as_str(), a.looks))
                .collect::<Vec<_>>(),
        })
        .into(),
        ..outbox_item(la.as_str(), record.at)
    }
}

/// A check of `owners`, each alerting at two organisations in 30 days.
fn two_in_thirty_days(owners: &[&str]) -> Option<RepeatCheck> {
    Some(RepeatCheck {
        owners: owners
            .iter()
            .map(|la| (LaCode::parse(la).unwrap(), RepeatRule::new(2, 30).unwrap()))
            .collect(),
        read: Vec::new(),
        wording: test_wording,
    })
}

fn look_at(child: NhsNumber, organisation: &str, at: OffsetDateTime) -> AccessRecord {
    AccessRecord {
        organisation_code: OdsCode::parse(organisation).unwrap(),
        organisation_name: format!("Setting {organisation}"),
        ..test_access(child, at, true)
    }
}

/// The store judges the rule on the child's looks, this one counted in,
/// and writes an owed alert only once per window per LA and child.
pub async fn repeat_alerts_are_written_once_per_window<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let child = test_nhs_number(840);
    let camden = LaCode::parse("E09000007").unwrap();
    let kent = LaCode::parse("E10000016").unwrap();
    // Camden takes webhooks: an alert written is an item to push.
    push_to(&*store, "E09000007").await;
    let camden_only = || two_in_thirty_days(&["E09000007"]);
    assert_eq!(
        store
            .record_access(look_at(child, "ZZA01", AT), vec![], camden_only())
            .await
            .unwrap(),
        Recorded::default(),
        "one organisation is not a pattern"
    );
    // A scheduled look elsewhere does not count.
    store
        .record_access(
            AccessRecord {
                unscheduled: false,
                ..look_at(child, "ZZC03", AT)
            },
            vec![],
            None,
        )
        .await
        .unwrap();
    let first = AT + Duration::hours(1);
    assert_eq!(
        store
            .record_access(look_at(child, "ZZB02", first), vec![], camden_only())
            .await
            .unwrap(),
        Recorded {
            alerts: 1,
            pushed: true
        },
        "the look itself is the second organisation"
    );
    // Two organisations again, but Camden's window is taken; Kent's is its own.
    let within = first + Duration::days(30) - Duration::seconds(1);
    assert_eq!(
        store
            .record_access(
                look_at(child, "ZZA01", within),
                vec![],
                two_in_thirty_days(&["E09000007", "E10000016"])
            )
            .await
            .unwrap(),
        Recorded {
            alerts: 1,
            pushed: false
        },
        "Kent's alert only, and nothing to push"
    );
    // Another child has a window of its own.
    let other = test_nhs_number(841);
    store
        .record_access(look_at(other, "ZZA01", first), vec![], None)
        .await
        .unwrap();
    assert_eq!(
        store
            .record_access(look_at(other, "ZZB02", within), vec![], camden_only())
            .await
            .unwrap()
            .alerts,
        1
    );
    // The next window: the look at `first` is exactly at its start, out of it.
    let next = first + Duration::days(30);
    assert_eq!(
        store
            .record_access(look_at(child, "ZZB02", next), vec![], camden_only())
            .await
            .unwrap()
            .alerts,
        1
    );
    let feed: Vec<OutboxItem> = store
        .notifications(camden, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    assert_eq!(feed.len(), 3);
    let organisations = |item: &OutboxItem| item.payload.to_value()["organisations"].clone();
    assert_eq!(
        organisations(&feed[0]),
        serde_json::json!([["ZZA01", 1], ["ZZB02", 1]]),
        "oldest first, the scheduled look left out"
    );
    assert_eq!(feed[0].created_at, first);
    assert_eq!(feed[1].created_at, within);
    assert_eq!(
        organisations(&feed[2]),
        serde_json::json!([["ZZA01", 1], ["ZZB02", 1]])
    );
    assert_eq!(feed[2].created_at, next);
    let kents = store.notifications(kent, 0, 10).await.unwrap();
    assert_eq!(kents.len(), 1);
    assert_eq!(
        organisations(&kents[0].1),
        serde_json::json!([["ZZB02", 1], ["ZZA01", 1]])
    );
    assert_eq!(store.counts().await.unwrap().access_records, 7);
}

/// Looks at one child arriving together, each owing an alert: however the
/// store groups their writes, one alert takes the window.
pub async fn concurrent_looks_take_a_repeat_window_once<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let child = test_nhs_number(850);
    let camden = LaCode::parse("E09000007").unwrap();
    for organisation in ["ZZA01", "ZZB02"] {
        store
            .record_access(look_at(child, organisation, AT), vec![], None)
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (1..=32)
        .map(|i| {
            let store = store.clone();
            let at = AT + Duration::seconds(i);
            tokio::spawn(async move {
                store
                    .record_access(
                        look_at(child, "ZZC03", at),
                        vec![],
                        two_in_thirty_days(&["E09000007"]),
                    )
                    .await
                    .unwrap()
                    .alerts
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += task.await.unwrap();
    }
    assert_eq!(taken, 1, "one alert per window");
    assert_eq!(store.notifications(camden, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.counts().await.unwrap().access_records, 34);
}

pub async fn failed_items_are_parked_until_replayed<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    push_to(&*store, "E09000007").await;
    let camden = LaCode::parse("E09000007").unwrap();
    let items: Vec<OutboxItem> = (0..3)
        .map(|i| outbox_item("E09000007", AT + Duration::seconds(i)))
        .collect();
    store
        .record_access(
            test_access(test_nhs_number(860), AT, true),
            items.clone(),
            None,
        )
        .await
        .unwrap();
    let claim = |now: OffsetDateTime| OutboxClaim {
        node: "a".into(),
        now,
        lease: Duration::seconds(30),
        limit: 100,
    };
    assert_eq!(
        store
            .claim_outbox(claim(AT + Duration::seconds(2)))
            .await
            .unwrap()
            .len(),
        3
    );
    store
        .complete_outbox("a", vec![items[0].id], AT)
        .await
        .unwrap();
    store
        .retry_outbox("a", items[1].id, AT + Duration::hours(1), "HTTP 500")
        .await
        .unwrap();
    store
        .park_outbox("a", items[2].id, AT + Duration::seconds(5), "timed out")
        .await
        .unwrap();
    assert_eq!(
        store.delivery_counts(camden).await.unwrap(),
        DeliveryCounts {
            pending: 1,
            delivered: 1,
            failed: 1,
            last_error: Some("HTTP 500".into()),
        }
    );
    let failed = store.failed_outbox(camden, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].item.id, items[2].id);
    assert_eq!(failed[0].item.attempts, 1);
    assert_eq!(failed[0].failed_at, AT + Duration::seconds(5));
    assert_eq!(failed[0].last_error.as_deref(), Some("timed out"));
    let kent = LaCode::parse("E10000016").unwrap();
    assert!(store.failed_outbox(kent, 10).await.unwrap().is_empty());
    assert_eq!(
        store.replay_outbox(kent, None, AT).await.unwrap(),
        0,
        "only the LA's own"
    );
    assert!(
        store
            .claim_outbox(claim(AT + Duration::minutes(1)))
            .await
            .unwrap()
            .is_empty(),
        "parked"
    );

    let later = AT + Duration::minutes(2);
    assert_eq!(
        store
            .replay_outbox(camden, Some(vec![items[1].id]), later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .replay_outbox(camden, Some(vec![items[2].id]), later)
            .await
            .unwrap(),
        1
    );
    let replayed = store.claim_outbox(claim(later)).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!((replayed[0].id, replayed[0].attempts), (items[2].id, 0));
    assert_eq!(
        replayed[0].created_at, later,
        "its retries are counted from the replay"
    );
    assert!(store.failed_outbox(camden, 10).await.unwrap().is_empty());
}

pub async fn old_items_are_purged<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let camden = LaCode::parse("E09000007").unwrap();
    let old = outbox_item("E09000007", AT - Duration::days(400));
    let new = outbox_item("E09000007", AT);
    store
        .record_access(
            test_access(test_nhs_number(880), AT, true),
            vec![old, new.clone()],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.purge_outbox(AT - Duration::days(365)).await.unwrap(),
        1
    );
    let left: Vec<OutboxItem> = store
        .notifications(camden, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    assert_eq!(left, vec![new]);

    // Positions keep growing after everything is purged, so that a reader's
    // cursor never hides what comes next.
    let cursor = store.notifications(camden, 0, 10).await.unwrap()[0].0;
    assert_eq!(store.purge_outbox(AT + Duration::days(1)).await.unwrap(), 1);
    let later = outbox_item("E09000007", AT + Duration::days(2));
    store
        .record_access(
            test_access(test_nhs_number(881), AT, true),
            vec![later.clone()],
            None,
        )
        .await
        .unwrap();
    let after = store.notifications(camden, cursor, 10).await.unwrap();
    assert_eq!(after.len(), 1, "the new item comes after the old cursor");
    assert_eq!(after[0].1, later);
}

pub async fn every_access_and_upload_is_a_leaf_of_the_log<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let records: Vec<AccessRecord> = (0..5)
        .map(|i| {
            test_access(
                test_nhs_number(900 + i),
                AT + Duration::seconds(i.into()),
                i % 2 == 0,
            )
        })
        .collect();
    for record in &records[..3] {
        store
            .record_access(record.clone(), vec![], None)
            .await
            .unwrap();
    }
    let upload = UploadRecord {
        id: Uuid::now_v7(),
        la: LaCode::parse("E09000007").unwrap(),
        received_at: AT,
        mode: "changes".into(),
        file_code: "CPF04".into(),
        accepted: 0,
        rejected: 1,
        withdrawn: 0,
        idempotency_key: None,
        records: serde_json::json!([{"line": 2, "code": "CPR04", "reason": "check digit"}]),
    };
    store.record_upload(upload.clone(), None).await.unwrap();
    for record in &records[3..] {
        store
            .record_access(record.clone(), vec![], None)
            .await
            .unwrap();
    }
    assert_eq!(store.sequence_log().await.unwrap(), 6);
    assert_eq!(
        store.sequence_log().await.unwrap(),
        6,
        "placing twice changes nothing"
    );

    let entries = store.log_entries(0, 100).await.unwrap();
    assert_eq!(entries.len(), 6);
    // Places follow commit order across sequencing runs; within one run a
    // store may order what committed meanwhile as it likes.
    let mut expected: Vec<Uuid> = records
        .iter()
        .map(|record| record.id)
        .chain([upload.id])
        .collect();
    let mut placed: Vec<Uuid> = entries.iter().map(|entry| entry.leaf.record_id).collect();
    expected.sort();
    placed.sort();
    assert_eq!(placed, expected);
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry.leaf.index, index as u64);
        assert_eq!(
            entry.record.hash(),
            Some(entry.leaf.hash),
            "the record reads back as it was hashed"
        );
    }
    assert!(
        entries
            .iter()
            .any(|entry| entry.record == LoggedRecord::Upload(upload.clone()))
    );
    assert_eq!(store.log_entries(4, 1).await.unwrap()[0], entries[4]);
    let later = test_access(test_nhs_number(990), AT + Duration::minutes(1), true);
    store
        .record_access(later.clone(), vec![], None)
        .await
        .unwrap();
    assert_eq!(store.sequence_log().await.unwrap(), 7);
    assert_eq!(
        store.log_entries(6, 10).await.unwrap()[0].leaf.record_id,
        later.id,
        "a later commit comes after"
    );
    let hashes = store.log_leaf_hashes(1, 4).await.unwrap();
    assert_eq!(
        hashes,
        entries[1..4]
            .iter()
            .map(|entry| (entry.leaf.index, entry.leaf.hash))
            .collect::<Vec<_>>()
    );

    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let node = merkle::node_hash(&entries[0].leaf.hash, &entries[1].leaf.hash);
    let checkpoint = |size: u64| Checkpoint {
        size,
        root: [size as u8; 32],
        note: format!("note {size}\n"),
        created_at: AT,
    };
    store
        .put_checkpoint(vec![(1, 0, node)], checkpoint(2))
        .await
        .unwrap();
    store
        .put_checkpoint(vec![(1, 0, node)], checkpoint(6))
        .await
        .unwrap();
    store.put_checkpoint(vec![], checkpoint(2)).await.unwrap();
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(checkpoint(6))
    );
    assert_eq!(
        store.checkpoints(0, 10).await.unwrap(),
        vec![checkpoint(2), checkpoint(6)]
    );
    assert_eq!(store.checkpoints(2, 10).await.unwrap(), vec![checkpoint(6)]);
    assert_eq!(
        store.log_nodes(vec![(1, 0), (1, 1), (2, 0)]).await.unwrap(),
        vec![Some(node), None, None]
    );
}

pub async fn reports_list_accesses_by_child_user_or_organisation<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let child = test_nhs_number(950);
    let mut written = Vec::new();
    for i in 0..7i64 {
        let mut record = test_access(child, AT + Duration::hours(i), i % 3 != 0);
        if i % 2 == 1 {
            record.user_id = "555000000002".into();
            record.organisation_code = OdsCode::parse("X99GP").unwrap();
        }
        store
            .record_access(record.clone(), vec![], None)
            .await
            .unwrap();
        written.push(record);
    }
    let other_child = test_access(test_nhs_number(951), AT, true);
    store
        .record_access(other_child, vec![], None)
        .await
        .unwrap();
    let query = |filter: AccessFilter, after: Option<&AccessRecord>| AccessQuery {
        filter,
        from: AT + Duration::hours(1),
        to: AT + Duration::hours(6),
        after: after.map(|record| (record.at, record.id)),
        limit: 2,
    };
    // Pages of two, oldest first, within [from, to): hours 1 to 5.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .accesses(query(AccessFilter::NhsNumber(child), after.as_ref()))
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    assert_eq!(seen, written[1..6].to_vec());
    let by_user = store
        .accesses(AccessQuery {
            limit: 100,
            ..query(AccessFilter::User("555000000002".into()), None)
        })
        .await
        .unwrap();
    assert_eq!(
        by_user,
        vec![written[1].clone(), written[3].clone(), written[5].clone()]
    );
    let by_place = store
        .accesses(AccessQuery {
            limit: 100,
            ..query(
                AccessFilter::Organisation(OdsCode::parse("X99ED").unwrap()),
                None,
            )
        })
        .await
        .unwrap();
    assert_eq!(by_place, vec![written[2].clone(), written[4].clone()]);

    let report = ReportRecord {
        id: Uuid::now_v7(),
        at: AT,
        user_id: "555000000009".into(),
        user_name: "Pat Privacy".into(),
        role_code: "R0001".into(),
        organisation_code: "X99ED".into(),
        report: "nhs_number".into(),
        subject: child.digits(),
        from: TODAY,
        to: TODAY,
        request_id: "r-1".into(),
    };
    store.record_report(report.clone()).await.unwrap();
    let size = store.sequence_log().await.unwrap();
    let last = store.log_entries(size - 1, 1).await.unwrap().remove(0);
    assert_eq!(last.record, LoggedRecord::Report(report));
    assert_eq!(last.record.hash(), Some(last.leaf.hash));
}

/// A look's id made at the time of the look, as the service makes it:
/// retention finds old records by id.
fn id_at(at: OffsetDateTime) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.unix_timestamp() as u64,
        at.nanosecond(),
    ))
}

/// Every page of a report, `limit` at a time.
async fn whole_report<S: Store>(
    store: &S,
    filter: AccessFilter,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<AccessRecord> {
    let mut seen: Vec<AccessRecord> = Vec::new();
    loop {
        let page = store
            .accesses(AccessQuery {
                filter: filter.clone(),
                from,
                to,
                after: seen.last().map(|record| (record.at, record.id)),
                limit: 97,
            })
            .await
            .unwrap();
        if page.is_empty() {
            return seen;
        }
        seen.extend(page);
    }
}

/// Reports by user and by organisation find every look, however many came
/// before it, however many share an instant, and whatever retention
/// removed: what an index of them filled in bulk, or one that finds them by
/// time bucket (as SQLite's does), must still do (a removal of the log's
/// last rows lets SQLite give their rowids out again).
pub async fn reports_find_every_look_however_many_and_after_retention<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let start = AT - Duration::days(3000);
    let look = |i: u32, at: OffsetDateTime| AccessRecord {
        id: id_at(at),
        user_id: format!("55500000000{}", i % 3),
        organisation_code: OdsCode::parse(["ZZA01", "ZZB02"][(i % 2) as usize]).unwrap(),
        ..test_access(test_nhs_number(2_000 + i % 50), at, !i.is_multiple_of(5))
    };
    // A look a minute, then a burst two days on: 1,200 looks in 10 s, three
    // at each instant, so that many share a time and the burst crosses the
    // boundaries of any time-bucketed index mid-page.
    let burst = start + Duration::days(2);
    let written: Vec<AccessRecord> = (0..2_600)
        .map(|i| look(i, start + Duration::minutes(i64::from(i))))
        .chain((0..1_200).map(|i| look(i, burst + Duration::milliseconds(i64::from(i / 3) * 25))))
        .collect();
    for chunk in written.chunks(100) {
        let tasks: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|record| {
                let store = store.clone();
                tokio::spawn(async move { store.record_access(record, vec![], None).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }
    let user = || AccessFilter::User("555000000001".into());
    let place = || AccessFilter::Organisation(OdsCode::parse("ZZB02").unwrap());
    let end = start + Duration::days(10);
    let expected = |written: &[AccessRecord], filter: &AccessFilter, from, to| {
        let mut found = written
            .iter()
            .filter(|record| record.at >= from && record.at < to)
            .filter(|record| match filter {
                AccessFilter::User(user) => record.user_id == *user,
                AccessFilter::Organisation(code) => record.organisation_code == *code,
                AccessFilter::NhsNumber(number) => record.nhs_number == *number,
            })
            .cloned()
            .collect::<Vec<_>>();
        found.sort_by_key(|record| (record.at, record.id));
        found
    };
    let (from, to) = (
        start + Duration::minutes(100),
        start + Duration::minutes(2_500),
    );
    let (burst_from, burst_to) = (burst + Duration::seconds(3), burst + Duration::seconds(8));
    for (filter, from, to) in [
        (user(), start, end),
        (place(), from, to),
        (place(), burst_from, burst_to),
    ] {
        let found = whole_report(&*store, filter.clone(), from, to).await;
        let expected = expected(&written, &filter, from, to);
        assert_eq!(found.len(), expected.len());
        assert_eq!(found, expected);
    }

    let retention = |before| log::RetentionRecord {
        id: Uuid::now_v7(),
        at: AT,
        access_before: before,
        plans_withdrawn_before: date!(2024 - 11 - 25),
        plans_ended_before: date!(2023 - 11 - 25),
        removed_access: 0,
        removed_plans: 0,
    };
    let half = start + Duration::minutes(1_300);
    let removed = store.apply_retention(retention(half)).await.unwrap();
    assert_eq!(removed.removed_access, 1_300);
    let kept = &written[1_300..];
    for filter in [user(), place()] {
        assert_eq!(
            whole_report(&*store, filter.clone(), start, end).await,
            expected(kept, &filter, start, end)
        );
    }
    // Everything removed, then new looks: found all the same.
    let all = store.apply_retention(retention(end)).await.unwrap();
    assert_eq!(all.removed_access, 2_500);
    let later: Vec<AccessRecord> = (0..3)
        .map(|i| look(i, end + Duration::hours(i64::from(i))))
        .collect();
    for record in &later {
        store
            .record_access(record.clone(), vec![], None)
            .await
            .unwrap();
    }
    for filter in [user(), place()] {
        assert_eq!(
            whole_report(&*store, filter.clone(), start, end + Duration::days(1)).await,
            expected(&later, &filter, start, end + Duration::days(1))
        );
    }
    assert_eq!(store.counts().await.unwrap().access_records, 3);
}

pub async fn retention_removes_old_records_and_keeps_their_leaves<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let old_at = AT - Duration::days(3000);
    let look = |n: u32, at: OffsetDateTime| AccessRecord {
        id: id_at(at),
        ..test_access(test_nhs_number(n), at, true)
    };
    let old = look(960, old_at);
    let recent = look(961, AT);
    for record in [&old, &recent] {
        store
            .record_access(record.clone(), vec![], None)
            .await
            .unwrap();
    }
    let withdrawn = Plan::new(PlanFields {
        delete_date: Some(date!(2020 - 01 - 01)),
        ..Plan::fields(&test_plan(
            "E09000007",
            test_nhs_number(962),
            PlanType::ChildProtection,
            date!(2019 - 01 - 01),
        ))
    })
    .unwrap();
    let current = test_plan(
        "E09000007",
        test_nhs_number(963),
        PlanType::ChildProtection,
        date!(2019 - 01 - 01),
    );
    store
        .apply_plans(batch("E09000007", vec![withdrawn, current.clone()], None))
        .await
        .unwrap();
    let retention = |id| log::RetentionRecord {
        id,
        at: AT,
        access_before: AT - Duration::days(2922),
        plans_withdrawn_before: date!(2024 - 11 - 25),
        plans_ended_before: date!(2023 - 11 - 25),
        removed_access: 0,
        removed_plans: 0,
    };
    let first = store
        .apply_retention(retention(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!((first.removed_access, first.removed_plans), (1, 1));
    let again = store
        .apply_retention(retention(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!((again.removed_access, again.removed_plans), (0, 0));
    assert_eq!(
        store.retention_records().await.unwrap(),
        vec![first.clone()],
        "only a removal is kept"
    );
    assert_eq!(store.counts().await.unwrap().access_records, 1);
    assert_eq!(
        store
            .plans_for_nhs_number(test_nhs_number(963))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .plans_for_nhs_number(test_nhs_number(962))
            .await
            .unwrap()
            .is_empty()
    );

    let size = store.sequence_log().await.unwrap();
    assert_eq!(
        size, 3,
        "two looks and the removal; the old look's leaf stays"
    );
    let entries = store.log_entries(0, 10).await.unwrap();
    let old_leaf = entries
        .iter()
        .find(|entry| entry.leaf.record_id == old.id)
        .unwrap();
    assert_eq!(old_leaf.record, LoggedRecord::Missing);
    assert!(old.id < log::first_id_at(first.access_before));
    assert!(recent.id > log::first_id_at(first.access_before));
    assert!(
        entries
            .iter()
            .any(|entry| entry.record == LoggedRecord::Retention(first.clone()))
    );
}

pub async fn concurrent_writes_all_land<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    push_to(&*store, "E09000007").await;
    let child = test_nhs_number(700);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let record = test_access(child, AT + Duration::seconds(i), true);
                store
                    .record_access(record, vec![outbox_item("E09000007", AT)], None)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.access_records, 64);
    assert_eq!(counts.outbox_pending, 64);
    let recent = store.recent_unscheduled_accesses(child, 100).await.unwrap();
    assert_eq!(recent.len(), 64);
    assert!(recent.windows(2).all(|pair| pair[0].at >= pair[1].at));
}

/// Writes sent together may share one transaction; each failing one (here,
/// every eighth, reusing a committed outbox item's id after its access
/// record is written) must leave nothing, and every other must land.
/// Lookups arriving together, however the store groups them, each get
/// their own child's plans and attendances: children here have one to
/// three plans and none to three earlier looks, so an answer given to the
/// wrong caller shows.
pub async fn concurrent_lookups_each_get_their_own_child<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let las = ["E09000007", "E08000025", "E10000016"];
    let children: Vec<(u32, NhsNumber)> =
        (0..48).map(|i| (i, test_nhs_number(1_000 + i))).collect();
    for (index, la) in las.iter().enumerate() {
        let plans = children
            .iter()
            .filter(|(i, _)| *i as usize % 3 >= index)
            .map(|(_, child)| test_plan(la, *child, PlanType::ChildProtection, TODAY))
            .collect();
        store.apply_plans(batch(la, plans, None)).await.unwrap();
    }
    for (i, child) in &children {
        for look in 0..i % 4 {
            let at = AT + Duration::seconds(i64::from(look));
            store
                .record_access(test_access(*child, at, true), vec![], None)
                .await
                .unwrap();
        }
    }
    let tasks: Vec<_> = children
        .into_iter()
        .map(|(i, child)| {
            let store = store.clone();
            tokio::spawn(async move {
                let plans = store.plans_for_nhs_number(child).await.unwrap();
                assert_eq!(plans.len() as u32, i % 3 + 1, "plans of child {i}");
                assert!(
                    plans
                        .iter()
                        .all(|(plan, la)| plan.nhs_number() == child && plan.key().la == la.code)
                );
                let seen = store
                    .attendances(child, AT - Duration::days(1), AT + Duration::days(1))
                    .await
                    .unwrap();
                let looks: Vec<u32> = seen.iter().map(|attendance| attendance.looks).collect();
                let expected = if i % 4 == 0 { vec![] } else { vec![i % 4] };
                assert_eq!(looks, expected, "attendances of child {i}");
                let reads = store
                    .reads_for_look(child, AT + Duration::days(1), true)
                    .await
                    .unwrap();
                assert_eq!(
                    reads.plans.len() as u32,
                    i % 3 + 1,
                    "a look's plans of child {i}"
                );
                let looks: Vec<u32> = reads
                    .windows
                    .iter()
                    .flat_map(|(_, seen)| seen.iter().map(|attendance| attendance.looks))
                    .collect();
                assert_eq!(looks, expected, "a look's attendances of child {i}");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// `reads_for_look` answers what the plan lookup and one attendance read
/// per distinct window of the child's LAs would.
pub async fn a_looks_reads_give_each_window_its_attendances<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    // Kent looks back a week; Camden keeps the default 30 days.
    let kent = LocalAuthority {
        repeat_attendance: RepeatRule::new(2, 7).unwrap(),
        ..test_la("E10000016", "Kent")
    };
    store.put_local_authorities(vec![kent]).await.unwrap();
    let child = test_nhs_number(1_100);
    for la in ["E09000007", "E10000016"] {
        let plan = test_plan(la, child, PlanType::ChildProtection, TODAY);
        store
            .apply_plans(batch(la, vec![plan], None))
            .await
            .unwrap();
    }
    let elsewhere = |at| AccessRecord {
        organisation_code: OdsCode::parse("X98ED").unwrap(),
        ..test_access(child, at, true)
    };
    for record in [
        test_access(child, AT - Duration::days(20), true),
        test_access(child, AT - Duration::days(2), true),
        elsewhere(AT - Duration::days(1)),
        test_access(child, AT - Duration::hours(1), false),
        test_access(test_nhs_number(1_101), AT - Duration::hours(1), true),
        // After the look: not seen by it.
        test_access(child, AT + Duration::hours(1), true),
    ] {
        store.record_access(record, vec![], None).await.unwrap();
    }
    let sorted = |mut seen: Vec<Attendance>| {
        seen.sort_by(|a, b| a.organisation_code.cmp(&b.organisation_code));
        seen
    };
    let reads = store.reads_for_look(child, AT, true).await.unwrap();
    assert_eq!(reads.plans.len(), 2);
    let mut windows: Vec<_> = reads
        .windows
        .into_iter()
        .map(|(window, seen)| (window, sorted(seen)))
        .collect();
    windows.sort_by_key(|(window, _)| *window);
    assert_eq!(
        windows
            .iter()
            .map(|(window, _)| window.whole_days())
            .collect::<Vec<_>>(),
        [7, 30]
    );
    for (window, seen) in &windows {
        let read = store.attendances(child, AT - *window, AT).await.unwrap();
        assert_eq!(*seen, sorted(read), "the {window} window");
    }
    let looks = |seen: &[Attendance]| seen.iter().map(|a| a.looks).collect::<Vec<_>>();
    assert_eq!(looks(&windows[0].1), [1, 1], "a week: one look at each");
    assert_eq!(looks(&windows[1].1), [1, 2], "30 days: two at X99ED");

    let without = store.reads_for_look(child, AT, false).await.unwrap();
    assert_eq!(without.plans.len(), 2);
    assert!(without.windows.is_empty());
    let nobody = store
        .reads_for_look(test_nhs_number(1_102), AT, true)
        .await
        .unwrap();
    assert_eq!(
        nobody,
        LookReads {
            plans: vec![],
            windows: vec![]
        }
    );
}

pub async fn a_failed_write_among_concurrent_ones_fails_alone<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let taken = committed_item(&*store, 800).await;
    let tasks: Vec<_> = (1..=64)
        .map(|i| {
            let store = store.clone();
            let item = if i % 8 == 0 {
                taken.clone()
            } else {
                outbox_item("E09000007", AT)
            };
            tokio::spawn(async move {
                let child = test_nhs_number(800 + i);
                let written = store
                    .record_access(test_access(child, AT, true), vec![item], None)
                    .await;
                (i, child, written.is_ok())
            })
        })
        .collect();
    for task in tasks {
        let (i, child, written) = task.await.unwrap();
        assert_eq!(written, i % 8 != 0, "write {i}");
        let kept = store.recent_unscheduled_accesses(child, 10).await.unwrap();
        assert_eq!(kept.len(), usize::from(written), "write {i}");
    }
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.access_records, 1 + 56);
}

pub async fn meta_round_trips<S: Store>(store: Arc<S>) {
    assert_eq!(store.meta("demo_seed").await.unwrap(), None);
    store.set_meta("demo_seed", "42").await.unwrap();
    store.set_meta("demo_seed", "43").await.unwrap();
    assert_eq!(
        store.meta("demo_seed").await.unwrap().as_deref(),
        Some("43")
    );
}

pub async fn ephemeral_entries_expire_and_are_taken_once<S: Store>(store: Arc<S>) {
    let later = AT + Duration::minutes(5);
    assert!(
        store
            .put_ephemeral("jti", "a", "1", later, AT)
            .await
            .unwrap()
    );
    // An unexpired entry cannot be put again: a replay is refused.
    assert!(
        !store
            .put_ephemeral("jti", "a", "2", later, AT)
            .await
            .unwrap()
    );
    assert_eq!(
        store.ephemeral("jti", "a", AT).await.unwrap().as_deref(),
        Some("1")
    );
    // The same key in another namespace is another entry.
    assert!(
        store
            .put_ephemeral("session", "a", "s", later, AT)
            .await
            .unwrap()
    );
    // Expired entries are gone to readers and may be put again.
    assert_eq!(store.ephemeral("jti", "a", later).await.unwrap(), None);
    assert!(
        store
            .put_ephemeral("jti", "a", "3", later + Duration::minutes(5), later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.ephemeral("jti", "a", later).await.unwrap().as_deref(),
        Some("3")
    );
    // Taken once, then gone.
    assert_eq!(
        store
            .take_ephemeral("jti", "a", later)
            .await
            .unwrap()
            .as_deref(),
        Some("3")
    );
    assert_eq!(store.take_ephemeral("jti", "a", later).await.unwrap(), None);
    // An expired entry cannot be taken.
    assert!(
        store
            .put_ephemeral("code", "c", "x", AT + Duration::seconds(1), AT)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take_ephemeral("code", "c", later).await.unwrap(),
        None
    );
    assert!(
        store
            .put_ephemeral("code", "d", "x", AT + Duration::seconds(1), AT)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_ephemeral(later).await.unwrap(), 2);
    assert_eq!(store.ephemeral("session", "a", AT).await.unwrap(), None);
}

pub async fn la_clients_round_trip<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let client = LaClient {
        client_id: "camden-mosaic".to_owned(),
        la: LaCode::parse("E09000007").unwrap(),
        public_key: serde_json::json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}),
        created_at: AT,
    };
    store.put_la_client(client.clone()).await.unwrap();
    assert_eq!(
        store.la_client("camden-mosaic").await.unwrap(),
        Some(client.clone())
    );
    assert_eq!(store.la_client("nobody").await.unwrap(), None);
    let mut rotated = client.clone();
    rotated.public_key =
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": "x2", "y": "y2", "kid": "k2"});
    store.put_la_client(rotated.clone()).await.unwrap();
    assert_eq!(store.la_clients().await.unwrap(), vec![rotated]);
    let unknown_la = LaClient {
        client_id: "nowhere".to_owned(),
        la: LaCode::parse("E06000001").unwrap(),
        ..client
    };
    assert!(matches!(
        store.put_la_client(unknown_la).await,
        Err(StoreError::Conflict(_))
    ));
}

fn upload(la: &str, key: Option<&str>, accepted: u64) -> UploadRecord {
    UploadRecord {
        id: Uuid::now_v7(),
        la: LaCode::parse(la).unwrap(),
        received_at: AT,
        mode: "changes".to_owned(),
        file_code: "CPF03".to_owned(),
        accepted,
        rejected: 1,
        withdrawn: 0,
        idempotency_key: key.map(str::to_owned),
        records: serde_json::json!([{"line": 3, "code": "CPR04", "reason": "bad NHS number"}]),
    }
}

pub async fn uploads_keep_their_acknowledgement_with_their_plans<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let plans: Vec<Plan> = (0..3)
        .map(|i| {
            test_plan(
                "E09000007",
                test_nhs_number(800 + i),
                PlanType::ChildProtection,
                TODAY,
            )
        })
        .collect();
    let first = upload("E09000007", Some("key-1"), 3);
    let kept = store
        .record_upload(first.clone(), Some(batch("E09000007", plans.clone(), None)))
        .await
        .unwrap();
    assert_eq!(kept, first);
    assert_eq!(store.counts().await.unwrap().plans, 3);
    let camden = LaCode::parse("E09000007").unwrap();
    assert_eq!(
        store.upload(camden, first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.upload_by_key(camden, "key-1").await.unwrap(),
        Some(first.clone())
    );
    // Another LA sees none of it.
    let kent = LaCode::parse("E10000016").unwrap();
    assert_eq!(store.upload(kent, first.id).await.unwrap(), None);
    assert_eq!(store.upload_by_key(kent, "key-1").await.unwrap(), None);
    assert!(store.uploads(kent, 10).await.unwrap().is_empty());
    // The same key again is refused, and changes nothing; another LA may use it.
    let again = store
        .record_upload(upload("E09000007", Some("key-1"), 0), None)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store
        .record_upload(upload("E10000016", Some("key-1"), 0), None)
        .await
        .unwrap();
    // A snapshot's withdrawals are counted in what is kept.
    let mut snapshot = upload("E09000007", None, 2);
    snapshot.mode = "snapshot".to_owned();
    let kept = store
        .record_upload(
            snapshot.clone(),
            Some(batch(
                "E09000007",
                plans[..2].to_vec(),
                Some(Snapshot {
                    withdraw_on: TODAY,
                    max_withdraw_percent: None,
                }),
            )),
        )
        .await
        .unwrap();
    assert_eq!(kept.withdrawn, 1);
    let listed = store.uploads(camden, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, snapshot.id, "newest first");
    assert_eq!(listed[0].withdrawn, 1);
    assert_eq!(listed[0].records, serde_json::Value::Null, "summaries only");
    assert_eq!(store.uploads(camden, 1).await.unwrap().len(), 1);
}

pub async fn a_refused_upload_leaves_nothing<S: Store>(store: Arc<S>) {
    seed_las(&*store).await;
    let plans: Vec<Plan> = (0..10)
        .map(|i| {
            test_plan(
                "E09000007",
                test_nhs_number(900 + i),
                PlanType::LookedAfter,
                TODAY,
            )
        })
        .collect();
    store
        .apply_plans(batch("E09000007", plans.clone(), None))
        .await
        .unwrap();
    let guarded = Snapshot {
        withdraw_on: TODAY,
        max_withdraw_percent: Some(10),
    };
    let refused = store
        .record_upload(
            upload("E09000007", Some("snap"), 5),
            Some(batch("E09000007", plans[..5].to_vec(), Some(guarded))),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::SnapshotGuard { .. })),
        "{refused:?}"
    );
    let camden = LaCode::parse("E09000007").unwrap();
    assert!(store.uploads(camden, 10).await.unwrap().is_empty());
    assert_eq!(store.upload_by_key(camden, "snap").await.unwrap(), None);
    for plan in &plans {
        let found = store.plans_for_nhs_number(plan.nhs_number()).await.unwrap();
        assert_eq!(found[0].0.delete_date(), None);
    }
}
