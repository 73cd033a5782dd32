//! XSI-Actions against the real server: real TLS, a real HTTP client, the real store.
//! Every XML document the server emits is validated against `schemas/xsi-actions.xsd`
//! with xmllint, and every response is checked for the affinity cookie (in `Https`).

use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bridgehead::config::Config;
use bridgehead::credentials::PasswordVerifiers;
use bridgehead::telephony::services::DoNotDisturb;
use bridgehead::telephony::{CallLogKind, CallLogRecord, Device};
use bridgehead::telephony::{EventKind, ServiceSettings};

use crate::support::acme::{auth, populate, url, ALICE, UTF8_PASSWORD};
use crate::support::https::{assert_valid, basic, Https, Reply, XSI};
use crate::support::server::{embedded_config, Setup, TestServer};

fn ca(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("pki/ca.crt")
}

async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder().acme().config(adjust).start().await
}

async fn start() -> Setup {
    start_with(|_| {}).await
}

/// A successful XML reply, validated against the schema.
fn valid_ok(reply: Reply) -> Reply {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/xml"),
        "{reply:?}"
    );
    assert_valid(&reply.body);
    reply
}

/// An error reply: the status, an ErrorInfo that validates, and the error code.
fn error_info(reply: &Reply, status: u16) -> u32 {
    assert_eq!(reply.status, status, "{reply:?}");
    if reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        let json = reply.json();
        assert!(
            json["ErrorInfo"]["summaryEnglish"]["$"].is_string(),
            "{json}"
        );
        return json["ErrorInfo"]["errorCode"]["$"]
            .as_str()
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no errorCode in {json}"));
    }
    assert_valid(&reply.body);
    let code = reply
        .body
        .split("<errorCode>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no errorCode in {}", reply.body));
    assert!(reply.body.contains("<summaryEnglish>"), "{}", reply.body);
    code
}

#[tokio::test]
async fn profile_services_devices_and_calls_in_xml_and_json() {
    let setup = start().await;
    setup
        .server
        .store
        .add_device(&Device {
            user_id: ALICE.into(),
            name: "alice-pc".into(),
            device_type: "Business Communicator - PC".into(),
            line_port: "alice_pc@acme.test".into(),
        })
        .await
        .unwrap();
    let alice = auth(ALICE);

    let profile = valid_ok(setup.https().get(&url(ALICE, "profile"), &alice).await);
    for part in [
        "<userId>alice@acme.test</userId>",
        "<firstName>Alice</firstName>",
        "<lastName>Anderson</lastName>",
        "<groupId>sales</groupId>",
        "<serviceProvider isEnterprise=\"true\">acme</serviceProvider>",
        "<number>+15550101</number>",
        "<extension>101</extension>",
        "<additionalDetails/>",
        "<fac>/v2.0/user/alice@acme.test/profile/Fac</fac>",
        "<registrations>/v2.0/user/alice@acme.test/profile/Registrations</registrations>",
        "<scheduleList>/v2.0/user/alice@acme.test/profile/Schedule</scheduleList>",
        "<portalPasswordChange>/v2.0/user/alice@acme.test/profile/Password/Portal</portalPasswordChange>",
        "<countryCode>1</countryCode>",
    ] {
        assert!(profile.body.contains(part), "{part} in {}", profile.body);
    }
    let json = setup
        .https()
        .get(&format!("{}?format=json", url(ALICE, "profile")), &alice)
        .await;
    assert_eq!(json.status, 200);
    assert!(json
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let json = json.json();
    assert_eq!(
        json["Profile"]["@xmlns"]["$"],
        "http://schema.broadsoft.com/xsi"
    );
    assert_eq!(json["Profile"]["details"]["userId"]["$"], ALICE);
    assert_eq!(
        json["Profile"]["details"]["serviceProvider"]["@isEnterprise"],
        "true"
    );
    // Accept: application/json works as well as ?format=json.
    let accept = setup
        .https()
        .request(
            Method::GET,
            &url(ALICE, "services"),
            &[("authorization", &alice), ("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(
        accept.json()["Services"]["service"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    let services = valid_ok(setup.https().get(&url(ALICE, "services"), &alice).await);
    for name in [
        "Do Not Disturb",
        "Call Forwarding Always",
        "Call Forwarding Busy",
        "Call Forwarding No Answer",
        "Remote Office",
        "Simultaneous Ring Personal",
    ] {
        assert!(
            services.body.contains(&format!("<name>{name}</name>")),
            "{name}"
        );
    }
    assert!(services
        .body
        .contains("<uri>/v2.0/user/alice@acme.test/services/DoNotDisturb</uri>"));

    let devices = valid_ok(
        setup
            .https()
            .get(&url(ALICE, "profile/Device"), &alice)
            .await,
    );
    assert!(devices.body.contains("<deviceName>alice-pc</deviceName>"));
    assert!(devices
        .body
        .contains("<deviceType>Business Communicator - PC</deviceType>"));

    let calls = valid_ok(setup.https().get(&url(ALICE, "calls"), &alice).await);
    assert!(
        calls
            .body
            .contains("<Calls xmlns=\"http://schema.broadsoft.com/xsi\"/>"),
        "{}",
        calls.body
    );
    let hook = valid_ok(
        setup
            .https()
            .get(&url(ALICE, "calls/HookStatus"), &alice)
            .await,
    );
    assert!(
        hook.body.contains("<HookStatus xmlns=\"http://schema.broadsoft.com/xsi\"><hookStatus>On-Hook</hookStatus></HookStatus>"),
        "{}",
        hook.body
    );

    // Versions needs no credentials.
    let versions = setup
        .https()
        .request(Method::GET, &format!("{XSI}/versions"), &[], None)
        .await;
    let versions = valid_ok(versions);
    assert!(versions.body.contains("<version>v2.0</version>"));
    // The protocol version header is accepted.
    let versioned = setup
        .https()
        .request(
            Method::GET,
            &url(ALICE, "profile"),
            &[
                ("authorization", &alice),
                ("x-broadworks-protocol-version", "25.0"),
            ],
            None,
        )
        .await;
    valid_ok(versioned);
}

/// GET the default, PUT in XML, GET it back; PUT in JSON, GET it back as JSON.
#[tokio::test]
async fn every_service_round_trips_in_xml_and_json() {
    let setup = start().await;
    let alice = auth(ALICE);
    /// Service, XML PUT, what the GET then shows, JSON PUT, what the JSON GET then shows.
    type Case = (
        &'static str,
        &'static str,
        &'static [&'static str],
        serde_json::Value,
        &'static [(&'static str, &'static str)],
    );
    let cases: [Case; 6] = [
        (
            "DoNotDisturb",
            "<active>true</active><ringSplash>true</ringSplash>",
            &["<active>true</active><ringSplash>true</ringSplash>"],
            serde_json::json!({"active": {"$": "false"}}),
            &[("active", "false"), ("ringSplash", "true")],
        ),
        (
            "CallForwardingAlways",
            "<active>true</active><forwardToPhoneNumber>+15559000</forwardToPhoneNumber>",
            &["<active>true</active><forwardToPhoneNumber>+15559000</forwardToPhoneNumber><ringSplash>false</ringSplash>"],
            serde_json::json!({"forwardToPhoneNumber": {"$": "sip:voicemail@acme.test"}}),
            &[("active", "true"), ("forwardToPhoneNumber", "sip:voicemail@acme.test")],
        ),
        (
            "CallForwardingBusy",
            "<active>true</active><forwardToPhoneNumber>2001</forwardToPhoneNumber>",
            &["<active>true</active><forwardToPhoneNumber>2001</forwardToPhoneNumber>"],
            serde_json::json!({"active": false}),
            &[("active", "false"), ("forwardToPhoneNumber", "2001")],
        ),
        (
            "CallForwardingNoAnswer",
            "<active>true</active><forwardToPhoneNumber>+15559001</forwardToPhoneNumber><numberOfRings>5</numberOfRings>",
            &["<numberOfRings>5</numberOfRings>", "<forwardToPhoneNumber>+15559001</forwardToPhoneNumber>"],
            serde_json::json!({"numberOfRings": {"$": "7"}}),
            &[("numberOfRings", "7"), ("active", "true")],
        ),
        (
            "RemoteOffice",
            "<active>true</active><remoteOfficeNumber>+15559002</remoteOfficeNumber>",
            &["<active>true</active><remoteOfficeNumber>+15559002</remoteOfficeNumber>"],
            serde_json::json!({"active": {"$": "false"}, "remoteOfficeNumber": {"$": "+15559003"}}),
            &[("active", "false"), ("remoteOfficeNumber", "+15559003")],
        ),
        (
            "SimultaneousRingPersonal",
            "<active>true</active><incomingCalls>Do not Ring if on a Call</incomingCalls><simRingLocations><simRingLocation><address>+15559004</address><answerConfirmationRequired>true</answerConfirmationRequired></simRingLocation><simRingLocation><address>bob@acme.test</address></simRingLocation></simRingLocations>",
            &["<incomingCalls>Do not Ring if on a Call</incomingCalls>", "<address>+15559004</address><answerConfirmationRequired>true</answerConfirmationRequired>", "<address>bob@acme.test</address><answerConfirmationRequired>false</answerConfirmationRequired>"],
            serde_json::json!({"incomingCalls": {"$": "Ring for all Incoming Calls"}}),
            &[("incomingCalls", "Ring for all Incoming Calls"), ("active", "true")],
        ),
    ];
    for (service, put, expected, json_put, json_expected) in cases {
        let path = url(ALICE, &format!("services/{service}"));
        let default = valid_ok(setup.https().get(&path, &alice).await);
        assert!(
            default.body.contains("<active>false</active>"),
            "{}",
            default.body
        );

        let body =
            format!("<{service} xmlns=\"http://schema.broadsoft.com/xsi\">{put}</{service}>");
        assert_valid(&body);
        let reply = setup.https().put_xml(&path, &alice, &body).await;
        assert_eq!(reply.status, 200, "{service}: {reply:?}");
        assert!(reply.body.is_empty());
        let now = valid_ok(setup.https().get(&path, &alice).await);
        for part in expected {
            assert!(now.body.contains(part), "{service}: {part} in {}", now.body);
        }

        let mut document = serde_json::Map::new();
        document.insert(service.to_owned(), json_put);
        let reply = setup
            .https()
            .request(
                Method::PUT,
                &path,
                &[
                    ("authorization", &alice),
                    ("content-type", "application/json"),
                ],
                Some(&serde_json::Value::Object(document).to_string()),
            )
            .await;
        assert_eq!(reply.status, 200, "{service} JSON PUT: {reply:?}");
        let json = setup
            .https()
            .get(&format!("{path}?format=json"), &alice)
            .await
            .json();
        for (field, value) in json_expected {
            assert_eq!(
                json[service][field]["$"], *value,
                "{service}.{field}: {json}"
            );
        }
    }
}

#[tokio::test]
async fn authentication_and_access_by_role() {
    let setup = start().await;
    let profile = url(ALICE, "profile");

    // No credentials: 401 with the Basic challenge and an ErrorInfo.
    let none = setup
        .https()
        .request(Method::GET, &profile, &[], None)
        .await;
    assert_eq!(error_info(&none, 401), 120_101);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Basic realm=\"BroadWorks\"")
    );
    // Wrong password, unknown user and a malformed header look alike.
    for wrong in [
        basic(ALICE, "nope"),
        basic("nobody@acme.test", "nope"),
        "Basic !!!".to_owned(),
        "Bearer abc".to_owned(),
    ] {
        let reply = setup.https().get(&profile, &wrong).await;
        assert_eq!(error_info(&reply, 401), 120_102, "{wrong}");
        assert!(reply.header("www-authenticate").is_some());
    }
    // A non-ASCII password, UTF-8 encoded, works.
    let zoe = setup
        .https()
        .get(
            &url("zoe@acme.test", "profile"),
            &basic("zoe@acme.test", UTF8_PASSWORD),
        )
        .await;
    valid_ok(zoe);
    // User ids are case-insensitive.
    valid_ok(
        setup
            .https()
            .get(&profile, &basic("ALICE@acme.test", "alice-pass"))
            .await,
    );

    // Users reach only their own resources; another user's is 403, existing or not.
    let other = setup
        .https()
        .get(&url("bob@acme.test", "profile"), &auth(ALICE))
        .await;
    assert_eq!(error_info(&other, 403), 120_103);
    let missing = setup
        .https()
        .get(&url("ghost@acme.test", "profile"), &auth(ALICE))
        .await;
    assert_eq!(error_info(&missing, 403), 120_103);

    // A group admin reaches its group, not the other group.
    let gadmin = auth("gadmin@acme.test");
    valid_ok(
        setup
            .https()
            .get(&url("bob@acme.test", "services"), &gadmin)
            .await,
    );
    let reply = setup
        .https()
        .put_xml(
            &url("bob@acme.test", "services/DoNotDisturb"),
            &gadmin,
            "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active></DoNotDisturb>",
        )
        .await;
    assert_eq!(reply.status, 200);
    let carol = setup
        .https()
        .get(&url("carol@acme.test", "profile"), &gadmin)
        .await;
    assert_eq!(error_info(&carol, 403), 120_103);
    // An enterprise admin reaches every group of its enterprise, not another enterprise;
    // an unknown user is 404 for an admin.
    let eadmin = auth("eadmin@acme.test");
    valid_ok(setup.https().get(&url(ALICE, "profile"), &eadmin).await);
    let dave = setup
        .https()
        .get(&url("dave@other.test", "profile"), &eadmin)
        .await;
    assert_eq!(error_info(&dave, 403), 120_103);
    let ghost = setup
        .https()
        .get(&url("ghost@acme.test", "profile"), &eadmin)
        .await;
    assert_eq!(error_info(&ghost, 404), 120_201);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user() {
    let setup =
        start_with(|c| c.xsi.failed_logins_per_user_per_minute = 3.try_into().unwrap()).await;
    let profile = url(ALICE, "profile");
    for _ in 0..3 {
        let reply = setup.https().get(&profile, &basic(ALICE, "guess")).await;
        assert_eq!(reply.status, 401);
    }
    // Now even the right password waits.
    let throttled = setup.https().get(&profile, &auth(ALICE)).await;
    assert_eq!(error_info(&throttled, 429), 120_104);
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another user is not affected.
    valid_ok(
        setup
            .https()
            .get(&url("bob@acme.test", "profile"), &auth("bob@acme.test"))
            .await,
    );
}

#[tokio::test]
async fn a_password_change_drops_the_remembered_login() {
    let setup = start().await;
    let profile = url(ALICE, "profile");
    valid_ok(setup.https().get(&profile, &auth(ALICE)).await);
    valid_ok(setup.https().get(&profile, &auth(ALICE)).await); // from the cache
    let changed = PasswordVerifiers::new("new-secret", 4096).unwrap();
    assert!(setup
        .server
        .store
        .set_password(ALICE, &changed)
        .await
        .unwrap());
    let old = setup.https().get(&profile, &auth(ALICE)).await;
    assert_eq!(error_info(&old, 401), 120_102);
    valid_ok(
        setup
            .https()
            .get(&profile, &basic(ALICE, "new-secret"))
            .await,
    );
}

fn user_ids(body: &str) -> Vec<String> {
    body.split("<userId>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect()
}

fn number_in(body: &str, element: &str) -> usize {
    body.split(&format!("<{element}>"))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {element} in {body}"))
}

#[tokio::test]
async fn directory_search_and_paging() {
    let setup = start().await;
    let alice = auth(ALICE);
    let enterprise = |query: &str| url(ALICE, &format!("directories/Enterprise{query}"));

    // The whole enterprise (not the other one), sorted by last name.
    let all = valid_ok(setup.https().get(&enterprise(""), &alice).await);
    assert_eq!(number_in(&all.body, "totalAvailableRecords"), 7);
    assert_eq!(number_in(&all.body, "startIndex"), 1);
    let ids = user_ids(&all.body);
    assert_eq!(ids.first().map(String::as_str), Some("eadmin@acme.test")); // Admin, Erin
    assert!(!ids.contains(&"dave@other.test".to_owned()));

    // Wildcards, case, and OR mode.
    let j = valid_ok(setup.https().get(&enterprise("?lastName=J*"), &alice).await);
    assert_eq!(user_ids(&j.body), ["dan@acme.test"]);
    let case = valid_ok(
        setup
            .https()
            .get(&enterprise("?lastName=*son"), &alice)
            .await,
    );
    assert_eq!(user_ids(&case.body), ["alice@acme.test", "dan@acme.test"]);
    let exact_case = valid_ok(
        setup
            .https()
            .get(&enterprise("?firstName=alice"), &alice)
            .await,
    );
    assert_eq!(number_in(&exact_case.body, "totalAvailableRecords"), 0);
    let insensitive = valid_ok(
        setup
            .https()
            .get(&enterprise("?firstName=alice/i"), &alice)
            .await,
    );
    assert_eq!(user_ids(&insensitive.body), ["alice@acme.test"]);
    let and = valid_ok(
        setup
            .https()
            .get(&enterprise("?firstName=Bob&extension=103"), &alice)
            .await,
    );
    assert_eq!(number_in(&and.body, "totalAvailableRecords"), 0);
    let or = valid_ok(
        setup
            .https()
            .get(
                &enterprise("?firstName=Bob&extension=103&searchCriteriaModeOr=true"),
                &alice,
            )
            .await,
    );
    assert_eq!(user_ids(&or.body), ["bob@acme.test", "carol@acme.test"]);
    let number = valid_ok(
        setup
            .https()
            .get(&enterprise("?number=%2B1555010*"), &alice)
            .await,
    );
    assert_eq!(number_in(&number.body, "totalAvailableRecords"), 6);

    // Paging: two per page, the third page has the fifth and sixth.
    let page = valid_ok(
        setup
            .https()
            .get(&enterprise("?start=5&results=2"), &alice)
            .await,
    );
    assert_eq!(number_in(&page.body, "startIndex"), 5);
    assert_eq!(number_in(&page.body, "numberOfRecords"), 2);
    assert_eq!(number_in(&page.body, "totalAvailableRecords"), 7);
    assert_eq!(user_ids(&page.body), ids[4..6]);
    let past = valid_ok(setup.https().get(&enterprise("?start=50"), &alice).await);
    assert_eq!(number_in(&past.body, "numberOfRecords"), 0);
    for bad in [
        "?start=0",
        "?results=0",
        "?results=100000",
        "?start=x",
        "?searchCriteriaModeOr=maybe",
    ] {
        let reply = setup.https().get(&enterprise(bad), &alice).await;
        assert_eq!(error_info(&reply, 400), 120_003, "{bad}");
    }

    // The group directory holds only the caller's group.
    let group = valid_ok(
        setup
            .https()
            .get(&url(ALICE, "directories/Group"), &alice)
            .await,
    );
    let mut members = user_ids(&group.body);
    members.sort();
    assert_eq!(
        members,
        [
            "alice@acme.test",
            "bob@acme.test",
            "gadmin@acme.test",
            "zoe@acme.test"
        ]
    );
    let json = setup
        .https()
        .get(
            &format!("{}?format=json", url(ALICE, "directories/Group")),
            &alice,
        )
        .await
        .json();
    assert_eq!(
        json["Group"]["groupDirectory"]["directoryDetails"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn personal_directory_and_call_logs() {
    let setup = start().await;
    let alice = auth(ALICE);
    let personal = url(ALICE, "directories/Personal");
    let add = |body: &'static str| {
        let https = setup.https().clone();
        let personal = personal.clone();
        let alice = alice.clone();
        async move {
            https
                .request(
                    Method::POST,
                    &personal,
                    &[
                        ("authorization", &alice),
                        ("content-type", "application/xml"),
                    ],
                    Some(body),
                )
                .await
        }
    };
    let created = add("<Personal xmlns=\"http://schema.broadsoft.com/xsi\"><entry><name>Dentist</name><number>+15550199</number></entry><entry><name>Taxi</name><number>2222</number></entry></Personal>").await;
    assert_eq!(created.status, 201, "{created:?}");
    let duplicate = add("<Personal xmlns=\"http://schema.broadsoft.com/xsi\"><entry><name>Taxi</name><number>3333</number></entry></Personal>").await;
    assert_eq!(error_info(&duplicate, 409), 120_204);
    let bad_number = add("<Personal xmlns=\"http://schema.broadsoft.com/xsi\"><entry><name>X</name><number>not a number</number></entry></Personal>").await;
    assert_eq!(error_info(&bad_number, 400), 120_002);
    let list = valid_ok(setup.https().get(&personal, &alice).await);
    assert!(list.body.contains("<entry><name>Dentist</name><number>+15550199</number></entry><entry><name>Taxi</name><number>2222</number></entry>"), "{}", list.body);
    let delete = |query: &'static str| {
        let https = setup.https().clone();
        let (path, alice) = (format!("{personal}{query}"), alice.clone());
        async move {
            https
                .request(Method::DELETE, &path, &[("authorization", &alice)], None)
                .await
        }
    };
    assert_eq!(delete("?name=Taxi").await.status, 200);
    assert_eq!(error_info(&delete("?name=Taxi").await, 404), 120_203);
    assert_eq!(error_info(&delete("").await, 400), 120_003);

    // Call logs, recorded through the telephony model as call control will.
    for (kind, number, name) in [
        (CallLogKind::Placed, "+15550102", Some("Bob Baker")),
        (CallLogKind::Missed, "+15550103", None),
        (CallLogKind::Missed, "+15550104", Some("Dan Johnson")),
    ] {
        setup
            .server
            .telephony
            .record_call(CallLogRecord {
                id: 0,
                user_id: ALICE.into(),
                kind,
                name: name.map(Into::into),
                number: number.into(),
                country_code: Some("1".into()),
                time: "2026-11-22T09:30:00Z".into(),
            })
            .await
            .unwrap();
    }
    let logs = valid_ok(
        setup
            .https()
            .get(&url(ALICE, "directories/CallLogs"), &alice)
            .await,
    );
    assert!(logs.body.contains("<placed><callLogsEntry><countryCode>1</countryCode><phoneNumber>+15550102</phoneNumber><name>Bob Baker</name>"), "{}", logs.body);
    assert!(logs.body.contains("<received/>"), "{}", logs.body);
    let missed = valid_ok(
        setup
            .https()
            .get(&url(ALICE, "directories/CallLogs/Missed"), &alice)
            .await,
    );
    assert_eq!(missed.body.matches("<callLogsEntry>").count(), 2);
    assert!(
        missed.body.find("+15550104").unwrap() < missed.body.find("+15550103").unwrap(),
        "newest first: {}",
        missed.body
    );
    valid_ok(
        setup
            .https()
            .get(&url(ALICE, "directories/CallLogs/Received"), &alice)
            .await,
    );
}

#[tokio::test]
async fn every_error_is_an_error_info_with_its_status() {
    let setup = start_with(|c| c.http.max_body_bytes = 2048.try_into().unwrap()).await;
    let alice = auth(ALICE);
    let dnd = url(ALICE, "services/DoNotDisturb");
    let put = |content_type: &'static str, body: String| {
        let https = setup.https().clone();
        let (dnd, alice) = (dnd.clone(), alice.clone());
        async move {
            https
                .request(
                    Method::PUT,
                    &dnd,
                    &[("authorization", &alice), ("content-type", content_type)],
                    Some(&body),
                )
                .await
        }
    };
    let xml = "application/xml";
    // Malformed XML and JSON, a wrong root, a wrong namespace, a DTD: 400 malformed.
    for (content_type, body) in [
        (xml, "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</DoNotDisturb>".to_owned()),
        (xml, "not xml at all".to_owned()),
        (xml, "<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"/>".to_owned()),
        (xml, "<DoNotDisturb xmlns=\"urn:something-else\"><active>true</active></DoNotDisturb>".to_owned()),
        (xml, "<!DOCTYPE d [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]><DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>&b;</active></DoNotDisturb>".to_owned()),
        (xml, "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>perhaps</active></DoNotDisturb>".to_owned()),
        ("application/json", "{\"DoNotDisturb\": {".to_owned()),
        ("application/json", "[1, 2]".to_owned()),
        ("application/json", "{\"DoNotDisturb\": {\"active\": {\"$\": \"perhaps\"}}}".to_owned()),
    ] {
        let reply = put(content_type, body.clone()).await;
        assert_eq!(error_info(&reply, 400), 120_001, "{body}");
        // The error comes back in the body's own representation.
        assert_eq!(
            reply.header("content-type").map(|t| t.starts_with(content_type)),
            Some(true),
            "{body}"
        );
    }
    // A value out of range: 400 invalid, naming the field.
    let rings = setup
        .https()
        .put_xml(
            &url(ALICE, "services/CallForwardingNoAnswer"),
            &alice,
            "<CallForwardingNoAnswer xmlns=\"http://schema.broadsoft.com/xsi\"><numberOfRings>50</numberOfRings></CallForwardingNoAnswer>",
        )
        .await;
    assert_eq!(error_info(&rings, 400), 120_002);
    assert!(rings.body.contains("numberOfRings"), "{}", rings.body);
    let on_without_target = setup
        .https()
        .put_xml(
            &url(ALICE, "services/CallForwardingAlways"),
            &alice,
            "<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active></CallForwardingAlways>",
        )
        .await;
    assert_eq!(error_info(&on_without_target, 400), 120_002);
    // Unknown service, unknown resource, unknown version: 404.
    for path in [
        url(ALICE, "services/CallWaitingForever"),
        url(ALICE, "nothing-here"),
        format!("/com.broadsoft.xsi-actions/v1.0/user/{ALICE}/profile"),
    ] {
        let reply = setup.https().get(&path, &alice).await;
        assert_eq!(error_info(&reply, 404), 120_202, "{path}");
    }
    // A method the resource does not take: 405 with Allow.
    let post = setup
        .https()
        .request(Method::POST, &dnd, &[("authorization", &alice)], None)
        .await;
    assert_eq!(error_info(&post, 405), 120_301);
    assert_eq!(post.header("allow"), Some("GET, PUT"));
    let delete = setup
        .https()
        .request(
            Method::DELETE,
            &url(ALICE, "profile"),
            &[("authorization", &alice)],
            None,
        )
        .await;
    assert_eq!(delete.header("allow"), Some("GET"));
    // Neither XML nor JSON: 415.
    let text = put("text/plain", "active".to_owned()).await;
    assert_eq!(error_info(&text, 415), 120_302);
    // Larger than http.max_body_bytes: 413.
    let big = format!(
        "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><!--{}--></DoNotDisturb>",
        "x".repeat(4096)
    );
    let too_large = put(xml, big).await;
    assert_eq!(error_info(&too_large, 413), 120_303);
    // Errors come in JSON when JSON was asked for.
    let json = setup
        .https()
        .get(
            &format!("{}?format=json", url(ALICE, "services/Nope")),
            &alice,
        )
        .await;
    assert_eq!(json.status, 404);
    assert_eq!(json.json()["ErrorInfo"]["errorCode"]["$"], "120202");
    // Paths outside XSI get a plain 404, still with the cookie.
    let outside = setup
        .https()
        .request(Method::GET, "/elsewhere", &[], None)
        .await;
    assert_eq!(outside.status, 404);
    // Nothing was stored by the refused requests.
    let dnd_now = valid_ok(setup.https().get(&dnd, &alice).await);
    assert!(dnd_now.body.contains("<active>false</active>"));
}

/// Reads from `stream` until the server closes it or `limit` passes; returns what came.
async fn read_until_closed(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_and_oversized_clients_are_cut_off() {
    let setup = start_with(|c| {
        c.http.header_read_timeout_secs = 1.try_into().unwrap();
        c.http.body_read_timeout_secs = 1.try_into().unwrap();
        c.http.idle_timeout_secs = 1.try_into().unwrap();
        c.http.max_header_bytes = 4096;
    })
    .await;
    // Slowloris: a request head that never ends is dropped after the header timeout.
    let mut slow = setup.https().tls_stream().await;
    slow.write_all(b"GET /com.broadsoft.xsi-actions/v2.0/versions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "the server closes a slowloris connection");

    // A body that never arrives gets 408.
    let mut stalled = setup.https().tls_stream().await;
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/xml\r\nContent-Length: 100\r\n\r\n<DoNotDisturb",
        url(ALICE, "services/DoNotDisturb"),
        auth(ALICE)
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stalled, Duration::from_secs(10))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("<errorCode>120304</errorCode>"), "{answer}");

    // Headers larger than http.max_header_bytes are refused by hyper's parser (before any
    // handler runs, so this one response carries no affinity cookie).
    let mut huge = setup.https().tls_stream().await;
    let head = format!(
        "GET {XSI}/versions HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(10_000)
    );
    huge.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut huge, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // An idle keep-alive connection is closed by the server.
    let mut idle = setup.https().tls_stream().await;
    idle.write_all(b"GET /com.broadsoft.xsi-actions/v2.0/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn http2_is_chosen_by_alpn() {
    let setup = start().await;
    let h2 = Https::h2(setup.server.addrs.https.unwrap(), &setup.ca);
    let reply = h2.get(&url(ALICE, "profile"), &auth(ALICE)).await;
    assert_eq!(reply.version, hyper::Version::HTTP_2);
    valid_ok(reply);
}

#[tokio::test]
async fn settings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = embedded_config(dir.path());
        config.validate().unwrap();
        config
    };
    let body = "<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active><forwardToPhoneNumber>+15559999</forwardToPhoneNumber></CallForwardingAlways>";
    {
        let server = TestServer::start(config()).await;
        populate(&server.telephony).await;
        let https = Https::new(server.addrs.https.unwrap(), &ca(&dir));
        let reply = https
            .put_xml(
                &url(ALICE, "services/CallForwardingAlways"),
                &auth(ALICE),
                body,
            )
            .await;
        assert_eq!(reply.status, 200);
        server.stop().await;
    }
    let server = TestServer::start(config()).await;
    let https = Https::new(server.addrs.https.unwrap(), &ca(&dir));
    let after = valid_ok(
        https
            .get(&url(ALICE, "services/CallForwardingAlways"), &auth(ALICE))
            .await,
    );
    assert!(
        after.body.contains(
            "<active>true</active><forwardToPhoneNumber>+15559999</forwardToPhoneNumber>"
        ),
        "{}",
        after.body
    );
}

#[tokio::test]
async fn a_settings_change_is_published_on_the_event_bus() {
    let setup = start().await;
    let mut events = setup.server.telephony.events().subscribe();
    for active in ["true", "false"] {
        let reply = setup
            .https()
            .put_xml(
                &url(ALICE, "services/DoNotDisturb"),
                &auth(ALICE),
                &format!("<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>{active}</active></DoNotDisturb>"),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    // A refused change publishes nothing.
    let refused = setup
        .https()
        .put_xml(
            &url(ALICE, "services/CallForwardingNoAnswer"),
            &auth(ALICE),
            "<CallForwardingNoAnswer xmlns=\"http://schema.broadsoft.com/xsi\"><numberOfRings>1</numberOfRings></CallForwardingNoAnswer>",
        )
        .await;
    assert_eq!(refused.status, 400);
    for (sequence, active) in [(1, true), (2, false)] {
        let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.user_id, ALICE);
        assert_eq!(event.sequence, sequence);
        assert_eq!(
            event.kind,
            EventKind::ServiceChanged(ServiceSettings::from(DoNotDisturb {
                active,
                ring_splash: false
            }))
        );
    }
    assert!(events.try_recv().is_err(), "nothing else was published");
}

#[tokio::test]
async fn keep_alive_and_connection_limits_hold() {
    let setup = start_with(|c| {
        c.http.max_requests_per_connection = 2.try_into().unwrap();
        c.http.max_connections = 1.try_into().unwrap();
    })
    .await;
    // The second request on a connection is told the connection closes after it.
    let tls = setup.https().tls_stream().await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let versions = || {
        hyper::Request::get(format!("{XSI}/versions"))
            .header("host", "localhost")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap()
    };
    let first = sender.send_request(versions()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("connection").is_none());
    http_body_util::BodyExt::collect(first.into_body())
        .await
        .unwrap();
    sender.ready().await.unwrap();
    let second = sender.send_request(versions()).await.unwrap();
    assert_eq!(
        second
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close")
    );
    drop(second);

    // With max_connections = 1, a second client waits (after its TLS handshake, in the
    // pre-authentication budget) while the first is open.
    drop(sender);
    let held = setup.https().tls_stream().await;
    let (mut waiting, connection) = hyper::client::conn::http1::handshake(
        hyper_util::rt::TokioIo::new(setup.https().tls_stream().await),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut answer = Box::pin(waiting.send_request(versions()));
    let early = tokio::time::timeout(Duration::from_millis(700), &mut answer).await;
    assert!(
        early.is_err(),
        "a second connection is not served while one is open"
    );
    drop(held);
    let served = tokio::time::timeout(Duration::from_secs(5), answer).await;
    assert!(
        served.is_ok_and(|r| r.is_ok_and(|r| r.status() == 200)),
        "it is served once the first closes"
    );
}

#[tokio::test]
async fn personal_directory_and_call_logs_in_json() {
    let setup = start().await;
    let alice = auth(ALICE);
    let personal = url(ALICE, "directories/Personal");
    let created = setup
        .https()
        .request(
            Method::POST,
            &personal,
            &[("authorization", &alice), ("content-type", "application/json")],
            Some(r#"{"Personal":{"entry":[{"name":{"$":"Dentist"},"number":{"$":"+15550199"}},{"name":"Taxi","number":"2222"}]}}"#),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let listed = setup
        .https()
        .get(&format!("{personal}?format=json"), &alice)
        .await
        .json();
    let entries = listed["Personal"]["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["name"]["$"], "Taxi");
    setup
        .server
        .telephony
        .record_call(CallLogRecord {
            id: 0,
            user_id: ALICE.into(),
            kind: CallLogKind::Received,
            name: None,
            number: "+15550102".into(),
            country_code: None,
            time: "2026-11-22T11:00:00Z".into(),
        })
        .await
        .unwrap();
    let logs = setup
        .https()
        .get(
            &format!("{}?format=json", url(ALICE, "directories/CallLogs")),
            &alice,
        )
        .await
        .json();
    assert_eq!(
        logs["CallLogs"]["received"]["callLogsEntry"]["phoneNumber"]["$"],
        "+15550102"
    );
}

/// `POST calls/new`: the address is required and must be a number or SIP address; a valid
/// one is resolved, and with no call bridge able to carry calls the answer is the
/// documented 503 (errorCode 120401). The role rules hold as for every resource.
#[tokio::test]
async fn a_new_call_needs_an_address_and_a_call_bridge() {
    let setup = start().await;
    let alice = auth(ALICE);
    let post = |path: String, who: String| {
        let https = setup.https();
        async move {
            https
                .request(Method::POST, &path, &[("authorization", &who)], None)
                .await
        }
    };
    let missing = post(url(ALICE, "calls/new"), alice.clone()).await;
    assert_eq!(error_info(&missing, 400), 120_003);
    assert!(missing.body.contains("address"), "{}", missing.body);
    let invalid = post(url(ALICE, "calls/new?address=bob"), alice.clone()).await;
    assert_eq!(error_info(&invalid, 400), 120_002);
    for address in [
        "102",
        "bob%40acme.test",
        "tel:%2B15550102",
        "sip:someone%40example.com",
    ] {
        let refused = post(
            url(ALICE, &format!("calls/new?address={address}")),
            alice.clone(),
        )
        .await;
        assert_eq!(error_info(&refused, 503), 120_401, "{address}");
        assert!(refused.body.contains("no call bridge"), "{}", refused.body);
    }
    // Another user's calls are not bob's to place; GET is not a way to place one.
    let foreign = post(url(ALICE, "calls/new?address=102"), auth("bob@acme.test")).await;
    assert_eq!(error_info(&foreign, 403), 120_103);
    let get = setup.https().get(&url(ALICE, "calls/new"), &alice).await;
    assert_eq!(error_info(&get, 405), 120_301);
    setup.server.stop().await;
}
