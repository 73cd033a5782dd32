//! The test directory: enterprise acme (groups sales and support, users of every role,
//! one with a non-ASCII password) and enterprise other. Passwords are `<local part>-pass`.

use bridgehead::credentials::PasswordVerifiers;
use bridgehead::store::Store;
use bridgehead::telephony::{Enterprise, Group, Role, User};

use super::https::{basic, XSI};
use super::server::{embedded_config, TestServer};

pub const ALICE: &str = "alice@acme.test";
pub const UTF8_PASSWORD: &str = "zö€-pässwörd ☎";

#[allow(clippy::too_many_arguments)]
pub async fn add_user(
    store: &dyn Store,
    id: &str,
    password: &str,
    (first, last): (&str, &str),
    (enterprise, group): (&str, &str),
    role: Role,
    number: Option<&str>,
    extension: Option<&str>,
) {
    store
        .put_enterprise(&Enterprise {
            id: enterprise.into(),
            name: enterprise.into(),
        })
        .await
        .unwrap();
    store
        .put_group(&Group {
            id: group.into(),
            enterprise_id: enterprise.into(),
            name: group.into(),
        })
        .await
        .unwrap();
    store
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
pub async fn add_xmpp_user(store: &dyn Store, jid: &str, first: &str) {
    let password = format!("{}-pass", jid.split('@').next().unwrap());
    add_user(
        store,
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
pub async fn populate(store: &dyn Store) {
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
            store,
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
        store,
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
        store,
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

/// A server on ephemeral ports (its data in the returned directory) holding the acme
/// directory; `adjust` changes the configuration first.
pub async fn start_acme(
    adjust: impl FnOnce(&mut bridgehead::config::Config),
) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    adjust(&mut config);
    config.validate().unwrap();
    let server = TestServer::start(config).await;
    populate(server.store.as_ref()).await;
    (dir, server)
}
