//! Reading a peer's stream: the header, then one element at a time, each refused with
//! `policy-violation` the moment it outgrows its [`ElementLimits`] (bytes or depth), so no
//! tree past the limits is ever built.

use std::collections::BTreeMap;

use minidom::tree_builder::TreeBuilder;
use minidom::Element;
use rxml::{AsyncRawReader, RawEvent};
use tokio::io::AsyncBufRead;

use super::StreamHeader;
use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::ns;

/// The longest single token (a name or an attribute value; longer text is split into
/// parts). rxml keeps a scratch buffer of this size for every stream, so it is as small as
/// XMPP allows: a JID, the longest attribute value XMPP defines, is at most 3071 bytes
/// (RFC 7622).
const MAX_TOKEN_BYTES: usize = 3072;

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
    /// `max_bytes` (`[xmpp] max_stanza_bytes`) and the depth `limits` allow.
    pub fn new(max_bytes: usize, limits: &crate::config::LimitsConfig) -> Self {
        ElementLimits {
            max_bytes,
            max_depth: limits.max_xml_depth.get(),
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
    // The connection ended inside the stream (a FIN without `</stream:stream>`): it was
    // lost, not malformed, so a resumable session parks (XEP-0198).
    let ended = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rxml::Error>())
        .is_some_and(|inner| matches!(inner, rxml::Error::InvalidEof(_)));
    if ended {
        return XmppError::Closed;
    }
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
        self.skip_whitespace().await?;
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

    /// Drops the whitespace in front of a stream header. XML allows none before `<?xml`, but
    /// a peer's newline after its last element of the previous stream (go-xmpp writes
    /// `</auth>\n`) or a whitespace keep-alive at a restart lands there, and RFC 6120 §11.7
    /// lets whitespace sit between any two top-level elements of XMPP.
    async fn skip_whitespace(&mut self) -> Result<(), XmppError> {
        use tokio::io::AsyncBufReadExt;
        loop {
            let inner = self.reader.inner_mut();
            let buffered = inner.fill_buf().await?;
            let blanks = buffered
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            let more = blanks == buffered.len() && blanks > 0;
            inner.consume(blanks);
            if !more {
                return Ok(());
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::xmpp::stream) async fn read_all(
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

    pub(in crate::xmpp::stream) const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='bridge.example.com'>";

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

    /// go-xmpp writes `</auth>\n`; that newline, a keep-alive or a newline before the first
    /// header reach the parser of a new document.
    #[tokio::test]
    async fn whitespace_before_a_header_and_around_a_restart_is_ignored() {
        let input = format!("\r\n \n{OPEN}<auth/>\n \t\n{OPEN}\n<iq id='2'/>");
        let limits = ElementLimits {
            max_bytes: 1024,
            max_depth: 64,
        };
        // Also one byte at a time, so the whitespace arrives after the reset too.
        let (mut trickle, far_end) = tokio::io::duplex(1);
        let bytes = input.clone().into_bytes();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for byte in bytes {
                let _ = trickle.write_all(&[byte]).await;
            }
        });
        for source in [
            Box::new(std::io::Cursor::new(input.clone().into_bytes()))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(far_end),
        ] {
            let mut reader = StreamReader::new(tokio::io::BufReader::new(source), limits);
            reader.read_header().await.unwrap();
            let auth = reader.read_element().await.unwrap().unwrap();
            assert_eq!(auth.name(), "auth");
            reader.reset();
            reader.read_header().await.unwrap();
            let iq = reader.read_element().await.unwrap().unwrap();
            assert_eq!(iq.attr("id"), Some("2"));
        }
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
}
