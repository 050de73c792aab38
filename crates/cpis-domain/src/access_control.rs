//! Who may do what: principals, and permissions granted as data.
//!
//! A principal is a person signed in through an OpenID Connect provider
//! (NHS CIS2 in England) or a local authority's system. What it may do
//! follows from [`GRANTS`], one table from national RBAC activity and role
//! codes, and LA membership, to [`Permission`]s. Handlers ask
//! [`Principal::may`]; nothing else decides.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{LaCode, OdsCode};

/// Something a principal may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the flag in unscheduled care; the look is notified to the LA.
    ViewFlag,
    /// See the flag in scheduled care, without notifying the LA.
    ViewFlagSilently,
    /// Read the access reports (privacy officers, Caldicott guardians).
    ViewAccessReports,
    /// Read and change the principal's own LA's plans, uploads,
    /// notifications, alerts and profile; never another LA's.
    ManageOwnLa,
    /// Register LA systems and other service administration.
    Administer,
}

impl Permission {
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ViewFlag => {
                "view the child protection flag in unscheduled care (activity B0107)"
            }
            Permission::ViewFlagSilently => {
                "view the child protection flag in scheduled care (activity B0170)"
            }
            Permission::ViewAccessReports => {
                "read access reports (privacy officer R0001 or Caldicott guardian R5105)"
            }
            Permission::ManageOwnLa => "work with a local authority's own records",
            Permission::Administer => "administer the service",
        }
    }
}

/// The role code that administers the service. Not a national RBAC code:
/// the service's operators give it to their own administrators.
pub const ADMINISTRATOR_ROLE: &str = "CPIS-ADMIN";

/// What grants a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A national RBAC activity code held in the selected role.
    Activity(&'static str),
    /// The selected role's code (its last part, e.g. `R0001`).
    Role(&'static str),
    /// A person working for a local authority.
    LaStaff,
    /// A local authority's case-management system.
    LaSystem,
}

/// The permission table. Adding a permission is adding a row.
pub const GRANTS: &[(Grant, Permission)] = &[
    (Grant::Activity("B0107"), Permission::ViewFlag),
    (Grant::Activity("B0170"), Permission::ViewFlagSilently),
    (Grant::Role("R0001"), Permission::ViewAccessReports),
    (Grant::Role("R5105"), Permission::ViewAccessReports),
    (Grant::Activity("R0001"), Permission::ViewAccessReports),
    (Grant::Activity("R5105"), Permission::ViewAccessReports),
    (Grant::LaStaff, Permission::ManageOwnLa),
    (Grant::LaSystem, Permission::ManageOwnLa),
    (Grant::Role(ADMINISTRATOR_ROLE), Permission::Administer),
];

/// Whom the principal works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "code", rename_all = "snake_case")]
pub enum OrganisationRef {
    /// A care setting, by ODS code.
    CareSetting(OdsCode),
    /// A local authority, by ONS code.
    LocalAuthority(LaCode),
}

impl OrganisationRef {
    /// Reads an organisation code: an ONS local authority code if it is one,
    /// otherwise an ODS code.
    pub fn parse(code: &str) -> Option<Self> {
        if let Ok(la) = LaCode::parse(code) {
            return Some(OrganisationRef::LocalAuthority(la));
        }
        OdsCode::parse(code).ok().map(OrganisationRef::CareSetting)
    }

    pub fn code(&self) -> String {
        match self {
            OrganisationRef::CareSetting(code) => code.to_string(),
            OrganisationRef::LocalAuthority(code) => code.to_string(),
        }
    }
}

impl fmt::Display for OrganisationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Person,
    LaSystem,
}

/// An authenticated caller, as every handler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The provider's stable user id (CIS2's `nhsid_useruid`), or the LA
    /// system's client id.
    pub user_id: String,
    pub display_name: String,
    /// The selected role's code, e.g. `R8000`, and its name.
    pub role_code: String,
    pub role_name: String,
    /// National RBAC activity codes of the selected role, e.g. `B0107`.
    pub activities: Vec<String>,
    pub organisation: OrganisationRef,
}

impl Principal {
    /// Every permission the principal holds, from [`GRANTS`].
    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        GRANTS
            .iter()
            .filter(|(grant, _)| self.holds(*grant))
            .map(|(_, permission)| *permission)
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.permissions().any(|held| held == permission)
    }

    fn holds(&self, grant: Grant) -> bool {
        match grant {
            Grant::Activity(code) => self.activities.iter().any(|held| held == code),
            Grant::Role(code) => self.role_code == code,
            Grant::LaStaff => {
                self.kind == PrincipalKind::Person
                    && matches!(self.organisation, OrganisationRef::LocalAuthority(_))
            }
            Grant::LaSystem => {
                self.kind == PrincipalKind::LaSystem
                    && matches!(self.organisation, OrganisationRef::LocalAuthority(_))
            }
        }
    }

    /// The LA the principal belongs to, if it belongs to one.
    pub fn la(&self) -> Option<LaCode> {
        match self.organisation {
            OrganisationRef::LocalAuthority(la) => Some(la),
            OrganisationRef::CareSetting(_) => None,
        }
    }

    /// Looks by a principal who may only view silently are scheduled care:
    /// recorded, but neither listed in the history nor notified.
    pub fn views_silently_only(&self) -> bool {
        self.may(Permission::ViewFlagSilently) && !self.may(Permission::ViewFlag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: &str, activities: &[&str], organisation: &str) -> Principal {
        Principal {
            kind: PrincipalKind::Person,
            user_id: "555000000001".into(),
            display_name: "Test Person".into(),
            role_code: role.into(),
            role_name: "Role".into(),
            activities: activities.iter().map(|a| a.to_string()).collect(),
            organisation: OrganisationRef::parse(organisation).unwrap(),
        }
    }

    fn check(principal: &Principal, expected: &[Permission]) {
        let held: Vec<Permission> = principal.permissions().collect();
        let mut held_sorted = held.clone();
        held_sorted.sort_by_key(|p| format!("{p:?}"));
        held_sorted.dedup();
        let mut expected = expected.to_vec();
        expected.sort_by_key(|p| format!("{p:?}"));
        assert_eq!(held_sorted, expected, "{principal:?}");
    }

    #[test]
    fn the_table_grants_by_activity_role_and_membership() {
        check(
            &person("R8000", &["B0107"], "ZZED000"),
            &[Permission::ViewFlag],
        );
        check(
            &person("R8000", &["B0170"], "ZZGP000"),
            &[Permission::ViewFlagSilently],
        );
        check(
            &person("R8000", &["B0107", "B0170"], "ZZED000"),
            &[Permission::ViewFlag, Permission::ViewFlagSilently],
        );
        check(
            &person("R0001", &[], "ZZED000"),
            &[Permission::ViewAccessReports],
        );
        check(
            &person("R5105", &[], "ZZED000"),
            &[Permission::ViewAccessReports],
        );
        check(&person("R8003", &["B0360"], "ZZED000"), &[]);
        check(
            &person("R8000", &[], "E09000007"),
            &[Permission::ManageOwnLa],
        );
        check(
            &person(ADMINISTRATOR_ROLE, &[], "ZZED000"),
            &[Permission::Administer],
        );
        let mut system = person("", &[], "E09000007");
        system.kind = PrincipalKind::LaSystem;
        check(&system, &[Permission::ManageOwnLa]);
        system.organisation = OrganisationRef::parse("ZZED000").unwrap();
        check(&system, &[]);
    }

    #[test]
    fn silent_viewing_is_for_those_without_b0107() {
        assert!(person("R8000", &["B0170"], "ZZGP000").views_silently_only());
        assert!(!person("R8000", &["B0107", "B0170"], "ZZED000").views_silently_only());
        assert!(!person("R8000", &["B0107"], "ZZED000").views_silently_only());
    }

    #[test]
    fn organisation_codes_are_las_or_care_settings() {
        assert_eq!(
            OrganisationRef::parse("E09000007"),
            Some(OrganisationRef::LocalAuthority(
                LaCode::parse("E09000007").unwrap()
            ))
        );
        assert!(matches!(
            OrganisationRef::parse("RJ1"),
            Some(OrganisationRef::CareSetting(_))
        ));
        assert_eq!(OrganisationRef::parse("R-1"), None);
    }
}
