//! The clinician's query: which visible plans an NHS number has, and who
//! has looked at the child, recorded before it is answered.
//!
//! The access record and the owning LAs' notifications are committed in
//! one transaction before any plan leaves the server; if they cannot be
//! written, the answer is "unavailable" and shows nothing (fail closed).

use cpis_domain::{
    AccessRecord, LocalAuthority, NhsNumber, OrganisationRef, Permission, Plan, Principal,
    access_history,
};
use cpis_store::{RepeatCheck, Store};
use time::Date;
use uuid::Uuid;

use crate::{CoreError, Cpis, notify};

/// How many recent unscheduled accesses are read to build the history: more
/// than the 25 listed, since a person's repeats within 24 hours are folded.
const HISTORY_WINDOW: usize = 250;

/// What a clinician's query found.
#[derive(Debug, Clone)]
pub struct FlagAnswer {
    /// The visible plans, each with its LA.
    pub plans: Vec<(Plan, LocalAuthority)>,
    /// The UK date the visibility rule was applied on.
    pub today: Date,
    /// The access record written before this answer.
    pub access_id: Uuid,
    pub unscheduled: bool,
}

/// What a person sees after a search: the flag, and who looked before.
#[derive(Debug, Clone)]
pub struct ChildView {
    pub answer: FlagAnswer,
    /// The access history as of this look, without the look itself.
    pub history: Vec<AccessRecord>,
}

impl<S: Store> Cpis<S> {
    /// A person's search from the web application: one look, recorded
    /// exactly as [`Cpis::look_up_flag`] records it, with the history shown
    /// under the same record (it is the same look at the same child). The
    /// history is read first, so that a failed read records and notifies
    /// nothing; nothing read leaves before the look is recorded.
    pub async fn view_child(
        &self,
        principal: &Principal,
        nhs_number: NhsNumber,
        request_id: &str,
    ) -> Result<ChildView, CoreError> {
        let earlier = self
            .store
            .recent_unscheduled_accesses(nhs_number, HISTORY_WINDOW)
            .await?;
        let answer = self
            .look_up_flag(principal, nhs_number, false, request_id)
            .await?;
        let history = access_history(&earlier).into_iter().cloned().collect();
        Ok(ChildView { answer, history })
    }

    /// Looks up the flag for `nhs_number`. `marked_scheduled` is the caller
    /// saying the look is scheduled care (`IsUnscheduledAccessEvent: false`);
    /// a principal who may only view silently is scheduled whatever it says.
    pub async fn look_up_flag(
        &self,
        principal: &Principal,
        nhs_number: NhsNumber,
        marked_scheduled: bool,
        request_id: &str,
    ) -> Result<FlagAnswer, CoreError> {
        let unscheduled = principal.may(Permission::ViewFlag) && !marked_scheduled;
        // The caller's organisation is checked before any plan is read.
        let record = self
            .access_record(principal, nhs_number, unscheduled, request_id)
            .await?;
        let today = self.clock.today();
        // Only an unscheduled look is checked for repeat attendance; a store
        // that counts attendances as it writes the look needs no read here.
        let reads = self
            .store
            .reads_for_look(
                nhs_number,
                record.at,
                unscheduled && !S::COUNTS_ATTENDANCES_IN_WRITE,
            )
            .await?;
        let plans: Vec<(Plan, LocalAuthority)> = reads
            .plans
            .into_iter()
            .filter(|(plan, _)| plan.is_visible(today))
            .collect();
        let record = AccessRecord {
            returned: plans.iter().map(|(plan, _)| *plan.key()).collect(),
            ..record
        };
        let mut owners: Vec<&LocalAuthority> = Vec::new();
        for (_, la) in &plans {
            if !owners.iter().any(|known| known.code == la.code) {
                owners.push(la);
            }
        }
        let (outbox, repeat) = if unscheduled && !owners.is_empty() {
            let outbox = owners
                .iter()
                .map(|la| notify::access_item(la.code, &record))
                .collect();
            let repeat = RepeatCheck {
                owners: owners
                    .iter()
                    .map(|la| (la.code, la.repeat_attendance))
                    .collect(),
                read: reads.windows,
                wording: notify::repeat_item,
            };
            (outbox, Some(repeat))
        } else {
            (Vec::new(), None)
        };
        let access_id = record.id;
        let recorded = self
            .store
            .record_access(record, outbox, repeat)
            .await
            .map_err(|error| {
                tracing::error!(%error, "an access could not be recorded; nothing was shown");
                CoreError::Unavailable(
                    "the look could not be recorded, so nothing is shown; try again shortly".into(),
                )
            })?;
        if recorded.alerts > 0 {
            tracing::info!(
                alerts = recorded.alerts,
                "repeat attendance alerted to the owning authorities"
            );
        }
        // Items of an LA without a webhook are only in its feed: nothing for
        // the delivery worker, whose every claim is a statement of its own.
        if recorded.pushed {
            self.outbox_written.notify_one();
        }
        Ok(FlagAnswer {
            plans,
            today,
            access_id,
            unscheduled,
        })
    }

    /// The access history of an NHS number: the 25 most recent unscheduled
    /// looks, a person's repeats within 24 hours listed once. Reading it is
    /// itself recorded, as a scheduled access (not listed, not notified).
    pub async fn access_history_of(
        &self,
        principal: &Principal,
        nhs_number: NhsNumber,
        request_id: &str,
    ) -> Result<Vec<AccessRecord>, CoreError> {
        let record = self
            .access_record(principal, nhs_number, false, request_id)
            .await?;
        let recent = self
            .store
            .recent_unscheduled_accesses(nhs_number, HISTORY_WINDOW)
            .await?;
        self.store
            .record_access(record, Vec::new(), None)
            .await
            .map_err(|error| {
                tracing::error!(%error, "a history read could not be recorded; nothing was shown");
                CoreError::Unavailable(
                    "the look could not be recorded, so nothing is shown; try again shortly".into(),
                )
            })?;
        Ok(access_history(&recent).into_iter().cloned().collect())
    }

    async fn access_record(
        &self,
        principal: &Principal,
        nhs_number: NhsNumber,
        unscheduled: bool,
        request_id: &str,
    ) -> Result<AccessRecord, CoreError> {
        let OrganisationRef::CareSetting(code) = principal.organisation else {
            return Err(CoreError::Forbidden(
                "only staff of a registered care setting may look a child up".into(),
            ));
        };
        let organisation = self.organisation(code).await?.ok_or_else(|| {
            CoreError::Forbidden(format!(
                "your organisation {code} is not registered with this service"
            ))
        })?;
        let activity = if unscheduled {
            "B0107"
        } else if principal.may(Permission::ViewFlagSilently) {
            "B0170"
        } else {
            "B0107"
        };
        let at = self.clock.now();
        Ok(AccessRecord {
            // The id carries the look's own time: retention finds old
            // records by id, and verification judges removed ones by it.
            id: cpis_store::log::id_at(at),
            at,
            nhs_number,
            user_id: principal.user_id.clone(),
            user_name: principal.display_name.clone(),
            role_code: principal.role_code.clone(),
            role_name: principal.role_name.clone(),
            activity_code: activity.to_owned(),
            organisation_code: organisation.code,
            organisation_name: organisation.name,
            setting_type: organisation.setting_type,
            unscheduled,
            returned: Vec::new(),
            request_id: request_id.chars().take(200).collect(),
        })
    }
}
