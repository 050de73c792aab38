//! FHIR R4 JSON for the few resources cpis serves, shaped like NHS England's
//! CP-IS FHIR API. Written by hand (a generated model crate costs minutes
//! and gigabytes per build on two cores) and checked in the tests by an
//! independent FHIR implementation.

use cpis_domain::{AccessRecord, LocalAuthority, NhsNumber, Plan, format_iso_date};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const SDS_USER_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-user-id";
pub const SDS_ROLE_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-role-profile-id";
/// ONS's identifier base for GSS codes, which name local authorities.
pub const ONS_SYSTEM: &str = "http://statistics.data.gov.uk/id/statistical-geography";
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
pub const FHIR_JSON: &str = "application/fhir+json";

fn instant(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The searchset Bundle of CareTeams for an NHS number's visible plans,
/// ready to serialize. Typed rather than built as a `serde_json::Value`:
/// this is every clinician's answer, and building a tree of maps first cost
/// a seventh of the request threads' time in a profile.
pub fn care_team_bundle<'a>(
    base_url: &str,
    nhs_number: NhsNumber,
    plans: &'a [(Plan, LocalAuthority)],
    today: time::Date,
) -> CareTeamBundle<'a> {
    let entry = plans
        .iter()
        .map(|(plan, la)| {
            let id = care_team_id(plan);
            Entry {
                full_url: format!("{base_url}/CareTeam/{id}"),
                resource: care_team(id, plan, la, today),
                search: Search { mode: "match" },
            }
        })
        .collect();
    CareTeamBundle {
        resource_type: "Bundle",
        kind: "searchset",
        total: plans.len(),
        link: [Link {
            relation: "self",
            url: format!(
                "{base_url}/CareTeam?patient:identifier={NHS_NUMBER_SYSTEM}|{}",
                nhs_number.digits()
            ),
        }],
        entry,
    }
}

/// A `searchset` Bundle of CareTeams.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CareTeamBundle<'a> {
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    total: usize,
    link: [Link; 1],
    entry: Vec<Entry<'a>>,
}

#[derive(Debug, Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    full_url: String,
    resource: CareTeam<'a>,
    search: Search,
}

#[derive(Debug, Serialize)]
struct Search {
    mode: &'static str,
}

/// One plan as a CareTeam.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CareTeam<'a> {
    resource_type: &'static str,
    id: String,
    contained: [Organization<'a>; 1],
    status: &'static str,
    category: [CodeableConcept; 1],
    name: &'a str,
    subject: Subject,
    period: Period,
    managing_organization: [Reference<'a>; 1],
    telecom: [ContactPoint<'a>; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<[Annotation; 1]>,
}

#[derive(Debug, Serialize)]
struct CodeableConcept {
    coding: [Coding; 1],
    text: &'static str,
}

#[derive(Debug, Serialize)]
struct Coding {
    system: &'static str,
    code: &'static str,
    display: &'static str,
}

#[derive(Debug, Serialize)]
struct Subject {
    identifier: Identifier<String>,
}

#[derive(Debug, Serialize)]
struct Identifier<V> {
    system: &'static str,
    value: V,
}

#[derive(Debug, Serialize)]
struct Period {
    start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
}

#[derive(Debug, Serialize)]
struct Reference<'a> {
    reference: String,
    display: &'a str,
}

#[derive(Debug, Serialize)]
struct ContactPoint<'a> {
    system: &'static str,
    value: &'a str,
    #[serde(rename = "use")]
    purpose: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank: Option<u8>,
}

#[derive(Debug, Serialize)]
struct Annotation {
    text: String,
}

/// The LA as a contained Organization whose two contacts say which number is which.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Organization<'a> {
    resource_type: &'static str,
    id: String,
    identifier: [Identifier<&'a str>; 1],
    name: &'a str,
    contact: [Contact<'a>; 2],
}

#[derive(Debug, Serialize)]
struct Contact<'a> {
    purpose: Text,
    telecom: [ContactPoint<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Text {
    text: &'static str,
}

/// A stable id for a plan: its identity, spelled out.
pub fn care_team_id(plan: &Plan) -> String {
    format!(
        "{}-{}-{}-{}",
        plan.la(),
        plan.nhs_number().digits(),
        plan.plan_type().code(),
        format_iso_date(plan.start_date()).replace('-', "")
    )
}

/// One plan as a CareTeam: the plan type's SNOMED CT code, its period, the
/// responsible LA (contained, with its two numbers told apart), the child.
pub fn care_team<'a>(
    id: String,
    plan: &Plan,
    la: &'a LocalAuthority,
    today: time::Date,
) -> CareTeam<'a> {
    let la_ref = format!("la-{}", la.code);
    let phone = |value: &'a str, rank: Option<u8>| ContactPoint {
        system: "phone",
        value,
        purpose: "work",
        rank,
    };
    let plan_type = plan.plan_type();
    CareTeam {
        resource_type: "CareTeam",
        id,
        contained: [Organization {
            resource_type: "Organization",
            id: la_ref.clone(),
            identifier: [Identifier {
                system: ONS_SYSTEM,
                value: la.code.as_str(),
            }],
            name: &la.name,
            contact: [
                Contact {
                    purpose: Text {
                        text: "Emergency duty team (out of hours, day and night)",
                    },
                    telecom: [phone(la.emergency_duty_number.as_str(), None)],
                },
                Contact {
                    purpose: Text {
                        text: "Office hours",
                    },
                    telecom: [phone(la.office_hours_number.as_str(), None)],
                },
            ],
        }],
        status: if plan.is_open(today) {
            "active"
        } else {
            "inactive"
        },
        category: [CodeableConcept {
            coding: [Coding {
                system: SNOMED_SYSTEM,
                code: plan_type.snomed_code(),
                display: plan_type.snomed_display(),
            }],
            text: plan_type.description(),
        }],
        name: &la.name,
        subject: Subject {
            identifier: Identifier {
                system: NHS_NUMBER_SYSTEM,
                value: plan.nhs_number().digits(),
            },
        },
        period: Period {
            start: format_iso_date(plan.start_date()),
            end: plan.end_date().map(format_iso_date),
        },
        managing_organization: [Reference {
            reference: format!("#{la_ref}"),
            display: &la.name,
        }],
        telecom: [
            phone(la.emergency_duty_number.as_str(), Some(1)),
            phone(la.office_hours_number.as_str(), Some(2)),
        ],
        note: plan.expected_delivery_date().map(|delivery| {
            [Annotation {
                text: format!("Expected delivery date {}", format_iso_date(delivery)),
            }]
        }),
    }
}

/// The searchset Bundle of AuditEvents: who looked at this child, from where.
pub fn audit_event_bundle(
    base_url: &str,
    nhs_number: NhsNumber,
    history: &[&AccessRecord],
) -> Value {
    let entries: Vec<Value> = history
        .iter()
        .map(|record| {
            json!({
                "fullUrl": format!("{base_url}/AuditEvent/{}", record.id),
                "resource": audit_event(record),
                "search": {"mode": "match"},
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{
            "relation": "self",
            "url": format!("{base_url}/AuditEvent?patient:identifier={NHS_NUMBER_SYSTEM}|{}", nhs_number.digits()),
        }],
        "entry": entries,
    })
}

/// One access as an AuditEvent, with its person and organisation contained.
pub fn audit_event(record: &AccessRecord) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": record.id.to_string(),
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "person",
                "identifier": [{"system": SDS_USER_SYSTEM, "value": record.user_id}],
                "name": [{"text": record.user_name}],
            },
            {
                "resourceType": "Organization",
                "id": "organisation",
                "identifier": [{"system": ODS_SYSTEM, "value": record.organisation_code.as_str()}],
                "name": record.organisation_name,
                "type": [{"text": record.setting_type.description()}],
            },
        ],
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{
            "system": "http://hl7.org/fhir/restful-interaction",
            "code": "search-type",
            "display": "search-type",
        }],
        "action": "E",
        "recorded": instant(record.at),
        "outcome": "0",
        "agent": [{
            "who": {"reference": "#person", "display": record.user_name},
            "name": record.user_name,
            "requestor": true,
            "role": [{
                "coding": [{"system": SDS_ROLE_SYSTEM, "code": record.role_code, "display": record.role_name}],
                "text": record.role_name,
            }],
        }],
        "source": {
            "site": record.organisation_name,
            "observer": {"reference": "#organisation", "display": record.organisation_name},
        },
        "entity": [{
            "what": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": record.nhs_number.digits()}},
        }],
    })
}

/// What the server supports, and nothing more.
pub fn capability_statement(base_url: &str, version: &str, published: OffsetDateTime) -> Value {
    let search = |documentation: &str| {
        json!([{
            "name": "patient:identifier",
            "type": "token",
            "documentation": documentation,
        }])
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(published),
        "publisher": "cpis",
        "kind": "instance",
        "software": {"name": "cpis", "version": version},
        "implementation": {"description": "Child Protection – Information Sharing", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"text": "OAuth2 bearer tokens (OpenID Connect; NHS CIS2)"}],
                "description": "Authorization: Bearer <token>. Activity B0107 sees the flag and the LA is notified; B0170 sees it silently. Header IsUnscheduledAccessEvent: false marks a scheduled access.",
            },
            "resource": [
                {
                    "type": "CareTeam",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": search("https://fhir.nhs.uk/Id/nhs-number|{NHS number}: one CareTeam per visible child protection, looked-after or unborn plan"),
                },
                {
                    "type": "AuditEvent",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": search("https://fhir.nhs.uk/Id/nhs-number|{NHS number}: the 25 most recent unscheduled accesses, a person's repeats within 24 hours listed once"),
                },
            ],
        }],
    })
}
