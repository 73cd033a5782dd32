//! Writing a stream: the header, elements walked into one rxml encoder per stream, stream
//! errors and the footer, each flush bounded by the write timeout; and moving a stanza
//! between the two stanza namespaces (`jabber:client` ↔ `jabber:component:accept`).

use std::time::Duration;

use minidom::{Element, Node};
use rxml::writer::{Encoder, Item, SimpleNamespaces, TrackNamespace};
use rxml::{Namespace, NcName, NcNameStr};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::ns;

/// Writes a stream header, elements and the stream end to `W`.
pub struct StreamWriter<W> {
    inner: W,
    /// A peer that accepts no bytes for this long is gone (see [`StreamWriter::flush`]).
    write_timeout: Duration,
    encoder: Encoder<SimpleNamespaces>,
    buffer: rxml::bytes::BytesMut,
    default_ns: String,
}

impl<W> std::fmt::Debug for StreamWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("default_ns", &self.default_ns)
            .finish_non_exhaustive()
    }
}

fn name(s: &str) -> Result<NcName, XmppError> {
    NcName::try_from(s.to_owned()).map_err(|e| {
        XmppError::stream(
            StreamCondition::InternalServerError,
            format!("bad name {s}: {e}"),
        )
    })
}

const STREAM_NAME: &NcNameStr = rxml::xml_ncname!("stream");

/// How long a write waits for a peer that takes no bytes, unless configured.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The error of a write the peer did not take within `limit`.
pub fn stalled(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the peer took no data for {} s", limit.as_secs()),
    )
}

fn stream_encoder(default_ns: &str) -> Encoder<SimpleNamespaces> {
    let mut encoder = Encoder::new();
    encoder
        .ns_tracker_mut()
        .declare_fixed(Some(STREAM_NAME), ns::STREAM.into());
    encoder
        .ns_tracker_mut()
        .declare_fixed(None, default_ns.to_owned().into());
    encoder
}

impl<W: AsyncWrite + Unpin> StreamWriter<W> {
    /// A writer for a stream whose default namespace is `default_ns`.
    pub fn new(inner: W, default_ns: &str) -> Self {
        StreamWriter {
            inner,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            encoder: stream_encoder(default_ns),
            buffer: rxml::bytes::BytesMut::new(),
            default_ns: default_ns.to_owned(),
        }
    }

    /// Sets how long a write may wait for the peer to take bytes.
    pub fn with_write_timeout(mut self, limit: Duration) -> Self {
        self.write_timeout = limit;
        self
    }

    /// Starts a new document (stream restart): the next header is written from scratch.
    pub fn reset(&mut self) {
        self.encoder = stream_encoder(&self.default_ns);
    }

    /// The transport, for STARTTLS (anything queued and not flushed is dropped).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The stream's default namespace.
    pub fn default_ns(&self) -> &str {
        &self.default_ns
    }

    fn encode(&mut self, item: Item<'_>) -> Result<(), XmppError> {
        self.encoder
            .encode_into_bytes(item, &mut self.buffer)
            .map_err(|e| XmppError::stream(StreamCondition::InternalServerError, e.to_string()))
    }

    /// Queues the response header (`from`, `id`, optional `version`).
    pub fn header(&mut self, from: &str, id: &str, version: Option<&str>) -> Result<(), XmppError> {
        let mut attrs = vec![
            (rxml::xml_ncname!("from"), from),
            (rxml::xml_ncname!("id"), id),
        ];
        if let Some(version) = version {
            attrs.push((rxml::xml_ncname!("version"), version));
        }
        self.open_stream(&attrs)
    }

    /// Queues the header a client (or a component) opens its stream with:
    /// `<stream:stream to=… version='1.0'>`.
    pub fn initiating_header(&mut self, to: &str) -> Result<(), XmppError> {
        self.open_stream(&[
            (rxml::xml_ncname!("to"), to),
            (rxml::xml_ncname!("version"), "1.0"),
        ])
    }

    fn open_stream(&mut self, attrs: &[(&NcNameStr, &str)]) -> Result<(), XmppError> {
        self.encode(Item::XmlDeclaration(rxml::XmlVersion::V1_0))?;
        self.encode(Item::ElementHeadStart(
            Namespace::from(ns::STREAM),
            STREAM_NAME,
        ))?;
        for (name, value) in attrs {
            self.encode(Item::Attribute(Namespace::NONE, name, value))?;
        }
        self.encode(Item::ElementHeadEnd)
    }

    /// Queues one element.
    pub fn element(&mut self, element: &Element) -> Result<(), XmppError> {
        let element_name = name(element.name())?;
        self.encode(Item::ElementHeadStart(
            Namespace::from(element.ns()),
            &element_name,
        ))?;
        for ((attr_ns, attr_name), value) in element.attrs().iter() {
            self.encode(Item::Attribute(attr_ns.clone(), attr_name, value))?;
        }
        self.encode(Item::ElementHeadEnd)?;
        for node in element.nodes() {
            match node {
                Node::Element(child) => self.element(child)?,
                Node::Text(text) => self.encode(Item::Text(text))?,
            }
        }
        self.encode(Item::ElementFoot)
    }

    /// Queues a stream error: `<stream:error><condition/><text>…</text></stream:error>`.
    pub fn error(
        &mut self,
        condition: StreamCondition,
        text: Option<&str>,
    ) -> Result<(), XmppError> {
        let mut error = Element::builder("error", ns::STREAM)
            .append(Element::builder(condition.as_str(), ns::STREAMS_ERRORS).build());
        if let Some(text) = text {
            error = error.append(
                Element::builder("text", ns::STREAMS_ERRORS)
                    .append(text)
                    .build(),
            );
        }
        self.element(&error.build())
    }

    /// Queues `</stream:stream>`.
    pub fn footer(&mut self) -> Result<(), XmppError> {
        self.encode(Item::ElementFoot)
    }

    /// Writes everything queued and flushes. A peer that takes no bytes for the write
    /// timeout (it stopped reading, or its network is gone) is an I/O error (`TimedOut`):
    /// the session ends (or, with XEP-0198, is parked) instead of waiting forever.
    pub async fn flush(&mut self) -> Result<(), XmppError> {
        let limit = self.write_timeout;
        let written = tokio::time::timeout(limit, async {
            if !self.buffer.is_empty() {
                // Taken whole, so the allocation goes once written: idle streams keep no buffer.
                let bytes = std::mem::take(&mut self.buffer);
                self.inner.write_all(&bytes).await?;
            }
            self.inner.flush().await
        })
        .await;
        match written {
            Ok(result) => Ok(result?),
            Err(_) => Err(XmppError::Io(stalled(limit))),
        }
    }

    /// Shuts the transport down (TLS close_notify).
    pub async fn shutdown(&mut self) -> Result<(), XmppError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}

/// `stanza` as a stream in `stream_ns` writes it: a stanza in the other stanza namespace
/// (`jabber:client` ↔ `jabber:component:accept`) is moved over, anything else is as is.
pub fn for_stream<'a>(stanza: &'a Element, stream_ns: &str) -> std::borrow::Cow<'a, Element> {
    let other = if stream_ns == ns::CLIENT {
        ns::COMPONENT
    } else {
        ns::CLIENT
    };
    if stanza.ns() == other {
        std::borrow::Cow::Owned(retarget_namespace(stanza, other, stream_ns))
    } else {
        std::borrow::Cow::Borrowed(stanza)
    }
}

/// Moves a stanza from one stream namespace to another: the stanza element and every
/// descendant in `from_ns` (the stanza's own `<error/>`, `<body/>` …) take `to_ns`;
/// payloads in other namespaces are untouched.
pub fn retarget_namespace(element: &Element, from_ns: &str, to_ns: &str) -> Element {
    let ns = if element.ns() == from_ns {
        to_ns.to_owned()
    } else {
        element.ns()
    };
    let mut builder = Element::builder(element.name(), ns);
    for ((attr_ns, attr_name), value) in element.attrs().iter() {
        if attr_ns.is_none() {
            builder = builder.attr(attr_name.clone(), value.clone());
        } else {
            builder = builder.attr_ns(attr_ns.clone(), attr_name.clone(), value.clone());
        }
    }
    for node in element.nodes() {
        builder = match node {
            Node::Element(child) => builder.append(retarget_namespace(child, from_ns, to_ns)),
            Node::Text(text) => builder.append(text.clone()),
        };
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::stream::reader::tests::{read_all, OPEN};

    #[tokio::test]
    async fn writes_stanzas_that_read_back_identically() {
        let mut out = Vec::new();
        {
            let mut writer = StreamWriter::new(&mut out, "jabber:component:accept");
            writer.header("bridge.example.com", "abc123", None).unwrap();
            let stanza = Element::builder("message", "jabber:component:accept")
                .attr(rxml::xml_ncname!("to").to_owned(), "a@example.com")
                .append(
                    Element::builder("body", "jabber:component:accept")
                        .append("<&>'\"")
                        .build(),
                )
                .append(
                    Element::builder("x", "urn:example:payload")
                        .attr(rxml::xml_ncname!("k").to_owned(), "v")
                        .build(),
                )
                .build();
            writer.element(&stanza).unwrap();
            writer
                .error(StreamCondition::Conflict, Some("replaced"))
                .unwrap();
            writer.footer().unwrap();
            writer.flush().await.unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("<?xml version='1.0'"), "{text}");
        assert!(
            text.contains("<message to="),
            "stanzas use the stream's default namespace: {text}"
        );
        let (header, elements) = read_all(&text, 4096).await;
        assert_eq!(
            header.unwrap().default_ns.as_deref(),
            Some("jabber:component:accept")
        );
        let message = elements[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            message
                .get_child("body", "jabber:component:accept")
                .unwrap()
                .text(),
            "<&>'\""
        );
        assert_eq!(
            message
                .get_child("x", "urn:example:payload")
                .unwrap()
                .attr("k"),
            Some("v")
        );
        let error = elements[1].as_ref().unwrap().as_ref().unwrap();
        assert!(error.is("error", ns::STREAM));
        assert!(error.has_child("conflict", ns::STREAMS_ERRORS));
        assert!(matches!(elements[2], Ok(None)));
    }

    #[tokio::test]
    async fn redeclared_prefixes_are_written_without_panicking() {
        let input = format!("{OPEN}<message xmlns:x='urn:a'><x:a><x:b xmlns:x='urn:a'/><x:c xmlns:x='urn:b'/></x:a></message>");
        let (_, elements) = read_all(&input, 4096).await;
        let stanza = elements[0].as_ref().unwrap().as_ref().unwrap().clone();
        let mut out = Vec::new();
        let mut writer = StreamWriter::new(&mut out, "jabber:component:accept");
        writer.header("h", "i", None).unwrap();
        writer.element(&stanza).unwrap();
        writer.flush().await.unwrap();
        drop(writer);
        let (_, again) = read_all(&String::from_utf8(out).unwrap(), 4096).await;
        let again = again[0].as_ref().unwrap().as_ref().unwrap();
        let a = again.get_child("a", "urn:a").unwrap();
        assert!(a.has_child("b", "urn:a") && a.has_child("c", "urn:b"));
    }

    #[test]
    fn retargets_the_stanza_namespace_and_keeps_payloads() {
        let stanza = Element::builder("message", "jabber:client")
            .attr(rxml::xml_ncname!("to").to_owned(), "x")
            .append(
                Element::builder("body", "jabber:client")
                    .append("hi")
                    .build(),
            )
            .append(Element::builder("dial", "urn:xmpp:rayo:1").build())
            .build();
        let moved = retarget_namespace(&stanza, "jabber:client", "jabber:component:accept");
        assert!(moved.is("message", "jabber:component:accept"));
        assert!(moved.has_child("body", "jabber:component:accept"));
        assert!(moved.has_child("dial", "urn:xmpp:rayo:1"));
        assert_eq!(moved.attr("to"), Some("x"));
    }
}
