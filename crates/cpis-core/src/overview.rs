//! What an LA team sees at a glance: its plans, counted and filtered, and
//! its newest notifications and repeat-attendance alerts.

use cpis_domain::{LaCode, NhsNumber, Plan, PlanType};
use cpis_store::{OutboxItem, OutboxKind, PlanPage, Store};
use time::Duration;

use crate::{CoreError, Cpis};

/// Plans read from the store at a time while counting and filtering.
const SCAN_PAGE: usize = 1_000;

/// Where a plan stands today, as an LA team sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanState {
    /// Open: clinicians see it.
    Open,
    /// Ended within the visibility period: clinicians still see it.
    EndedShown,
    /// Ended, or an unborn child's plan past its date: no longer shown.
    NotShown,
    /// Withdrawn by the LA.
    Withdrawn,
}

impl PlanState {
    pub const ALL: [PlanState; 4] = [
        PlanState::Open,
        PlanState::EndedShown,
        PlanState::NotShown,
        PlanState::Withdrawn,
    ];

    pub fn of(plan: &Plan, today: time::Date) -> PlanState {
        if plan.is_withdrawn(today) {
            PlanState::Withdrawn
        } else if plan.is_visible(today) {
            if plan.is_open(today) {
                PlanState::Open
            } else {
                PlanState::EndedShown
            }
        } else {
            PlanState::NotShown
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            PlanState::Open => "open",
            PlanState::EndedShown => "ended",
            PlanState::NotShown => "hidden",
            PlanState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(code: &str) -> Option<PlanState> {
        PlanState::ALL
            .into_iter()
            .find(|state| state.code() == code)
    }

    pub fn description(self) -> &'static str {
        match self {
            PlanState::Open => "Open",
            PlanState::EndedShown => "Ended, still shown",
            PlanState::NotShown => "No longer shown",
            PlanState::Withdrawn => "Withdrawn",
        }
    }
}

/// Which of its plans an LA asks for.
#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    pub nhs_number: Option<NhsNumber>,
    pub plan_type: Option<PlanType>,
    pub state: Option<PlanState>,
}

/// One page of an LA's plans that match a filter.
#[derive(Debug, Clone)]
pub struct LaPlans {
    /// Plans clinicians see now, by type, whatever the filter.
    pub shown_by_type: Vec<(PlanType, u64)>,
    /// How many plans match the filter.
    pub matching: u64,
    /// The page asked for, in key order.
    pub page: Vec<Plan>,
}

impl<S: Store> Cpis<S> {
    /// The LA's plans matching `filter`, `limit` of them from `offset`,
    /// with the counts a dashboard shows. Reads the LA's plans in pages; an
    /// LA holds thousands, not millions.
    pub async fn la_plans(
        &self,
        la: LaCode,
        filter: &PlanFilter,
        offset: u64,
        limit: usize,
    ) -> Result<LaPlans, CoreError> {
        let today = self.clock.today();
        let mut shown = [0u64; 3];
        let mut matching = 0u64;
        let mut page = Vec::new();
        let keep = |plan: Plan, matching: &mut u64, page: &mut Vec<Plan>| {
            let state = PlanState::of(&plan, today);
            let fits = filter
                .plan_type
                .is_none_or(|wanted| plan.plan_type() == wanted)
                && filter.state.is_none_or(|wanted| state == wanted);
            if fits {
                if *matching >= offset && page.len() < limit {
                    page.push(plan);
                }
                *matching += 1;
            }
        };
        let mut after = None;
        loop {
            let batch = self
                .store
                .plans_for_la(
                    la,
                    PlanPage {
                        after,
                        limit: SCAN_PAGE,
                    },
                )
                .await?;
            let full = batch.len() == SCAN_PAGE;
            after = batch.last().map(|plan| *plan.key());
            for plan in batch {
                if plan.is_visible(today) {
                    shown[type_index(plan.plan_type())] += 1;
                }
                if filter
                    .nhs_number
                    .is_none_or(|wanted| plan.nhs_number() == wanted)
                {
                    keep(plan, &mut matching, &mut page);
                }
            }
            if !full {
                break;
            }
        }
        Ok(LaPlans {
            shown_by_type: PlanType::ALL
                .into_iter()
                .map(|plan_type| (plan_type, shown[type_index(plan_type)]))
                .collect(),
            matching,
            page,
        })
    }

    /// The LA's newest notifications, newest first.
    pub async fn latest_notifications(
        &self,
        la: LaCode,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, CoreError> {
        Ok(self
            .store
            .latest_notifications(la, None, limit.clamp(1, 1000))
            .await?)
    }

    /// Repeat-attendance alerts still within the LA's own window: a child
    /// the LA has not yet had time to act on.
    pub async fn open_repeat_alerts(&self, la: LaCode) -> Result<Vec<OutboxItem>, CoreError> {
        let rule = self
            .store
            .local_authority(la)
            .await?
            .map(|authority| authority.repeat_attendance)
            .unwrap_or_default();
        let since = self.clock.now() - Duration::days(i64::from(rule.days));
        Ok(self
            .store
            .latest_notifications(la, Some(OutboxKind::RepeatAttendance), 100)
            .await?
            .into_iter()
            .filter(|item| item.created_at >= since)
            .collect())
    }
}

fn type_index(plan_type: PlanType) -> usize {
    match plan_type {
        PlanType::ChildProtection => 0,
        PlanType::LookedAfter => 1,
        PlanType::UnbornChildProtection => 2,
    }
}
