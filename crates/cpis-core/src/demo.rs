//! A realistic synthetic population for `cpis demo`: every plan type, open,
//! recently ended, long ended and withdrawn plans, children known to two
//! authorities, all under NHS numbers from the 999 test range.
//!
//! The same seed gives the same children and plans; dates are laid out
//! relative to the day the population is made.

use cpis_domain::{
    LaCode, LocalAuthority, LocalReference, NhsNumber, Plan, PlanFields, PlanKey, PlanType,
};
use time::{Date, Duration};

use crate::CoreError;

/// How many children the demo population has; about 8% have two plans.
pub const DEMO_CHILDREN: u32 = 100_000;

/// The generated plans, and children worth trying, to print for a newcomer.
#[derive(Debug, Clone)]
pub struct DemoPopulation {
    pub plans: Vec<Plan>,
    pub examples: Vec<DemoExample>,
}

/// A child in the demo data, and what a clinician should see for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoExample {
    pub nhs_number: NhsNumber,
    pub expect: &'static str,
}

/// One plan of a worked example: whose, what kind, and in what state.
type WorkedPlan = (LaCode, PlanType, Status);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Open,
    RecentlyEnded,
    LongEnded,
    /// Ended over a year ago, but within the three years after its end
    /// that retention keeps a plan: for a worked example, which must still
    /// be in its LA's list when the demo's first housekeeping has run.
    LongEndedKept,
    Withdrawn,
}

/// Makes `children` children's plans spread over `authorities`.
pub fn population(
    seed: u64,
    authorities: &[LocalAuthority],
    today: Date,
    children: u32,
) -> Result<DemoPopulation, CoreError> {
    if authorities.len() < 2 {
        return Err(CoreError::ReferenceData(
            "the demo needs at least two local authorities".into(),
        ));
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    // Authorities differ in size; weights from 1 to 6 give a plausible spread.
    let weights: Vec<u32> = authorities.iter().map(|_| rng.u32(1..=6)).collect();
    let total_weight: u32 = weights.iter().sum();
    let pick_la = |rng: &mut fastrand::Rng| -> LaCode {
        let mut ticket = rng.u32(0..total_weight);
        for (la, weight) in authorities.iter().zip(&weights) {
            if ticket < *weight {
                return la.code;
            }
            ticket -= weight;
        }
        authorities[0].code
    };

    let mut numbers = TestRangeNumbers::new(rng.u32(0..1_000_000));
    let mut plans = Vec::with_capacity(children as usize * 11 / 10);
    let mut examples = Vec::new();
    let mut reference = 0u32;
    let mut plan = |rng: &mut fastrand::Rng,
                    la: LaCode,
                    nhs_number: NhsNumber,
                    plan_type: PlanType,
                    status: Status|
     -> Result<Plan, CoreError> {
        reference += 1;
        let days =
            |rng: &mut fastrand::Rng, low: i64, high: i64| Duration::days(rng.i64(low..=high));
        let (start, end) = match status {
            Status::Open | Status::Withdrawn => (today - days(rng, 1, 1800), None),
            Status::RecentlyEnded => {
                let end = today - days(rng, 0, 365);
                (end - days(rng, 30, 1200), Some(end))
            }
            Status::LongEnded | Status::LongEndedKept => {
                let oldest = if status == Status::LongEnded {
                    2500
                } else {
                    1000
                };
                let end = today - days(rng, 366, oldest);
                (end - days(rng, 30, 1200), Some(end))
            }
        };
        let unborn = plan_type == PlanType::UnbornChildProtection;
        // Unborn plans start weeks into a pregnancy; most carry a due date.
        let (start, delivery) = if unborn {
            let start = match end {
                Some(end) => end - days(rng, 20, 200),
                None => today - days(rng, 1, 200),
            };
            let delivery = (rng.u8(0..10) > 0).then(|| start + days(rng, 40, 240));
            (start, delivery)
        } else {
            (start, None)
        };
        let delete =
            (status == Status::Withdrawn).then(|| today - days(rng, 0, 300).min(today - start));
        Plan::new(PlanFields {
            key: PlanKey {
                la,
                nhs_number,
                plan_type,
                start_date: start,
            },
            end_date: end,
            delete_date: delete,
            expected_delivery_date: delivery,
            local_reference: Some(
                LocalReference::parse(&format!("DEMO-{}-{reference:07}", plan_type.code()))
                    .map_err(|e| CoreError::ReferenceData(e.to_string()))?,
            ),
        })
        .map_err(|e| CoreError::ReferenceData(e.to_string()))
    };

    // The first children are the worked examples a newcomer can try.
    let la_a = authorities[0].code;
    let la_b = authorities[1].code;
    let worked: [(&'static str, Vec<WorkedPlan>); 7] = [
        (
            "an open child protection plan",
            vec![(la_a, PlanType::ChildProtection, Status::Open)],
        ),
        (
            "looked after (open)",
            vec![(la_b, PlanType::LookedAfter, Status::Open)],
        ),
        (
            "an unborn child protection plan (the mother's NHS number)",
            vec![(la_a, PlanType::UnbornChildProtection, Status::Open)],
        ),
        (
            "plans in two local authorities: an ended CPP and an open LAC",
            vec![
                (la_a, PlanType::ChildProtection, Status::RecentlyEnded),
                (la_b, PlanType::LookedAfter, Status::Open),
            ],
        ),
        (
            "a plan that ended within the last year (still shown)",
            vec![(la_b, PlanType::ChildProtection, Status::RecentlyEnded)],
        ),
        (
            "a plan that ended over a year ago (not shown)",
            vec![(la_a, PlanType::ChildProtection, Status::LongEndedKept)],
        ),
        (
            "a plan withdrawn by its local authority (not shown)",
            vec![(la_b, PlanType::LookedAfter, Status::Withdrawn)],
        ),
    ];
    for (expect, child_plans) in worked {
        let nhs_number = numbers.next_number()?;
        for (la, plan_type, status) in child_plans {
            let made = plan(&mut rng, la, nhs_number, plan_type, status)?;
            plans.push(made);
        }
        examples.push(DemoExample { nhs_number, expect });
    }
    if let Some(unborn) = plans.get(2) {
        // Keep the worked unborn example visible whatever the dice said.
        let mut fields = unborn.fields();
        fields.expected_delivery_date = Some(today + Duration::days(60));
        fields.key.start_date = today - Duration::days(90);
        plans[2] = Plan::new(fields).map_err(|e| CoreError::ReferenceData(e.to_string()))?;
    }
    examples.push(DemoExample {
        nhs_number: numbers.next_number()?,
        expect: "no plan at all",
    });

    for _ in examples.len() as u32..children {
        let nhs_number = numbers.next_number()?;
        let la = pick_la(&mut rng);
        let plan_type = match rng.u32(0..1000) {
            0..=409 => PlanType::ChildProtection,
            410..=979 => PlanType::LookedAfter,
            _ => PlanType::UnbornChildProtection,
        };
        let status = match rng.u32(0..100) {
            0..=69 => Status::Open,
            70..=84 => Status::RecentlyEnded,
            85..=96 => Status::LongEnded,
            _ => Status::Withdrawn,
        };
        let first = plan(&mut rng, la, nhs_number, plan_type, status)?;
        let first_start = first.start_date();
        plans.push(first);
        // About 8%: an earlier plan, in this or (a third of the time) another LA.
        if plan_type != PlanType::UnbornChildProtection && rng.u32(0..100) < 8 {
            let earlier_la = if rng.u32(0..3) == 0 {
                pick_la(&mut rng)
            } else {
                la
            };
            let earlier_type = if plan_type == PlanType::LookedAfter {
                PlanType::ChildProtection
            } else {
                PlanType::LookedAfter
            };
            let mut earlier = Plan::fields(&plan(
                &mut rng,
                earlier_la,
                nhs_number,
                earlier_type,
                Status::RecentlyEnded,
            )?);
            let end = first_start - Duration::days(rng.i64(0..=30));
            earlier.end_date = Some(end);
            earlier.key.start_date = end - Duration::days(rng.i64(30..=900));
            plans.push(Plan::new(earlier).map_err(|e| CoreError::ReferenceData(e.to_string()))?);
        }
    }
    Ok(DemoPopulation { plans, examples })
}

/// Distinct valid NHS numbers from the 999 test range, in a scrambled order:
/// stepping by a prime that shares no factor with 10^6 visits every
/// nine-digit prefix 999xxxxxx once.
struct TestRangeNumbers {
    position: u32,
    visited: u32,
}

impl TestRangeNumbers {
    const STEP: u32 = 7919;
    const SPAN: u32 = 1_000_000;

    fn new(start: u32) -> Self {
        TestRangeNumbers {
            position: start % Self::SPAN,
            visited: 0,
        }
    }

    fn next_number(&mut self) -> Result<NhsNumber, CoreError> {
        while self.visited < Self::SPAN {
            self.position = (self.position + Self::STEP) % Self::SPAN;
            self.visited += 1;
            if let Some(number) = NhsNumber::with_check_digit(999_000_000 + self.position) {
                return Ok(number);
            }
        }
        Err(CoreError::ReferenceData(
            "the 999 test range has no more NHS numbers".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use std::collections::{HashMap, HashSet};
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 25);

    #[test]
    fn the_same_seed_gives_the_same_population() {
        let las = reference::local_authorities().unwrap();
        let a = population(7, &las, TODAY, 2_000).unwrap();
        let b = population(7, &las, TODAY, 2_000).unwrap();
        let c = population(8, &las, TODAY, 2_000).unwrap();
        assert_eq!(a.plans, b.plans);
        assert_ne!(a.plans, c.plans);
    }

    #[test]
    fn the_population_is_realistic_and_in_the_test_range() {
        let las = reference::local_authorities().unwrap();
        let made = population(1, &las, TODAY, 20_000).unwrap();
        assert!(made.plans.len() > 20_000);
        let keys: HashSet<_> = made.plans.iter().map(|p| *p.key()).collect();
        assert_eq!(keys.len(), made.plans.len(), "plan identities are unique");
        let mut by_type: HashMap<PlanType, usize> = HashMap::new();
        let (mut visible, mut withdrawn, mut long_ended, mut recently_ended) = (0, 0, 0, 0);
        for plan in &made.plans {
            assert!(plan.nhs_number().digits().starts_with("999"));
            assert!(plan.start_date() <= TODAY);
            *by_type.entry(plan.plan_type()).or_default() += 1;
            if plan.is_visible(TODAY) {
                visible += 1;
            }
            if plan.is_withdrawn(TODAY) {
                withdrawn += 1;
            }
            match plan.end_date() {
                Some(end) if end < TODAY - Duration::days(365) => long_ended += 1,
                Some(_) => recently_ended += 1,
                None => {}
            }
        }
        assert!(
            by_type.len() == 3 && by_type.values().all(|&n| n > 100),
            "{by_type:?}"
        );
        assert!(visible > made.plans.len() / 2);
        assert!(withdrawn > 100 && long_ended > 100 && recently_ended > 100);
        let las_used: HashSet<_> = made.plans.iter().map(|p| p.la()).collect();
        assert_eq!(las_used.len(), las.len(), "every authority has plans");
    }

    #[test]
    fn worked_examples_show_what_they_promise() {
        let las = reference::local_authorities().unwrap();
        let made = population(42, &las, TODAY, 100).unwrap();
        let visible_for = |nhs: NhsNumber| {
            made.plans
                .iter()
                .filter(|p| p.nhs_number() == nhs && p.is_visible(TODAY))
                .count()
        };
        let expected = [1, 1, 1, 2, 1, 0, 0, 0];
        let seen: Vec<usize> = made
            .examples
            .iter()
            .map(|e| visible_for(e.nhs_number))
            .collect();
        assert_eq!(seen, expected);
    }

    /// The demo's first housekeeping removes plans withdrawn over two years
    /// ago and ended over three; a worked example must not be among them,
    /// or the LA's list would not have the child the newcomer was told of.
    #[test]
    fn worked_examples_outlast_the_retention_of_plans() {
        let las = reference::local_authorities().unwrap();
        let withdrawn_before = TODAY - Duration::days(2 * 365);
        let ended_before = withdrawn_before - Duration::days(365);
        for seed in 0..64 {
            let made = population(seed, &las, TODAY, 20).unwrap();
            for example in &made.examples {
                for plan in made
                    .plans
                    .iter()
                    .filter(|p| p.nhs_number() == example.nhs_number)
                {
                    assert!(
                        plan.end_date().is_none_or(|end| end >= ended_before)
                            && plan
                                .delete_date()
                                .is_none_or(|gone| gone >= withdrawn_before),
                        "seed {seed}: {:?} ({}) would be removed: {plan:?}",
                        example.expect,
                        example.nhs_number.digits()
                    );
                }
            }
        }
    }
}
