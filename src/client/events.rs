//! The event channel, kept alive the way the Webex app keeps it:
//!
//! ```text
//! open    POST /com.broadsoft.async/com.broadsoft.xsi-events/v2.0/channel   (streamed)
//!         ← Channel{channelId}, then events and heartbeats, one document per chunk
//! every heartbeat_every: PUT …/v2.0/channel/{id}/heartbeat
//!         two failures in a row (no 200) → open a new channel in the same set
//! each event: POST …/v2.0/channel/eventresponse  EventResponse{eventID, 200}
//! ChannelTerminatedEvent, or the stream ends → open a new channel in the same set
//! ```
//!
//! Subscriptions belong to the channel set, so a rebuilt channel keeps receiving them, and
//! the server keeps the set's events while it has no channel: nothing is lost across a
//! rebuild. Every request goes through the client's failover rules, so a rebuilt channel
//! may well be on another node.

use std::time::Duration;

use quick_xml::events::Event as Xml;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ClientError, Health, Transport, XsiClient, XsiRequest, XsiResponse};
use crate::xsi::events::documents::{Channel, EventResponse};

const ASYNC_CHANNEL: &str = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0/channel";
const EVENTS: &str = "/com.broadsoft.xsi-events/v2.0/channel";

/// What the channel is and how it is kept.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// The channel set (the subscriptions name it).
    pub channel_set_id: String,
    /// The `Authorization` header of every request.
    pub authorization: String,
    /// The lifetime asked for. Default 3600 s.
    pub expires_secs: u64,
    /// Between heartbeats. Default 15 s.
    pub heartbeat_every: Duration,
    /// Failed heartbeats in a row that rebuild the channel. Default 2.
    pub failed_heartbeats: u32,
    /// Wait before opening again after an open failed. Default 1 s.
    pub retry_after: Duration,
}

impl ChannelOptions {
    /// Options with the defaults for `channel_set_id`, authenticating with `authorization`.
    pub fn new(channel_set_id: &str, authorization: &str) -> Self {
        ChannelOptions {
            channel_set_id: channel_set_id.to_owned(),
            authorization: authorization.to_owned(),
            expires_secs: 3600,
            heartbeat_every: Duration::from_secs(15),
            failed_heartbeats: 2,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// What the channel tells the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A channel is open.
    Opened {
        /// Its id.
        channel_id: String,
    },
    /// An event arrived (and was acknowledged); one the server sends again is told once.
    Event {
        /// Its `eventID`.
        event_id: String,
        /// Its `sequenceNumber` in the channel set.
        sequence: Option<u32>,
        /// The type of its `eventData`: `DoNotDisturbEvent`, `CallReceivedEvent` …
        kind: String,
        /// The call it is about, for call events.
        call_id: Option<String>,
        /// The whole document.
        document: String,
    },
    /// The channel ended and a new one is being opened.
    Rebuilding {
        /// Why, in words.
        reason: String,
    },
}

/// An open channel (see [`XsiClient::open_channel`]).
#[derive(Debug)]
pub struct OpenChannel {
    /// Its id (which names the node that owns it, on Bridgehead).
    pub channel_id: String,
    /// The `Set-Cookie` values of the answer that opened it (the owner's affinity cookie).
    pub set_cookies: Vec<String>,
    /// The documents after the `Channel`: events, heartbeats, the end.
    pub documents: mpsc::Receiver<Vec<u8>>,
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The request failed on every attempt.
    #[error(transparent)]
    Request(#[from] ClientError),
    /// The XSP answered, but not 200.
    #[error("opening the channel answered HTTP {0}")]
    Refused(u16),
    /// The answer was not a stream.
    #[error("the channel answer was not streamed")]
    NotStreamed,
    /// The stream did not start with a `Channel` document.
    #[error("{0}")]
    NoChannel(String),
}

/// What one document on the stream is.
#[derive(Debug, PartialEq, Eq)]
enum Document {
    Channel { id: String },
    Event(Outline),
    Terminated,
    Other,
}

/// The parts of an `xsi:Event` an app looks at first.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outline {
    event_id: String,
    sequence: Option<u32>,
    kind: String,
    call_id: Option<String>,
}

/// Reads one document: its root, its `xsi1:type`, and the first `channelId`, `eventID`,
/// `sequenceNumber`, `eventData` type and `callId` in it.
fn classify(document: &str) -> Document {
    let mut reader = quick_xml::NsReader::from_str(document);
    let (mut root, mut root_type) = (None, String::new());
    let (mut channel_id, mut event_id) = (None, None);
    let mut outline = Outline::default();
    let mut open: Option<String> = None;
    let type_of = |element: &quick_xml::events::BytesStart<'_>| {
        element
            .attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == b"type")
            .map(|a| {
                let value = String::from_utf8_lossy(&a.value).into_owned();
                // `xsi:CallReceivedEvent` → `CallReceivedEvent`.
                match value.split_once(':') {
                    Some((_, local)) => local.to_owned(),
                    None => value,
                }
            })
            .unwrap_or_default()
    };
    loop {
        match reader.read_event() {
            Ok(Xml::Start(element)) | Ok(Xml::Empty(element)) => {
                let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
                if root.is_none() {
                    root_type = type_of(&element);
                    root = Some(local);
                    continue;
                }
                if local == "eventData" && outline.kind.is_empty() {
                    outline.kind = type_of(&element);
                }
                open = Some(local);
            }
            Ok(Xml::Text(text)) => {
                let value = text
                    .decode()
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_default();
                match open.take().as_deref() {
                    Some("channelId") if channel_id.is_none() => channel_id = Some(value),
                    Some("eventID") if event_id.is_none() => event_id = Some(value),
                    Some("sequenceNumber") => outline.sequence = value.parse().ok(),
                    Some("callId") if outline.call_id.is_none() => outline.call_id = Some(value),
                    _ => {}
                }
            }
            Ok(Xml::End(_)) => open = None,
            Ok(Xml::Eof) | Err(_) => break,
            _ => {}
        }
    }
    match (root.as_deref(), channel_id, event_id) {
        (Some("Channel"), Some(id), _) => Document::Channel { id },
        _ if root_type == "ChannelTerminatedEvent" => Document::Terminated,
        (_, _, Some(id)) => Document::Event(Outline {
            event_id: id,
            ..outline
        }),
        _ => Document::Other,
    }
}

/// The event ids told to the app lately, so an event the server sends again (its
/// acknowledgement was lost, or it moved to a rebuilt channel) is acknowledged again but
/// told once.
#[derive(Debug, Default)]
struct Seen(std::collections::VecDeque<String>);

impl Seen {
    /// How many ids are kept.
    const KEPT: usize = 256;

    /// True the first time `id` is seen.
    fn first(&mut self, id: &str) -> bool {
        if self.0.iter().any(|known| known == id) {
            return false;
        }
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back(id.to_owned());
        true
    }
}

impl<T: Transport> XsiClient<T> {
    /// Keeps an event channel open until `stop`, sending [`Notice`]s to `notices` (see the
    /// module docs). Deletes the channel when stopped.
    pub async fn run_channel(
        &self,
        options: ChannelOptions,
        notices: mpsc::Sender<Notice>,
        stop: CancellationToken,
    ) {
        let mut seen = Seen::default();
        while !stop.is_cancelled() {
            // One channel ends on `stop` by itself (deleting it on the way out).
            let reason = self.one_channel(&options, &notices, &stop, &mut seen).await;
            if stop.is_cancelled() {
                break;
            }
            self.update_status(|s| s.events = Health::Red);
            if notices.send(Notice::Rebuilding { reason }).await.is_err() {
                break;
            }
        }
    }

    /// Opens a channel in `options`' set: the streamed `POST`, then its first document,
    /// the `Channel` with its id (within the attempt timeout).
    pub async fn open_channel(
        &self,
        options: &ChannelOptions,
    ) -> Result<OpenChannel, ChannelError> {
        let body = crate::xsi::codec::to_xml(
            &Channel {
                xmlns: crate::xsi::model::XSI_NS,
                channel_set_id: Some(options.channel_set_id.clone()),
                priority: Some(1),
                weight: Some(100),
                expires: Some(options.expires_secs),
                ..Default::default()
            },
            None,
        )
        .unwrap_or_default()
        .into_bytes();
        let mut open = XsiRequest::xml(
            "POST",
            ASYNC_CHANNEL.to_owned(),
            &options.authorization,
            body,
        );
        open.streamed = true;
        let response = self.request(open).await?;
        if response.status != 200 {
            return Err(ChannelError::Refused(response.status));
        }
        let mut documents = response.stream.ok_or(ChannelError::NotStreamed)?;
        let first = tokio::time::timeout(self.timings.attempt_timeout, documents.recv()).await;
        match first {
            Ok(Some(chunk)) => match classify(&String::from_utf8_lossy(&chunk)) {
                Document::Channel { id } => Ok(OpenChannel {
                    channel_id: id,
                    set_cookies: response.set_cookies,
                    documents,
                }),
                _ => Err(ChannelError::NoChannel(
                    "the first document on the stream is not a Channel".into(),
                )),
            },
            Ok(None) => Err(ChannelError::NoChannel("the stream ended".into())),
            Err(_) => Err(ChannelError::NoChannel(format!(
                "no Channel document within {:?}",
                self.timings.attempt_timeout
            ))),
        }
    }

    /// One heartbeat on channel `channel_id` (200 when the owner kept it).
    pub async fn heartbeat(
        &self,
        channel_id: &str,
        options: &ChannelOptions,
    ) -> Result<XsiResponse, ClientError> {
        self.request(XsiRequest::xml(
            "PUT",
            format!("{EVENTS}/{channel_id}/heartbeat"),
            &options.authorization,
            Vec::new(),
        ))
        .await
    }

    /// Deletes channel `channel_id` (best effort: the server expires it anyway).
    pub async fn close_channel(&self, channel_id: &str, options: &ChannelOptions) {
        let delete = XsiRequest::xml(
            "DELETE",
            format!("{EVENTS}/{channel_id}"),
            &options.authorization,
            Vec::new(),
        );
        if let Err(e) = self.request(delete).await {
            tracing::debug!(error = %e, channel_id, "deleting the channel failed; it expires");
        }
    }

    /// Opens one channel and keeps it until it ends; returns why it ended.
    async fn one_channel(
        &self,
        options: &ChannelOptions,
        notices: &mpsc::Sender<Notice>,
        stop: &CancellationToken,
        seen: &mut Seen,
    ) -> String {
        let opened = tokio::select! {
            _ = stop.cancelled() => return "stopped".into(),
            opened = self.open_channel(options) => opened,
        };
        let mut channel = match opened {
            Ok(channel) => channel,
            Err(e) => {
                tokio::time::sleep(options.retry_after).await;
                return e.to_string();
            }
        };
        self.update_status(|s| s.events = Health::Green);
        let _ = notices
            .send(Notice::Opened {
                channel_id: channel.channel_id.clone(),
            })
            .await;
        let mut failed = 0;
        let mut heartbeat = tokio::time::interval(options.heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.close_channel(&channel.channel_id, options).await;
                    return "stopped".into();
                }
                chunk = channel.documents.recv() => {
                    let Some(chunk) = chunk else { return "the channel's stream ended".into() };
                    let document = String::from_utf8_lossy(&chunk).into_owned();
                    match classify(&document) {
                        Document::Event(outline) => {
                            self.acknowledge(&outline.event_id, options).await;
                            if seen.first(&outline.event_id) {
                                let _ = notices.send(Notice::Event {
                                    event_id: outline.event_id,
                                    sequence: outline.sequence,
                                    kind: outline.kind,
                                    call_id: outline.call_id,
                                    document,
                                }).await;
                            }
                        }
                        Document::Terminated => return "the server ended the channel".into(),
                        Document::Channel { .. } | Document::Other => {}
                    }
                }
                _ = heartbeat.tick() => {
                    match self.heartbeat(&channel.channel_id, options).await {
                        Ok(response) if response.status == 200 => failed = 0,
                        _ => {
                            failed += 1;
                            if failed >= options.failed_heartbeats {
                                return format!("{failed} heartbeats in a row failed");
                            }
                        }
                    }
                }
            }
        }
    }

    async fn acknowledge(&self, event_id: &str, options: &ChannelOptions) {
        let body = crate::xsi::codec::to_xml(
            &EventResponse {
                xmlns: crate::xsi::model::XSI_NS,
                event_id: event_id.to_owned(),
                status_code: 200,
                reason: Some("OK".into()),
            },
            None,
        )
        .unwrap_or_default()
        .into_bytes();
        let ack = XsiRequest::xml(
            "POST",
            format!("{EVENTS}/eventresponse"),
            &options.authorization,
            body,
        );
        if let Err(e) = self.request(ack).await {
            tracing::debug!(error = %e, event_id, "acknowledgement failed; the server sends it again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_apart() {
        assert_eq!(
            classify("<?xml version=\"1.0\"?><Channel xmlns=\"http://schema.broadsoft.com/xsi\"><channelId>n:1</channelId><expires>3600</expires></Channel>"),
            Document::Channel { id: "n:1".into() }
        );
        assert_eq!(
            classify("<xsi:Event xmlns:xsi=\"http://schema.broadsoft.com/xsi\" xmlns:xsi1=\"http://www.w3.org/2001/XMLSchema-instance\" xsi1:type=\"xsi:SubscriptionEvent\"><xsi:eventID>e1</xsi:eventID><xsi:sequenceNumber>7</xsi:sequenceNumber><xsi:channelId>n:1</xsi:channelId><xsi:eventData xsi1:type=\"xsi:CallReceivedEvent\"><xsi:call><xsi:callId>callhalf-3</xsi:callId></xsi:call></xsi:eventData></xsi:Event>"),
            Document::Event(Outline {
                event_id: "e1".into(),
                sequence: Some(7),
                kind: "CallReceivedEvent".into(),
                call_id: Some("callhalf-3".into()),
            })
        );
        assert_eq!(
            classify("<xsi:Event xmlns:xsi=\"http://schema.broadsoft.com/xsi\" xmlns:xsi1=\"http://www.w3.org/2001/XMLSchema-instance\" xsi1:type=\"xsi:ChannelTerminatedEvent\"><xsi:channelId>n:1</xsi:channelId></xsi:Event>"),
            Document::Terminated
        );
        assert_eq!(
            classify("<xsi:ChannelHeartBeat xmlns:xsi=\"http://schema.broadsoft.com/xsi\"/>"),
            Document::Other
        );
    }

    #[test]
    fn an_event_sent_again_is_told_once() {
        let mut seen = Seen::default();
        assert!(seen.first("e1"));
        assert!(!seen.first("e1"));
        for n in 0..Seen::KEPT {
            assert!(seen.first(&format!("x{n}")));
        }
        assert!(seen.first("e1"), "the oldest ids are forgotten");
    }
}
