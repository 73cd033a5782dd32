//! Who may see or change whom: the one rule both faces use. XSI-Actions asks it for the
//! user a request names; XSI-Events for the user, group or enterprise a subscription
//! watches.
//!
//! | caller | reaches |
//! |---|---|
//! | any user | itself |
//! | group admin | the users of its group, and the group |
//! | enterprise admin | the users and groups of its enterprise, and the enterprise |
//! | system admin | everything, the system included |

use crate::telephony::{Role, User};

/// What a request or subscription is about.
#[derive(Debug, Clone, Copy)]
pub enum Reach<'a> {
    /// One user, by id, with its record when it exists.
    User {
        /// The user id as asked.
        id: &'a str,
        /// The stored user, if there is one.
        record: Option<&'a User>,
    },
    /// A group of an enterprise.
    Group {
        /// The enterprise.
        enterprise_id: &'a str,
        /// The group.
        group_id: &'a str,
    },
    /// An enterprise (service provider).
    Enterprise {
        /// The enterprise.
        enterprise_id: &'a str,
    },
    /// The whole system.
    System,
}

/// Whether `caller` may see and change what `reach` names.
pub fn may_reach(caller: &User, reach: Reach<'_>) -> bool {
    let same_enterprise = |enterprise: &str| caller.enterprise_id == enterprise;
    let same_group = |enterprise: &str, group: &str| {
        caller.enterprise_id == enterprise && caller.group_id == group
    };
    match (caller.role, reach) {
        (Role::SystemAdmin, _) => true,
        (role, Reach::User { id, record }) => {
            id.eq_ignore_ascii_case(&caller.id)
                || record.is_some_and(|target| match role {
                    Role::EnterpriseAdmin => same_enterprise(&target.enterprise_id),
                    Role::GroupAdmin => same_group(&target.enterprise_id, &target.group_id),
                    _ => false,
                })
        }
        (
            Role::GroupAdmin,
            Reach::Group {
                enterprise_id,
                group_id,
            },
        ) => same_group(enterprise_id, group_id),
        (
            Role::EnterpriseAdmin,
            Reach::Group { enterprise_id, .. } | Reach::Enterprise { enterprise_id },
        ) => same_enterprise(enterprise_id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, role: Role, enterprise: &str, group: &str) -> User {
        User {
            id: id.into(),
            first_name: String::new(),
            last_name: String::new(),
            number: None,
            extension: None,
            enterprise_id: enterprise.into(),
            group_id: group.into(),
            role,
            verifiers: crate::credentials::PasswordVerifiers::decoy(1),
        }
    }

    #[test]
    fn every_role_reaches_what_the_table_says_and_no_more() {
        let peer = user("peer@x", Role::User, "acme", "sales");
        let other_group = user("o@x", Role::User, "acme", "support");
        let other_enterprise = user("e@x", Role::User, "other", "sales");
        fn of(u: &User) -> Reach<'_> {
            Reach::User {
                id: &u.id,
                record: Some(u),
            }
        }
        let sales = Reach::Group {
            enterprise_id: "acme",
            group_id: "sales",
        };
        let acme = Reach::Enterprise {
            enterprise_id: "acme",
        };
        // (caller role, peer, other group, other enterprise, sales, acme, system)
        for (role, expected) in [
            (Role::User, [false, false, false, false, false, false]),
            (Role::GroupAdmin, [true, false, false, true, false, false]),
            (
                Role::EnterpriseAdmin,
                [true, true, false, true, true, false],
            ),
            (Role::SystemAdmin, [true, true, true, true, true, true]),
        ] {
            let caller = user("me@x", role, "acme", "sales");
            let got = [
                may_reach(&caller, of(&peer)),
                may_reach(&caller, of(&other_group)),
                may_reach(&caller, of(&other_enterprise)),
                may_reach(&caller, sales),
                may_reach(&caller, acme),
                may_reach(&caller, Reach::System),
            ];
            assert_eq!(got, expected, "{role:?}");
            // Everyone reaches itself, by any case of its id, stored or not.
            assert!(may_reach(
                &caller,
                Reach::User {
                    id: "ME@x",
                    record: None
                }
            ));
        }
    }
}
