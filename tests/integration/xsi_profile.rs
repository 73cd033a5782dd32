//! XSI-Actions in BroadWorks' shapes: the Profile and the resources it links (FAC,
//! registrations, schedules, the portal password), URIs relative to the Xsi-Actions root,
//! the personal directory's paging counters, booleans in any case, JSON errors for JSON
//! bodies — and wxcadm (PyPI), a real XSI client, reading all of it from a default server.

use hyper::Method;

use crate::support::acme::{auth, url, ALICE};
use crate::support::https::{assert_valid, basic, Reply};
use crate::support::server::Setup;

async fn start() -> Setup {
    Setup::builder().acme().start().await
}

fn valid(reply: Reply) -> Reply {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_valid(&reply.body);
    reply
}

/// Every URI the Profile and the service list give, joined with the Xsi-Actions root as
/// clients do, answers 200 (the portal password takes PUT only: 405).
#[tokio::test]
async fn every_linked_uri_resolves_against_the_actions_root() {
    let setup = start().await;
    let https = setup.https();
    let alice = auth(ALICE);
    let profile = valid(https.get(&url(ALICE, "profile"), &alice).await);
    let services = valid(https.get(&url(ALICE, "services"), &alice).await);
    let mut uris = Vec::new();
    for document in [&profile.body, &services.body] {
        for tag in [
            "fac",
            "registrations",
            "scheduleList",
            "portalPasswordChange",
            "uri",
        ] {
            let open = format!("<{tag}>");
            for piece in document.split(&open).skip(1) {
                uris.push(piece.split('<').next().unwrap().to_owned());
            }
        }
    }
    assert_eq!(uris.len(), 4 + 6, "{uris:?}");
    for uri in uris {
        assert!(uri.starts_with("/v2.0/user/alice@acme.test/"), "{uri}");
        let reply = https
            .get(&format!("/com.broadsoft.xsi-actions{uri}"), &alice)
            .await;
        if uri.ends_with("/Password/Portal") {
            assert_eq!(reply.status, 405, "{uri}");
            assert_eq!(reply.header("allow"), Some("PUT"));
        } else {
            valid(reply);
        }
    }
    let fac = valid(https.get(&url(ALICE, "profile/Fac"), &alice).await);
    assert!(
        fac.body.contains(
            "<featureAccessCode><codeName>Do Not Disturb Activation</codeName><code>*78</code></featureAccessCode>"
        ),
        "{}",
        fac.body
    );
    setup.server.stop().await;
}

/// `PUT profile/Password/Portal`: users give their current password; the new one works at
/// once and the old one no longer does; an administrator needs no old password.
#[tokio::test]
async fn the_portal_password_changes_the_password() {
    let setup = start().await;
    let https = setup.https();
    let portal = url(ALICE, "profile/Password/Portal");
    let put = |who: String, body: &'static str| {
        let (https, portal) = (&https, &portal);
        async move {
            https
                .request(
                    Method::PUT,
                    portal,
                    &[("authorization", &who), ("content-type", "application/xml")],
                    Some(body),
                )
                .await
        }
    };
    let wrong = put(
        auth(ALICE),
        "<Portal xmlns=\"http://schema.broadsoft.com/xsi\"><oldPassword>nope</oldPassword><newPassword>n3w-secret</newPassword></Portal>",
    )
    .await;
    assert_eq!(wrong.status, 400, "{wrong:?}");
    assert!(wrong.body.contains("oldPassword"), "{}", wrong.body);
    let missing = put(
        auth(ALICE),
        "<Portal xmlns=\"http://schema.broadsoft.com/xsi\"><newPassword>n3w-secret</newPassword></Portal>",
    )
    .await;
    assert_eq!(missing.status, 400, "{missing:?}");
    let changed = put(
        auth(ALICE),
        "<Portal xmlns=\"http://schema.broadsoft.com/xsi\"><oldPassword>alice-pass</oldPassword><newPassword>n3w-secret</newPassword></Portal>",
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let new = basic(ALICE, "n3w-secret");
    assert_eq!(https.get(&url(ALICE, "profile"), &new).await.status, 200);
    assert_eq!(
        https.get(&url(ALICE, "profile"), &auth(ALICE)).await.status,
        401
    );
    let by_admin = put(
        auth("eadmin@acme.test"),
        "<Portal xmlns=\"http://schema.broadsoft.com/xsi\"><newPassword>alice-pass</newPassword></Portal>",
    )
    .await;
    assert_eq!(by_admin.status, 200, "{by_admin:?}");
    assert_eq!(
        https.get(&url(ALICE, "profile"), &auth(ALICE)).await.status,
        200
    );
    setup.server.stop().await;
}

/// The personal directory pages like the others and is searched by name and number;
/// `searchCriteriaModeOr=False` (Python's spelling) is read like `false`.
#[tokio::test]
async fn the_personal_directory_has_paging_counters_and_booleans_any_case() {
    let setup = start().await;
    let https = setup.https();
    let alice = auth(ALICE);
    let personal = url(ALICE, "directories/Personal");
    let added = https
        .request(
            Method::POST,
            &personal,
            &[
                ("authorization", &alice),
                ("content-type", "application/xml"),
            ],
            Some(
                "<Personal xmlns=\"http://schema.broadsoft.com/xsi\">\
                 <entry><name>Ann Pizza</name><number>+15550001</number></entry>\
                 <entry><name>Bob Taxi</name><number>+15550002</number></entry>\
                 <entry><name>Cat Vet</name><number>+15550003</number></entry></Personal>",
            ),
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    let page = valid(
        https
            .get(&format!("{personal}?start=2&results=1"), &alice)
            .await,
    );
    for part in [
        "<startIndex>2</startIndex>",
        "<numberOfRecords>1</numberOfRecords>",
        "<totalAvailableRecords>3</totalAvailableRecords>",
        "<name>Bob Taxi</name>",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    let found = valid(
        https
            .get(
                &format!("{personal}?name=cat*/i&searchCriteriaModeOr=False"),
                &alice,
            )
            .await,
    );
    assert!(
        found
            .body
            .contains("<totalAvailableRecords>1</totalAvailableRecords>"),
        "{}",
        found.body
    );
    let either = valid(
        https
            .get(
                &format!("{personal}?name=Ann*&number=*0002&searchCriteriaModeOr=TRUE"),
                &alice,
            )
            .await,
    );
    assert!(
        either
            .body
            .contains("<totalAvailableRecords>2</totalAvailableRecords>"),
        "{}",
        either.body
    );
    let enterprise = https
        .get(
            &format!(
                "{}?searchCriteriaModeOr=False",
                url(ALICE, "directories/Enterprise")
            ),
            &alice,
        )
        .await;
    assert_eq!(enterprise.status, 200, "{enterprise:?}");
    let wrong = https
        .get(&format!("{personal}?searchCriteriaModeOr=perhaps"), &alice)
        .await;
    assert_eq!(wrong.status, 400);
    setup.server.stop().await;
}

/// wxcadm 4.6 (PyPI; 4.7 is an empty deprecation release) drives its `XSI` class against
/// the server: profile, registrations, FAC list, every service, and the Enterprise, Group
/// and Personal directories. Only the Webex parts are stood in for (the Org that holds the
/// XSI endpoint and the Person that names the user), see `tests/interop/wxcadm_xsi.py`.
#[tokio::test]
async fn wxcadm_reads_profile_registrations_fac_services_and_directories() {
    let setup = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/wxcadm_xsi.py");
    let endpoint = format!(
        "https://localhost:{}/com.broadsoft.xsi-actions",
        setup.server.addrs.https.unwrap().port()
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&endpoint)
        .arg(ALICE)
        .arg("alice-pass")
        .env("REQUESTS_CA_BUNDLE", &setup.ca)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wxcadm: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "profile: alice@acme.test group sales provider acme country 1",
        "registrations: ok",
        "fac: 8 codes, *78 = Do Not Disturb Activation",
        "services: 6 read",
        "enterprise: ",
        "group: ",
        "personal: 0",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    setup.server.stop().await;
}
