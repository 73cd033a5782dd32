//! The test directory: enterprise acme (groups sales and support, users of every role,
//! one with a non-ASCII password) and enterprise other. Passwords are `<local part>-pass`.

use bridgehead::credentials::PasswordVerifiers;
use bridgehead::telephony::{Role, Telephony, User};

use super::https::{basic, XSI};

pub const ALICE: &str = "alice@acme.test";
pub const UTF8_PASSWORD: &str = "zö€-pässwörd ☎";

#[allow(clippy::too_many_arguments)]
pub async fn add_user(
    telephony: &Telephony,
    id: &str,
    password: &str,
    (first, last): (&str, &str),
    (enterprise, group): (&str, &str),
    role: Role,
    number: Option<&str>,
    extension: Option<&str>,
) {
    // The enterprise and group are created, named by their ids, when they are new.
    telephony
        .add_user(&User {
            id: id.into(),
            first_name: first.into(),
            last_name: last.into(),
            number: number.map(Into::into),
            extension: extension.map(Into::into),
            enterprise_id: enterprise.into(),
            group_id: group.into(),
            role,
            verifiers: PasswordVerifiers::new(password, 4096).unwrap(),
        })
        .await
        .unwrap();
}

/// A plain user `jid` of enterprise `ent`, group `grp`, password `<local part>-pass`, first
/// name `first`: the XMPP tests' accounts.
pub async fn add_xmpp_user(telephony: &Telephony, jid: &str, first: &str) {
    let password = format!("{}-pass", jid.split('@').next().unwrap());
    add_user(
        telephony,
        jid,
        &password,
        (first, "Test"),
        ("ent", "grp"),
        Role::User,
        None,
        None,
    )
    .await;
}

/// Acme has groups sales and support; Other is another enterprise.
pub async fn populate(telephony: &Telephony) {
    let people = [
        (
            ALICE,
            ("Alice", "Anderson"),
            "sales",
            Role::User,
            "+15550101",
            "101",
        ),
        (
            "bob@acme.test",
            ("Bob", "Baker"),
            "sales",
            Role::User,
            "+15550102",
            "102",
        ),
        (
            "carol@acme.test",
            ("Carol", "Chen"),
            "support",
            Role::User,
            "+15550103",
            "103",
        ),
        (
            "dan@acme.test",
            ("Dan", "Johnson"),
            "support",
            Role::User,
            "+15550104",
            "104",
        ),
        (
            "gadmin@acme.test",
            ("Gail", "Admin"),
            "sales",
            Role::GroupAdmin,
            "+15550105",
            "105",
        ),
        (
            "eadmin@acme.test",
            ("Erin", "Admin"),
            "support",
            Role::EnterpriseAdmin,
            "+15550106",
            "106",
        ),
    ];
    for (id, name, group, role, number, ext) in people {
        let password = format!("{}-pass", id.split('@').next().unwrap());
        add_user(
            telephony,
            id,
            &password,
            name,
            ("acme", group),
            role,
            Some(number),
            Some(ext),
        )
        .await;
    }
    add_user(
        telephony,
        "zoe@acme.test",
        UTF8_PASSWORD,
        ("Zoë", "Zimmer"),
        ("acme", "sales"),
        Role::User,
        None,
        None,
    )
    .await;
    add_user(
        telephony,
        "dave@other.test",
        "dave-pass",
        ("Dave", "Other"),
        ("other", "g"),
        Role::User,
        None,
        None,
    )
    .await;
}

pub fn auth(user: &str) -> String {
    basic(user, &format!("{}-pass", user.split('@').next().unwrap()))
}

pub fn url(user: &str, rest: &str) -> String {
    format!("{XSI}/user/{user}/{rest}")
}
