//! XML stream framing on the server side, for streams of any default namespace.
//!
//! Reading: rxml's restricted parser (no DTDs, no entity declarations, so no entity bombs;
//! a bounded token length) produces raw events, minidom's `TreeBuilder` turns them into
//! elements. The stream header stays at depth 1; each complete child element is taken off
//! it as soon as it closes. Whitespace between stanzas (keep-alives) is dropped, not kept.
//! Every event reports how many bytes it consumed, so a stanza larger than the limit is
//! refused with `policy-violation` while it is still arriving; so is a stanza nested deeper
//! than `[limits] max_xml_depth`, the moment its first too-deep child opens. No tree deeper
//! than that limit is ever built, so the recursive work done on stanzas later (cloning,
//! namespace moves, writing, dropping) is bounded by it. Text longer than
//! [`MAX_TOKEN_BYTES`] arrives in parts that the tree joins; a longer name or attribute
//! value is not well-formed here.
//!
//! Writing: one rxml `Encoder` per stream. The header declares the `stream` prefix and the
//! stream's default namespace; stanzas are written by walking the minidom tree into the
//! same encoder, which escapes text and declares any other namespace where it is needed.
//!
//! Stanzas stay namespace-agnostic elements here: routing looks at `to`, `from`, `type`
//! and `id` only, and the session at the other end rewrites the stanza namespace
//! ([`retarget_namespace`]) before writing it into its own stream.

use std::collections::BTreeMap;
use std::time::Duration;

use minidom::tree_builder::TreeBuilder;
use minidom::{Element, Node};
use rxml::writer::{Encoder, Item, SimpleNamespaces, TrackNamespace};
use rxml::{AsyncRawReader, Namespace, NcName, NcNameStr, RawEvent};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};

use super::error::{StreamCondition, XmppError};
use super::ns;

/// The longest single token (a name or an attribute value; longer text is split into
/// parts). rxml keeps a scratch buffer of this size for every stream, so it is as small as
/// XMPP allows: a JID, the longest attribute value XMPP defines, is at most 3071 bytes
/// (RFC 7622).
const MAX_TOKEN_BYTES: usize = 3072;

/// The opening `<stream:stream>` as the peer sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// The default namespace (`jabber:component:accept`, `jabber:client`, …).
    pub default_ns: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `from`.
    pub from: Option<String>,
    /// `id`.
    pub id: Option<String>,
    /// `version`.
    pub version: Option<String>,
}

/// What one element from a peer may be: its size while it arrives and how deep it nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementLimits {
    /// Bytes of one stanza (`[xmpp] max_stanza_bytes`).
    pub max_bytes: usize,
    /// Nesting depth of one stanza, the stanza element itself being depth 1
    /// (`[limits] max_xml_depth`).
    pub max_depth: usize,
}

impl ElementLimits {
    /// The limits the configuration sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        ElementLimits {
            max_bytes: config.xmpp.max_stanza_bytes,
            max_depth: config.limits.max_xml_depth.get(),
        }
    }
}

/// One element under construction from parser events, refused as soon as it outgrows its
/// [`ElementLimits`].
struct ElementBuilder {
    tree: TreeBuilder,
    bytes: usize,
}

impl ElementBuilder {
    fn new(prefixes: BTreeMap<Option<String>, String>) -> Self {
        ElementBuilder {
            tree: TreeBuilder::new().with_prefixes_stack(vec![prefixes.into()]),
            bytes: 0,
        }
    }

    /// Takes one event; the element once its end tag was read.
    fn push(
        &mut self,
        event: RawEvent,
        limits: &ElementLimits,
    ) -> Result<Option<Element>, XmppError> {
        self.bytes += event.metrics().len();
        if self.bytes > limits.max_bytes {
            return Err(XmppError::stream(
                StreamCondition::PolicyViolation,
                format!("a stanza exceeded {} bytes", limits.max_bytes),
            ));
        }
        let closes_element = matches!(event, RawEvent::ElementFoot(_));
        self.tree
            .process_event(event)
            .map_err(|e| XmppError::stream(StreamCondition::NotWellFormed, e.to_string()))?;
        if self.tree.depth() > limits.max_depth {
            crate::telemetry::limit_refusal("xml_depth");
            return Err(XmppError::stream(
                StreamCondition::PolicyViolation,
                format!("a stanza nested deeper than {} elements", limits.max_depth),
            ));
        }
        Ok(if closes_element && self.tree.depth() == 0 {
            self.tree.root.take()
        } else {
            None
        })
    }
}

/// Parses one whole element (an XMPP-over-WebSocket message) under `limits`: what comes
/// after the element may only be whitespace.
pub fn parse_element(text: &str, limits: &ElementLimits) -> Result<Element, XmppError> {
    let not_well_formed = |e: rxml::error::EndOrError| {
        let detail = match e {
            rxml::error::EndOrError::NeedMoreData => "the message ends inside an element".into(),
            rxml::error::EndOrError::Error(e) => e.to_string(),
        };
        XmppError::stream(StreamCondition::NotWellFormed, detail)
    };
    let mut parser =
        <rxml::RawParser as rxml::WithOptions>::with_options(parser_options(limits.max_bytes));
    let mut builder = ElementBuilder::new(BTreeMap::new());
    let mut input = text.as_bytes();
    loop {
        let event = rxml::Parse::parse(&mut parser, &mut input, true).map_err(not_well_formed)?;
        match event {
            None => {
                return Err(XmppError::stream(
                    StreamCondition::NotWellFormed,
                    "the message ends inside an element",
                ))
            }
            Some(RawEvent::XmlDeclaration(..)) => continue,
            Some(RawEvent::Text(..)) if builder.tree.depth() == 0 => continue,
            Some(event) => {
                if let Some(element) = builder.push(event, limits)? {
                    if !input.iter().all(u8::is_ascii_whitespace) {
                        return Err(XmppError::stream(
                            StreamCondition::NotWellFormed,
                            "more than one element in a message",
                        ));
                    }
                    return Ok(element);
                }
            }
        }
    }
}

/// Reads a stream header and then elements from `R`.
pub struct StreamReader<R> {
    reader: AsyncRawReader<R>,
    /// The namespace prefixes the stream header declared; every stanza starts from them.
    prefixes: BTreeMap<Option<String>, String>,
    /// The stanza being built; `None` between stanzas.
    stanza: Option<ElementBuilder>,
    limits: ElementLimits,
    /// A stanza just ended: the parser holds nothing until more bytes come.
    between_stanzas: bool,
}

impl<R> std::fmt::Debug for StreamReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The parser settings of every stream: no token longer than [`MAX_TOKEN_BYTES`].
fn parser_options(max_stanza_bytes: usize) -> rxml::Options {
    rxml::Options {
        max_token_length: MAX_TOKEN_BYTES.min(max_stanza_bytes),
        ..Default::default()
    }
}

fn parse_error(e: std::io::Error) -> XmppError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        XmppError::stream(StreamCondition::NotWellFormed, e.to_string())
    } else {
        XmppError::Io(e)
    }
}

impl<R: AsyncBufRead + Unpin> StreamReader<R> {
    /// Wraps `inner`; stanzas over `limits` are refused.
    pub fn new(inner: R, limits: ElementLimits) -> Self {
        StreamReader {
            reader: AsyncRawReader::with_options(inner, parser_options(limits.max_bytes)),
            prefixes: BTreeMap::new(),
            stanza: None,
            limits,
            between_stanzas: false,
        }
    }

    /// Starts a new document on the same transport (the stream restart after STARTTLS or
    /// SASL): a fresh parser and tree. Bytes the old parser had buffered are dropped, which
    /// is what RFC 6120 §5.3.3 asks for after STARTTLS.
    pub fn reset(&mut self) {
        *self.reader.parser_mut() = <rxml::RawParser as rxml::WithOptions>::with_options(
            parser_options(self.limits.max_bytes),
        );
        self.prefixes = BTreeMap::new();
        self.stanza = None;
        self.between_stanzas = false;
    }

    /// The transport, for STARTTLS.
    pub fn into_inner(self) -> R {
        self.reader.into_inner().0
    }

    async fn next_event(&mut self) -> Result<RawEvent, XmppError> {
        match self.reader.read().await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(XmppError::Closed),
            Err(e) => Err(parse_error(e)),
        }
    }

    /// Reads up to the end of the peer's stream header. The header is not kept as an
    /// element: only its addresses and its namespace declarations, which every stanza's tree
    /// starts from.
    pub async fn read_header(&mut self) -> Result<StreamHeader, XmppError> {
        let mut header = StreamHeader::default();
        let mut declared: BTreeMap<Option<String>, String> = BTreeMap::new();
        let mut stream_prefix = None;
        loop {
            match self.next_event().await? {
                RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                    if name.as_str() != "stream" {
                        return Err(XmppError::stream(
                            StreamCondition::BadFormat,
                            format!("expected <stream:stream>, got <{name}>"),
                        ));
                    }
                    stream_prefix = Some(prefix.map(|p| p.as_str().to_owned()));
                }
                RawEvent::Attribute(_, (None, name), value) => {
                    let slot = match name.as_str() {
                        "xmlns" => {
                            declared.insert(None, value.clone());
                            &mut header.default_ns
                        }
                        "to" => &mut header.to,
                        "from" => &mut header.from,
                        "id" => &mut header.id,
                        "version" => &mut header.version,
                        _ => continue,
                    };
                    *slot = Some(value);
                }
                RawEvent::Attribute(_, (Some(prefix), name), value)
                    if prefix.as_str() == "xmlns" =>
                {
                    declared.insert(Some(name.as_str().to_owned()), value);
                }
                RawEvent::ElementHeadClose(_) => {
                    let Some(prefix) = stream_prefix else {
                        return Err(XmppError::stream(
                            StreamCondition::BadFormat,
                            "no stream element",
                        ));
                    };
                    let stream_ns = declared.get(&prefix).map(String::as_str);
                    if stream_ns != Some(ns::STREAM) {
                        return Err(XmppError::stream(
                            StreamCondition::InvalidNamespace,
                            format!("the stream element is in namespace {stream_ns:?}"),
                        ));
                    }
                    self.prefixes = declared;
                    return Ok(header);
                }
                _ => {}
            }
        }
    }

    /// Between stanzas, when no byte is waiting: the parser's scratch buffers are released
    /// and the parser is not touched until bytes arrive (polling it would reserve them
    /// again). An idle stream so costs no parser buffers. Cancel-safe.
    async fn wait_between_stanzas(&mut self) -> Result<(), XmppError> {
        let waiting = std::future::poll_fn(|cx| {
            let inner = std::pin::Pin::new(self.reader.inner_mut());
            std::task::Poll::Ready(inner.poll_fill_buf(cx).is_pending())
        })
        .await;
        if waiting {
            rxml::Parse::release_temporaries(self.reader.parser_mut());
            tokio::io::AsyncBufReadExt::fill_buf(self.reader.inner_mut()).await?;
        }
        self.between_stanzas = false;
        Ok(())
    }

    /// Reads the next top-level element; `None` when the peer closed the stream.
    pub async fn read_element(&mut self) -> Result<Option<Element>, XmppError> {
        if self.between_stanzas {
            self.wait_between_stanzas().await?;
        }
        loop {
            let event = self.next_event().await?;
            let stanza = match &mut self.stanza {
                Some(stanza) => stanza,
                None => match event {
                    // Whitespace keep-alives between stanzas: nothing to keep.
                    RawEvent::Text(..) => continue,
                    RawEvent::ElementFoot(_) => return Ok(None),
                    _ => self
                        .stanza
                        .insert(ElementBuilder::new(self.prefixes.clone())),
                },
            };
            if let Some(element) = stanza.push(event, &self.limits)? {
                self.stanza = None;
                // An end tag is one token: nothing of the next stanza is in the parser.
                self.between_stanzas = true;
                return Ok(Some(element));
            }
        }
    }
}

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

    async fn read_all(
        input: &str,
        max: usize,
    ) -> (
        Result<StreamHeader, XmppError>,
        Vec<Result<Option<Element>, XmppError>>,
    ) {
        let limits = ElementLimits {
            max_bytes: max,
            max_depth: 64,
        };
        let mut reader = StreamReader::new(tokio::io::BufReader::new(input.as_bytes()), limits);
        let header = reader.read_header().await;
        let mut out = Vec::new();
        if header.is_ok() {
            loop {
                let next = reader.read_element().await;
                let stop = !matches!(next, Ok(Some(_)));
                out.push(next);
                if stop {
                    break;
                }
            }
        }
        (header, out)
    }

    const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='bridge.example.com'>";

    #[tokio::test]
    async fn reads_header_and_stanzas_skipping_whitespace() {
        let input = format!("{OPEN}\n  <message to='a@b' from='x@bridge.example.com'><body>hi &amp; bye</body></message> \n<iq type='get' id='1'/></stream:stream>");
        let (header, elements) = read_all(&input, 1024).await;
        let header = header.unwrap();
        assert_eq!(
            header.default_ns.as_deref(),
            Some("jabber:component:accept")
        );
        assert_eq!(header.to.as_deref(), Some("bridge.example.com"));
        let message = elements[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(message.name(), "message");
        assert_eq!(message.ns(), "jabber:component:accept");
        assert_eq!(
            message
                .get_child("body", "jabber:component:accept")
                .unwrap()
                .text(),
            "hi & bye"
        );
        assert_eq!(
            elements[1].as_ref().unwrap().as_ref().unwrap().attr("id"),
            Some("1")
        );
        assert!(
            matches!(elements[2], Ok(None)),
            "stream footer ends the stream"
        );
    }

    #[tokio::test]
    async fn refuses_a_dtd_and_entity_declarations() {
        let bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
        let (header, _) = read_all(bomb, 1024).await;
        assert!(
            matches!(
                header,
                Err(XmppError::Stream {
                    condition: StreamCondition::NotWellFormed,
                    ..
                })
            ),
            "{header:?}"
        );
        let undeclared = format!("{OPEN}<message><body>&lol;</body></message>");
        let (_, elements) = read_all(&undeclared, 1024).await;
        assert!(
            matches!(
                elements[0],
                Err(XmppError::Stream {
                    condition: StreamCondition::NotWellFormed,
                    ..
                })
            ),
            "{:?}",
            elements[0]
        );
    }

    #[tokio::test]
    async fn refuses_oversized_stanzas_while_they_arrive() {
        let big = format!("{OPEN}<message><body>{}</body></message>", "x".repeat(5000));
        let (_, elements) = read_all(&big, 1024).await;
        assert!(
            matches!(
                elements[0],
                Err(XmppError::Stream {
                    condition: StreamCondition::PolicyViolation,
                    ..
                })
            ),
            "{:?}",
            elements[0]
        );
        let many_small = format!("{OPEN}<message>{}</message>", "<a/>".repeat(400));
        let (_, elements) = read_all(&many_small, 1024).await;
        assert!(matches!(
            elements[0],
            Err(XmppError::Stream {
                condition: StreamCondition::PolicyViolation,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn refuses_a_wrong_stream_element_and_broken_xml() {
        let (header, _) = read_all("<stream xmlns='jabber:client'>", 1024).await;
        assert!(matches!(
            header,
            Err(XmppError::Stream {
                condition: StreamCondition::InvalidNamespace,
                ..
            })
        ));
        let (header, _) = read_all("<message xmlns='jabber:client'>", 1024).await;
        assert!(matches!(
            header,
            Err(XmppError::Stream {
                condition: StreamCondition::BadFormat,
                ..
            })
        ));
        let (header, _) = read_all("<stream:stream xmlns:stream='urn:wrong'>", 1024).await;
        assert!(
            matches!(
                header,
                Err(XmppError::Stream {
                    condition: StreamCondition::InvalidNamespace,
                    ..
                })
            ),
            "{header:?}"
        );
        let (_, elements) = read_all(&format!("{OPEN}<message><body></message>"), 1024).await;
        assert!(matches!(
            elements[0],
            Err(XmppError::Stream {
                condition: StreamCondition::NotWellFormed,
                ..
            })
        ));
        let (header, _) = read_all("\u{0}\u{1}garbage", 1024).await;
        assert!(header.is_err());
    }

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

    /// A random element tree: children nest, siblings widen.
    #[derive(Debug, Clone)]
    struct Tree(Vec<Tree>);

    impl Tree {
        fn depth(&self) -> usize {
            1 + self.0.iter().map(Tree::depth).max().unwrap_or(0)
        }
        fn xml(&self, out: &mut String) {
            if self.0.is_empty() {
                out.push_str("<a/>");
                return;
            }
            out.push_str("<a>");
            for child in &self.0 {
                child.xml(out);
            }
            out.push_str("</a>");
        }
    }

    fn trees() -> impl proptest::strategy::Strategy<Value = Tree> {
        use proptest::prelude::*;
        let leaf = Just(Tree(Vec::new()));
        leaf.prop_recursive(200, 2000, 6, |inner| {
            proptest::collection::vec(inner, 1..6).prop_map(Tree)
        })
    }

    /// A chain `depth` long with `width` empty siblings at every level.
    fn spine(depth: usize, width: usize) -> String {
        let mut out = String::new();
        for _ in 0..depth {
            out.push_str("<a>");
            out.push_str(&"<b/>".repeat(width));
        }
        out.push_str(&"</a>".repeat(depth));
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the shape, a stanza within the depth limit reads whole, and a deeper
        /// one is refused with policy-violation (never a crash).
        #[test]
        fn random_trees_are_read_or_refused_by_depth(tree in trees()) {
            let mut payload = String::new();
            tree.xml(&mut payload);
            let input = format!("{OPEN}<message>{payload}</message>");
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (_, elements) = runtime.block_on(read_all(&input, 1 << 22));
            let depth = tree.depth() + 1;
            let read = matches!(elements[0], Ok(Some(_)));
            let refused = matches!(
                elements[0],
                Err(XmppError::Stream { condition: StreamCondition::PolicyViolation, .. })
            );
            proptest::prop_assert_eq!((read, refused), (depth <= 64, depth > 64));
        }

        #[test]
        fn deep_and_wide_spines_are_refused_past_the_limit(depth in 1usize..200, width in 0usize..8) {
            // The message is depth 1, the chain below it, siblings one deeper than their parent.
            let within = depth + 1 + usize::from(width > 0) <= 64;
            let input = format!("{OPEN}<message>{}</message>", spine(depth, width));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (_, elements) = runtime.block_on(read_all(&input, 1 << 22));
            proptest::prop_assert_eq!(
                matches!(elements[0], Ok(Some(_))),
                within,
                "{:?}",
                elements[0].as_ref().err()
            );
            let element = parse_element(
                &format!("<message xmlns='jabber:client'>{}</message>", spine(depth, width)),
                &ElementLimits { max_bytes: 1 << 22, max_depth: 64 },
            );
            proptest::prop_assert_eq!(element.is_ok(), within);
        }
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
