//! The XSI-Events documents: the channel, channel-set, subscription and event-response
//! documents (default namespace, through serde like the Actions model), and the streamed
//! ones: the channel heartbeat and the `xsi:Event` envelope, which clients match byte by
//! byte. Those are written with quick-xml's event writer using the exact prefixes real
//! clients expect (`xsi:` for the XSI namespace, `xsi1:` for XML Schema instance), on one
//! line, each starting with an XML declaration.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::{Deserialize, Serialize};

use crate::telephony::calls::{Call, CallEventKind, HookStatus};
use crate::telephony::ServiceSettings;
use crate::xsi::model::{CallDocument, XSI_NS};

/// The XML Schema instance namespace (`xsi1:` in events).
pub const XSI_INSTANCE_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

fn ns() -> &'static str {
    XSI_NS
}

/// `<Channel>`: the body that opens or updates a channel, and the answer.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "Channel")]
pub struct Channel {
    /// The namespace.
    #[serde(rename = "@xmlns", default = "ns", skip_deserializing)]
    pub xmlns: &'static str,
    /// Set in answers.
    #[serde(rename = "channelId", default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// The channel set.
    #[serde(
        rename = "channelSetId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub channel_set_id: Option<String>,
    /// Lower values are chosen first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Share within one priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Lifetime in seconds (2147483647: never expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// One channel set per user and application.
    #[serde(
        rename = "applicationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
}

/// One `<channel>` of a `<ChannelSet>`.
#[derive(Debug, Serialize)]
pub struct ChannelEntry {
    /// The channel.
    #[serde(rename = "channelId")]
    pub channel_id: String,
    /// Its set.
    #[serde(rename = "channelSetId")]
    pub channel_set_id: String,
    /// Priority.
    pub priority: u32,
    /// Weight.
    pub weight: u32,
    /// Seconds left (2147483647: never expires).
    pub expires: u64,
}

/// `<ChannelSet>`.
#[derive(Debug, Serialize)]
#[serde(rename = "ChannelSet")]
pub struct ChannelSet {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The set.
    #[serde(rename = "channelSetId")]
    pub channel_set_id: String,
    /// Its open channels.
    pub channel: Vec<ChannelEntry>,
}

/// `<EventResponse>`: the acknowledgement of one event (read by the server, written by
/// the client library).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "EventResponse")]
pub struct EventResponse {
    /// The namespace.
    #[serde(rename = "@xmlns", default = "ns", skip_deserializing)]
    pub xmlns: &'static str,
    /// The event.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// 200, 400, 404, 481 or 500.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Free text.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `<Subscription>`: the body that subscribes, and the answer.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "Subscription")]
pub struct Subscription {
    /// The namespace.
    #[serde(rename = "@xmlns", default = "ns", skip_deserializing)]
    pub xmlns: &'static str,
    /// Set in answers.
    #[serde(
        rename = "subscriptionId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_id: Option<String>,
    /// Who subscribed (in listings).
    #[serde(
        rename = "subscriberId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_id: Option<String>,
    /// `User`, `Group`, `Enterprise`/`ServiceProvider` or `System` (in listings).
    #[serde(
        rename = "targetIdType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_id_type: Option<String>,
    /// The target's id (in listings).
    #[serde(rename = "targetId", default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// One event package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Several event packages.
    #[serde(
        rename = "eventPackageList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_package_list: Option<EventPackageList>,
    /// Lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The channel set the events go to.
    #[serde(
        rename = "channelSetId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub channel_set_id: Option<String>,
    /// The subscriber's application.
    #[serde(
        rename = "applicationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    /// HTTP-contact mode is not offered: a body carrying it is refused.
    #[serde(rename = "httpContact", default, skip_serializing)]
    pub http_contact: Option<serde::de::IgnoredAny>,
}

/// `<eventPackageList>`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EventPackageList {
    /// The packages.
    #[serde(rename = "eventPackage", default)]
    pub event_package: Vec<String>,
}

/// `<SubscriptionList>`.
#[derive(Debug, Serialize)]
#[serde(rename = "SubscriptionList")]
pub struct SubscriptionList {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The subscriptions.
    pub subscription: Vec<Subscription>,
}

/// Why a channel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// A second channel set for the same user and application.
    DuplicateChannelSet,
    /// No acknowledgement (or heartbeat) came back.
    NonResponsiveChannel,
    /// The client deleted it.
    ExplicitDelete,
    /// Its lifetime ended (and on server shutdown: open a new channel).
    Expired,
    /// The client answered an event with 404.
    UnknownChannel,
    /// Its user was deleted.
    UserDeleted,
}

impl TerminationReason {
    /// The spelling in events.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::DuplicateChannelSet => "DuplicateChannelSet",
            TerminationReason::NonResponsiveChannel => "NonResponsiveChannel",
            TerminationReason::ExplicitDelete => "ExplicitDelete",
            TerminationReason::Expired => "Expired",
            TerminationReason::UnknownChannel => "UnknownChannel",
            TerminationReason::UserDeleted => "UserDeleted",
        }
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventData {
    /// A service's current settings.
    Service(ServiceSettings),
    /// The subscription ended.
    SubscriptionTerminated,
    /// The answer to a new call subscription (Basic, Standard or Advanced Call) of one
    /// user: the user's calls in progress and hook status.
    CallSubscription {
        /// Off hook when there are calls.
        hook_status: HookStatus,
        /// The calls, oldest first.
        calls: Vec<Call>,
    },
    /// The user went off or on hook.
    HookStatus(HookStatus),
    /// A change to one of the user's calls.
    Call(CallEventKind, Box<Call>),
}

/// The envelope fields of one `SubscriptionEvent`.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// UUID.
    pub event_id: &'a str,
    /// Per channel set, 1 to 2147483647.
    pub sequence: u32,
    /// The subscriber: a user id, or a CTI client identity.
    pub subscriber: &'a str,
    /// True when `subscriber` is a CTI client identity (`clientId`).
    pub subscriber_is_client: bool,
    /// The subscriber's application id.
    pub application_id: &'a str,
    /// The subscription.
    pub subscription_id: &'a str,
    /// The channel it is sent on.
    pub channel_id: &'a str,
    /// The user it is about.
    pub target_id: &'a str,
}

/// Writes one-line documents with the event prefixes.
struct Writer(quick_xml::Writer<Vec<u8>>);

impl Writer {
    fn new() -> Self {
        let mut writer = Writer(quick_xml::Writer::new(Vec::new()));
        writer.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        writer
    }

    fn event(&mut self, event: Event<'_>) {
        // Writing to a Vec cannot fail.
        let _ = self.0.write_event(event);
    }

    fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for attribute in attributes {
            start.push_attribute(*attribute);
        }
        self.event(Event::Start(start));
    }

    fn end(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    fn text(&mut self, name: &str, value: &str) {
        self.start(name, &[]);
        self.event(Event::Text(BytesText::new(value)));
        self.end(name);
    }

    /// Writes the serde document `document` as element `name`, every element with the
    /// `xsi:` prefix and without its own namespace declaration (the envelope declares it).
    fn prefixed<T: Serialize>(&mut self, name: &str, document: &T) {
        let Ok(xml) = quick_xml::se::to_string_with_root(name, document) else {
            tracing::error!(name, "cannot write an event document");
            return;
        };
        let rename = |start: &BytesStart<'_>| {
            let mut renamed = BytesStart::new(format!(
                "xsi:{}",
                String::from_utf8_lossy(start.name().as_ref())
            ));
            renamed.extend_attributes(
                start
                    .attributes()
                    .flatten()
                    .filter(|a| a.key.as_ref() != b"xmlns"),
            );
            renamed
        };
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(Event::Start(start)) => self.event(Event::Start(rename(&start))),
                Ok(Event::Empty(start)) => self.event(Event::Empty(rename(&start))),
                Ok(Event::End(end)) => self.end(&format!(
                    "xsi:{}",
                    String::from_utf8_lossy(end.name().as_ref())
                )),
                Ok(Event::Text(text)) => self.event(Event::Text(text)),
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// `<xsi:calls>` with one `<xsi:call>` per call.
    fn calls(&mut self, calls: &[Call]) {
        self.start("xsi:calls", &[]);
        for call in calls {
            self.prefixed("call", &CallDocument::of(call));
        }
        self.end("xsi:calls");
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner()
    }
}

/// `<?xml …?><ChannelHeartBeat xmlns="http://schema.broadsoft.com/xsi"/>`.
pub fn heartbeat() -> Vec<u8> {
    let mut writer = Writer::new();
    let mut element = BytesStart::new("ChannelHeartBeat");
    element.push_attribute(("xmlns", XSI_NS));
    writer.event(Event::Empty(element));
    writer.finish()
}

/// `xsi:Event` of type `ChannelTerminatedEvent`.
pub fn channel_terminated(channel_id: &str, reason: TerminationReason) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.start(
        "xsi:Event",
        &[
            ("xmlns:xsi", XSI_NS),
            ("xmlns:xsi1", XSI_INSTANCE_NS),
            ("xsi1:type", "xsi:ChannelTerminatedEvent"),
        ],
    );
    writer.text("xsi:channelId", channel_id);
    writer.text("xsi:reason", reason.as_str());
    writer.end("xsi:Event");
    writer.finish()
}

/// `xsi:Event` of type `SubscriptionEvent` carrying `data`.
pub fn subscription_event(envelope: &Envelope<'_>, data: &EventData) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.start(
        "xsi:Event",
        &[
            ("xmlns:xsi", XSI_NS),
            ("xmlns:xsi1", XSI_INSTANCE_NS),
            ("xsi1:type", "xsi:SubscriptionEvent"),
        ],
    );
    writer.text("xsi:eventID", envelope.event_id);
    writer.text("xsi:sequenceNumber", &envelope.sequence.to_string());
    if envelope.subscriber_is_client {
        writer.text("xsi:clientId", envelope.subscriber);
    } else {
        writer.text("xsi:userId", envelope.subscriber);
    }
    writer.text("xsi:externalApplicationId", envelope.application_id);
    writer.text("xsi:subscriptionId", envelope.subscription_id);
    writer.text("xsi:channelId", envelope.channel_id);
    writer.text("xsi:targetId", envelope.target_id);
    match data {
        EventData::SubscriptionTerminated => {
            let mut element = BytesStart::new("xsi:eventData");
            element.push_attribute(("xsi1:type", "xsi:SubscriptionTerminatedEvent"));
            writer.event(Event::Empty(element));
        }
        EventData::CallSubscription { hook_status, calls } => {
            writer.start(
                "xsi:eventData",
                &[("xsi1:type", "xsi:CallSubscriptionEvent")],
            );
            if !calls.is_empty() {
                writer.calls(calls);
            }
            writer.text("xsi:hookStatus", hook_status.as_str());
            writer.end("xsi:eventData");
        }
        EventData::HookStatus(hook_status) => {
            writer.start("xsi:eventData", &[("xsi1:type", "xsi:HookStatusEvent")]);
            writer.text("xsi:hookStatus", hook_status.as_str());
            writer.end("xsi:eventData");
        }
        EventData::Call(kind, call) => {
            let event_type = format!("xsi:{}", kind.as_str());
            writer.start("xsi:eventData", &[("xsi1:type", event_type.as_str())]);
            // A redirection lists the calls redirected; every other call event has one.
            if *kind == CallEventKind::Redirected {
                writer.calls(std::slice::from_ref(call));
            } else {
                writer.prefixed("call", &CallDocument::of(call));
            }
            writer.end("xsi:eventData");
        }
        EventData::Service(settings) => {
            let event_type = format!("xsi:{}Event", settings.name().as_str());
            writer.start("xsi:eventData", &[("xsi1:type", event_type.as_str())]);
            writer.start("xsi:info", &[]);
            crate::xsi::services::write_fields(&mut writer.0, "xsi:", &settings.fields());
            writer.end("xsi:info");
            writer.end("xsi:eventData");
        }
    }
    writer.end("xsi:Event");
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_documents_are_single_lines_with_the_expected_prefixes() {
        assert_eq!(
            String::from_utf8(heartbeat()).unwrap(),
            r#"<?xml version="1.0" encoding="UTF-8"?><ChannelHeartBeat xmlns="http://schema.broadsoft.com/xsi"/>"#
        );
        let event = String::from_utf8(subscription_event(
            &Envelope {
                event_id: "e1",
                sequence: 7,
                subscriber: "alice@example.com",
                subscriber_is_client: false,
                application_id: "app",
                subscription_id: "s1",
                channel_id: "c1",
                target_id: "alice@example.com",
            },
            &EventData::Service(ServiceSettings::from(
                crate::telephony::services::DoNotDisturb {
                    active: true,
                    ring_splash: false,
                },
            )),
        ))
        .unwrap();
        assert!(!event.contains('\n'));
        assert!(event.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><xsi:Event xmlns:xsi="http://schema.broadsoft.com/xsi" xmlns:xsi1="http://www.w3.org/2001/XMLSchema-instance" xsi1:type="xsi:SubscriptionEvent"><xsi:eventID>e1</xsi:eventID><xsi:sequenceNumber>7</xsi:sequenceNumber><xsi:userId>alice@example.com</xsi:userId>"#), "{event}");
        assert!(event.contains(r#"<xsi:eventData xsi1:type="xsi:DoNotDisturbEvent"><xsi:info><xsi:active>true</xsi:active><xsi:ringSplash>false</xsi:ringSplash></xsi:info></xsi:eventData>"#), "{event}");
    }
}
