//! From a token's claims to a [`Principal`].

use cpis_domain::{LaCode, OrganisationRef, Principal, PrincipalKind};
use serde::Deserialize;
use serde_json::Value;

use crate::AuthError;
use crate::issuer::LA_SYSTEM_KIND;

/// How an issuer's claims name the user, role, activities and organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimMapping {
    /// NHS Care Identity Service 2: `nhsid_useruid`, `name`, and the role in
    /// `nhsid_nrbac_roles` whose `person_roleid` is `selected_roleid`, with
    /// its `role_code`, `role_name`, `activity_codes` and `org_code`.
    Cis2,
    /// Other providers: one flat claim for each part, named by configuration.
    Claims(ClaimNames),
    /// The service's own tokens: LA systems always, and people (shaped like
    /// CIS2's) only where development personas are allowed.
    Own { persons: bool },
}

/// The claim names of [`ClaimMapping::Claims`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimNames {
    pub user_id: String,
    pub name: String,
    pub role_code: String,
    pub role_name: String,
    /// An array of activity codes.
    pub activities: String,
    pub organisation: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user_id: "sub".into(),
            name: "name".into(),
            role_code: "role_code".into(),
            role_name: "role_name".into(),
            activities: "activities".into(),
            organisation: "org_code".into(),
        }
    }
}

impl ClaimMapping {
    pub fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        match self {
            ClaimMapping::Cis2 => cis2(claims),
            ClaimMapping::Claims(names) => flat(claims, names),
            ClaimMapping::Own { persons } => {
                if claims.get("cpis_kind").and_then(Value::as_str) == Some(LA_SYSTEM_KIND) {
                    la_system(claims)
                } else if *persons {
                    cis2(claims)
                } else {
                    Err(AuthError::Claims(
                        "this service issues tokens to LA systems only; people sign in through the identity provider".into(),
                    ))
                }
            }
        }
    }
}

fn text<'a>(claims: &'a Value, name: &str) -> Result<&'a str, AuthError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| AuthError::MissingClaim(name.to_owned()))
}

fn organisation(code: &str) -> Result<OrganisationRef, AuthError> {
    OrganisationRef::parse(code)
        .ok_or_else(|| AuthError::Claims(format!("{code:?} is not an organisation code")))
}

/// `S8000:G8000:R8000` → `R8000`.
fn last_part(code: &str) -> &str {
    code.rsplit(':').next().unwrap_or(code)
}

/// CIS2 role names look like `"Clinical":"Clinical Provision":"Clinical
/// Practitioner Access Role"`; the last part is the role.
fn role_name(raw: &str) -> String {
    raw.rsplit(':')
        .next()
        .unwrap_or(raw)
        .trim_matches('"')
        .to_owned()
}

fn cis2(claims: &Value) -> Result<Principal, AuthError> {
    let user_id = claims
        .get("nhsid_useruid")
        .and_then(Value::as_str)
        .or_else(|| claims.get("sub").and_then(Value::as_str))
        .ok_or_else(|| AuthError::MissingClaim("nhsid_useruid".into()))?;
    let display_name = text(claims, "name")?;
    let selected = claims
        .get("selected_roleid")
        .and_then(|value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .ok_or_else(|| AuthError::MissingClaim("selected_roleid".into()))?;
    let roles = claims
        .get("nhsid_nrbac_roles")
        .and_then(Value::as_array)
        .ok_or_else(|| AuthError::MissingClaim("nhsid_nrbac_roles".into()))?;
    let role = roles
        .iter()
        .find(|role| role.get("person_roleid").and_then(Value::as_str) == Some(selected.as_str()))
        .ok_or_else(|| {
            AuthError::Claims(format!(
                "the selected role {selected} is not among the user's roles"
            ))
        })?;
    let activities = role
        .get("activity_codes")
        .and_then(Value::as_array)
        .map(|codes| {
            codes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Principal {
        kind: PrincipalKind::Person,
        user_id: user_id.to_owned(),
        display_name: display_name.to_owned(),
        role_code: last_part(text(role, "role_code")?).to_owned(),
        role_name: role
            .get("role_name")
            .and_then(Value::as_str)
            .map(role_name)
            .unwrap_or_default(),
        activities,
        organisation: organisation(text(role, "org_code")?)?,
    })
}

fn flat(claims: &Value, names: &ClaimNames) -> Result<Principal, AuthError> {
    let activities = match claims.get(&names.activities) {
        Some(Value::Array(codes)) => codes
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(codes)) => codes.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    Ok(Principal {
        kind: PrincipalKind::Person,
        user_id: text(claims, &names.user_id)?.to_owned(),
        display_name: text(claims, &names.name)?.to_owned(),
        role_code: last_part(text(claims, &names.role_code)?).to_owned(),
        role_name: claims
            .get(&names.role_name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        activities,
        organisation: organisation(text(claims, &names.organisation)?)?,
    })
}

fn la_system(claims: &Value) -> Result<Principal, AuthError> {
    let la = LaCode::parse(text(claims, "cpis_la")?)
        .map_err(|error| AuthError::Claims(error.to_string()))?;
    Ok(Principal {
        kind: PrincipalKind::LaSystem,
        user_id: text(claims, "sub")?.to_owned(),
        display_name: text(claims, "name")?.to_owned(),
        role_code: "LA-SYSTEM".into(),
        role_name: "Local authority system".into(),
        activities: Vec::new(),
        organisation: OrganisationRef::LocalAuthority(la),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::Permission;
    use serde_json::json;

    fn cis2_claims(selected: &str) -> Value {
        json!({
            "sub": "subject",
            "nhsid_useruid": "555000111222",
            "name": "Dr Ada Example",
            "selected_roleid": selected,
            "nhsid_nrbac_roles": [
                {
                    "person_roleid": "555000000001",
                    "org_code": "ZZED000",
                    "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"",
                    "role_code": "S8000:G8000:R8000",
                    "activity_codes": ["B0107", "B0360"]
                },
                {
                    "person_roleid": "555000000002",
                    "org_code": "ZZED000",
                    "role_name": "\"Admin\":\"Privacy\":\"Privacy Officer\"",
                    "role_code": "S8001:G8005:R0001",
                    "activity_codes": []
                }
            ]
        })
    }

    #[test]
    fn cis2_claims_use_the_selected_role() {
        let clinician = ClaimMapping::Cis2
            .principal(&cis2_claims("555000000001"))
            .unwrap();
        assert_eq!(clinician.user_id, "555000111222");
        assert_eq!(clinician.role_code, "R8000");
        assert_eq!(clinician.role_name, "Clinical Practitioner Access Role");
        assert_eq!(clinician.organisation.code(), "ZZED000");
        assert!(clinician.may(Permission::ViewFlag));
        let officer = ClaimMapping::Cis2
            .principal(&cis2_claims("555000000002"))
            .unwrap();
        assert_eq!(officer.role_code, "R0001");
        assert!(officer.may(Permission::ViewAccessReports));
        assert!(!officer.may(Permission::ViewFlag));
    }

    #[test]
    fn cis2_claims_without_a_usable_role_are_refused() {
        assert!(ClaimMapping::Cis2.principal(&cis2_claims("999")).is_err());
        let mut claims = cis2_claims("555000000001");
        claims.as_object_mut().unwrap().remove("selected_roleid");
        assert!(matches!(
            ClaimMapping::Cis2.principal(&claims),
            Err(AuthError::MissingClaim(_))
        ));
    }

    #[test]
    fn flat_claims_are_named_by_configuration() {
        let names = ClaimNames {
            user_id: "oid".into(),
            activities: "acts".into(),
            ..ClaimNames::default()
        };
        let claims = json!({"oid": "u1", "name": "Nurse Bee", "role_code": "R8001", "acts": "B0107 B0360", "org_code": "ZZUT001"});
        let principal = ClaimMapping::Claims(names).principal(&claims).unwrap();
        assert_eq!(principal.user_id, "u1");
        assert_eq!(principal.activities, vec!["B0107", "B0360"]);
    }

    #[test]
    fn only_own_tokens_make_la_systems() {
        let claims = json!({"sub": "camden-mosaic", "name": "Camden system", "cpis_kind": "la_system", "cpis_la": "E09000007"});
        let own = ClaimMapping::Own { persons: false }
            .principal(&claims)
            .unwrap();
        assert_eq!(own.kind, PrincipalKind::LaSystem);
        assert!(own.may(Permission::ManageOwnLa));
        // The same claims from an outside provider are just a person's, and incomplete.
        assert!(ClaimMapping::Cis2.principal(&claims).is_err());
        // Without development personas, the service's tokens never name a person.
        assert!(
            ClaimMapping::Own { persons: false }
                .principal(&cis2_claims("555000000001"))
                .is_err()
        );
        assert!(
            ClaimMapping::Own { persons: true }
                .principal(&cis2_claims("555000000001"))
                .is_ok()
        );
    }
}
