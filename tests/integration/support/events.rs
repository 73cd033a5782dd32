//! XSI-Events from the tests' side: opening channels, subscribing, acknowledging, reading
//! validated events, and switching a user's Do Not Disturb.

use hyper::Method;

use crate::support::acme::{auth, url};
use crate::support::https::{assert_valid, between, EventChannel, Reply, EVENTS};
use crate::support::server::Setup;

/// The body of a `Channel` request in set `set`, plus `extra` elements.
pub fn channel_body(set: &str, extra: &str) -> String {
    format!("<channelSetId>{set}</channelSetId><priority>1</priority><weight>50</weight><expires>100</expires>{extra}")
}

impl Setup {
    pub async fn open(&self, user: &str, set: &str) -> EventChannel {
        EventChannel::open(self.https(), &auth(user), &channel_body(set, ""))
            .await
            .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"))
    }

    pub async fn post(&self, user: &str, path: &str, body: &str) -> Reply {
        self.https()
            .request(
                Method::POST,
                path,
                &[
                    ("authorization", &auth(user)),
                    ("content-type", "application/xml"),
                ],
                Some(body),
            )
            .await
    }

    pub async fn subscribe(&self, user: &str, target: &str, set: &str, events: &str) -> Reply {
        let reply = self
            .post(
                user,
                &format!("{EVENTS}/{target}"),
                &format!("<Subscription xmlns=\"http://schema.broadsoft.com/xsi\">{events}<expires>100</expires><channelSetId>{set}</channelSetId><applicationId>test-app</applicationId></Subscription>"),
            )
            .await;
        if reply.status == 200 {
            assert_valid(&reply.body);
        }
        reply
    }

    pub async fn ack(&self, user: &str, event: &str, status: u16) -> Reply {
        let event_id = between(event, "<xsi:eventID>", "</xsi:eventID>");
        self.post(
            user,
            &format!("{EVENTS}/channel/eventresponse"),
            &format!("<EventResponse xmlns=\"http://schema.broadsoft.com/xsi\"><eventID>{event_id}</eventID><statusCode>{status}</statusCode><reason>test</reason></EventResponse>"),
        )
        .await
    }

    pub async fn set_dnd(&self, user: &str, active: bool) {
        let reply = self
            .https()
            .put_xml(
                &url(user, "services/DoNotDisturb"),
                &auth(user),
                &format!("<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>{active}</active></DoNotDisturb>"),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

/// The next event document on `channel`, validated.
pub async fn event(channel: &mut EventChannel) -> String {
    let document = channel.next().await.expect("an event on the channel");
    assert_valid(&document);
    document
}

pub fn sequence(event: &str) -> u32 {
    between(event, "<xsi:sequenceNumber>", "</xsi:sequenceNumber>")
        .parse()
        .unwrap()
}
