//! Representations: XML (the default) or BadgerFish JSON, chosen per request, and the
//! typed reading and writing of documents in either.
//!
//! A response is JSON when the query has `format=json` or `Accept` names
//! `application/json`; XML otherwise (UTF-8, with an XML declaration). A request body is
//! JSON when its `Content-Type` is `application/json`, and XML when it is `application/xml`,
//! `text/xml` or absent. Any other type gets 415. Before a body is handed to serde, its
//! root element must be the one the resource takes, in the XSI namespace, with no DOCTYPE,
//! and no element may nest deeper than `[limits] max_xml_depth` (a JSON body, held to
//! serde_json's own nesting limit of 128 first, is checked on its XML form), so nothing
//! downstream walks an attacker-shaped tree.

use hyper::body::Bytes;
use hyper::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use quick_xml::events::{BytesDecl, Event};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;
use super::json;
use super::model::XSI_NS;
use crate::telephony::services::Node;

/// A representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// XML in the XSI namespace.
    Xml,
    /// BadgerFish JSON.
    Json,
}

impl Format {
    /// The representation the client wants back: JSON for `?format=json`, an `Accept`
    /// naming `application/json`, or a JSON body (unless `Accept` names XML); else XML.
    pub fn for_response(query: Option<&str>, headers: &HeaderMap) -> Format {
        let asked_in_query = query.is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "format" && v.eq_ignore_ascii_case("json"))
        });
        let (mut accepts_json, mut accepts_xml) = (false, false);
        for accept in headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let accept = accept.to_ascii_lowercase();
            accepts_json |= accept.contains("application/json");
            accepts_xml |= accept.contains("xml");
        }
        // A JSON body is answered in JSON, errors included, unless XML is asked for.
        let sends_json = matches!(Format::of_body(headers), Ok(Format::Json));
        if asked_in_query || accepts_json || (sends_json && !accepts_xml) {
            Format::Json
        } else {
            Format::Xml
        }
    }

    /// The representation of the request body.
    pub fn of_body(headers: &HeaderMap) -> Result<Format, ApiError> {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Ok(Format::Xml);
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType("(not text)".into()))?;
        let media = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Ok(Format::Json),
            "application/xml" | "text/xml" | "" => Ok(Format::Xml),
            _ => Err(ApiError::UnsupportedMediaType(value.to_owned())),
        }
    }

    /// The `Content-Type` of a response in this representation.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "application/xml; charset=UTF-8",
            Format::Json => "application/json; charset=UTF-8",
        }
    }
}

/// Writes `document` as XML with a declaration; `root` overrides the element name.
pub fn to_xml<T: Serialize>(document: &T, root: Option<&str>) -> Result<String, ApiError> {
    let mut out = Vec::new();
    quick_xml::Writer::new(&mut out)
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(|e| internal("XML declaration", &e))?;
    let mut xml = String::from_utf8(out).map_err(|e| internal("XML declaration", &e))?;
    let body = match root {
        Some(root) => quick_xml::se::to_string_with_root(root, document),
        None => quick_xml::se::to_string(document),
    }
    .map_err(|e| internal("XML document", &e))?;
    xml.push_str(&body);
    Ok(xml)
}

/// Writes `document` in `format`; `root` overrides the element name.
pub fn render<T: Serialize>(
    document: &T,
    root: Option<&str>,
    format: Format,
) -> Result<Bytes, ApiError> {
    encode(to_xml(document, root)?, format)
}

/// An XML document (with its declaration) in `format`.
pub fn encode(xml: String, format: Format) -> Result<Bytes, ApiError> {
    match format {
        Format::Xml => Ok(Bytes::from(xml)),
        Format::Json => {
            let value = json::xml_to_json(&xml).map_err(|e| internal("JSON document", &e))?;
            Ok(Bytes::from(value.to_string()))
        }
    }
}

fn internal(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "cannot write the {what}");
    ApiError::Internal
}

/// Reads a request body in `format` as the document whose root element is `root`, nested
/// at most `max_depth` deep.
pub fn parse<T: DeserializeOwned>(
    body: &[u8],
    format: Format,
    root: &'static str,
    max_depth: usize,
) -> Result<T, ApiError> {
    let xml = checked_xml(body, format, root, max_depth)?;
    quick_xml::de::from_str(&xml).map_err(|e| malformed(root, e.to_string()))
}

/// Reads a request body in `format` as a tree of elements (local names, trimmed text)
/// whose root is `root`, nested at most `max_depth` deep: for documents whose fields the
/// model declares (service settings).
pub fn parse_tree(
    body: &[u8],
    format: Format,
    root: &'static str,
    max_depth: usize,
) -> Result<Node, ApiError> {
    let xml = checked_xml(body, format, root, max_depth)?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut stack: Vec<Node> = Vec::new();
    let element = |start: &quick_xml::events::BytesStart<'_>| Node {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        ..Node::default()
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(root, e.to_string()))?;
        let closed = match &event {
            Event::Start(start) => {
                stack.push(element(start));
                continue;
            }
            Event::Empty(start) => element(start),
            Event::End(_) => match stack.pop() {
                Some(node) => node,
                None => return Err(malformed(root, "unbalanced end tag".into())),
            },
            Event::Eof => return Err(malformed(root, "the document ends early".into())),
            other => {
                let text = json::text_of(other).map_err(|e| malformed(root, e.to_string()))?;
                if let (Some(open), Some(text)) = (stack.last_mut(), text) {
                    open.text.push_str(&text);
                }
                continue;
            }
        };
        let mut closed = closed;
        closed.text = closed.text.trim().to_owned();
        match stack.last_mut() {
            Some(parent) => parent.children.push(closed),
            None => return Ok(closed),
        }
    }
}

fn malformed(root: &'static str, detail: String) -> ApiError {
    ApiError::Malformed {
        expected: root,
        detail,
    }
}

/// The body as XML (a JSON body converted from BadgerFish), its root, namespace and depth
/// checked.
fn checked_xml(
    body: &[u8],
    format: Format,
    root: &'static str,
    max_depth: usize,
) -> Result<String, ApiError> {
    let malformed = |detail: String| malformed(root, detail);
    let xml = match format {
        Format::Xml => std::str::from_utf8(body)
            .map_err(|_| malformed("the body is not UTF-8".into()))?
            .to_owned(),
        Format::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
            json::json_to_xml(&value).map_err(|e| malformed(e.to_string()))?
        }
    };
    check_document(&xml, root, max_depth).map_err(malformed)?;
    Ok(xml)
}

/// The document's root must be `root` in the XSI namespace (a JSON body may leave the
/// namespace out), there must be no DOCTYPE, and no element may nest deeper than
/// `max_depth` (the root being depth 1). One streaming pass; builds nothing.
fn check_document(xml: &str, root: &str, max_depth: usize) -> Result<(), String> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let (mut depth, mut rooted) = (0usize, false);
    loop {
        let (namespace, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let opens = match &event {
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::Start(start) | Event::Empty(start) => Some(start),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                None
            }
            Event::Eof if !rooted => return Err("the body is empty".into()),
            Event::Eof => return Ok(()),
            _ => None,
        };
        let Some(start) = opens else { continue };
        if !rooted {
            rooted = true;
            let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
            if local != root {
                return Err(format!("the root element is <{local}>, not <{root}>"));
            }
            let in_xsi = match namespace {
                quick_xml::name::ResolveResult::Bound(ns) => ns.as_ref() == XSI_NS.as_bytes(),
                quick_xml::name::ResolveResult::Unbound => true,
                _ => false,
            };
            if !in_xsi {
                return Err(format!("<{root}> must be in the namespace {XSI_NS}"));
            }
        }
        if depth + 1 > max_depth {
            crate::telemetry::limit_refusal("xml_depth");
            return Err(format!("elements nest deeper than {max_depth}"));
        }
        if matches!(event, Event::Start(_)) {
            depth += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A PUT body of any bytes, declared XML or JSON, is read or refused with 400,
        /// never a panic.
        #[test]
        fn any_body_is_read_or_refused(
            body in "(<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\">|\\{\"DoNotDisturb\":)?[<>/a-zA-Z\"{}:,$ ]{0,80}"
        ) {
            for format in [Format::Xml, Format::Json] {
                let parsed = parse_tree(body.as_bytes(), format, "DoNotDisturb", 64);
                if let Err(e) = parsed {
                    proptest::prop_assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST, "{:?}", e);
                }
            }
        }
    }
}
