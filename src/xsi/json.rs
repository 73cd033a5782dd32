//! BadgerFish JSON, the JSON form XSI clients use: an element is an object keyed by its
//! name, its text is under `"$"`, an attribute `a` under `"@a"`, namespace declarations
//! under `"@xmlns"` (`{"$": default, "prefix": uri}`), and repeated children become arrays.
//!
//! ```text
//! <DoNotDisturb xmlns="http://schema.broadsoft.com/xsi"><active>true</active></DoNotDisturb>
//! {"DoNotDisturb":{"@xmlns":{"$":"http://schema.broadsoft.com/xsi"},"active":{"$":"true"}}}
//! ```
//!
//! Both directions go through quick-xml's event reader and writer, so documents are typed
//! once (in [`super::model`]) and JSON is a view of the same XML. On the way in, a plain
//! value (`"active": "true"` or `"active": true`) is accepted as the element's text.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{Map, Value};

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The XML could not be read.
    #[error("XML: {0}")]
    Xml(String),
    /// The JSON is not a BadgerFish document.
    #[error("JSON: {0}")]
    Shape(String),
}

/// Converts an XML document to BadgerFish JSON.
pub fn xml_to_json(xml: &str) -> Result<Value, JsonError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    let mut root: Option<Value> = None;
    let xml_error = |e: &dyn std::fmt::Display| JsonError::Xml(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&e))?;
        match event {
            Event::Start(start) => stack.push(open(&start)?),
            Event::Empty(start) => {
                let frame = open(&start)?;
                close(frame, &mut stack, &mut root);
            }
            Event::End(_) => {
                let frame = stack
                    .pop()
                    .ok_or_else(|| JsonError::Xml("unbalanced end tag".into()))?;
                close(frame, &mut stack, &mut root);
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                if let (Some(frame), Some(text)) = (stack.last_mut(), text_of(&event)?) {
                    frame.2.push_str(&text);
                }
            }
            Event::DocType(_) => return Err(JsonError::Xml("a DOCTYPE is not allowed".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    root.ok_or_else(|| JsonError::Xml("no root element".into()))
}

/// The character data of a text, entity reference or CDATA event (`None` for others),
/// with entities resolved.
pub(super) fn text_of(event: &Event<'_>) -> Result<Option<String>, JsonError> {
    let xml_error = |e: &dyn std::fmt::Display| JsonError::Xml(e.to_string());
    Ok(Some(match event {
        Event::Text(text) => {
            let text = text.decode().map_err(|e| xml_error(&e))?;
            quick_xml::escape::unescape(&text)
                .map_err(|e| xml_error(&e))?
                .into_owned()
        }
        Event::GeneralRef(reference) => {
            let name = reference.decode().map_err(|e| xml_error(&e))?;
            quick_xml::escape::resolve_predefined_entity(&name)
                .map(str::to_owned)
                .or_else(|| {
                    reference
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                })
                .ok_or_else(|| JsonError::Xml(format!("unknown entity &{name};")))?
        }
        Event::CData(data) => String::from_utf8_lossy(data.as_ref()).into_owned(),
        _ => return Ok(None),
    }))
}

fn open(start: &BytesStart<'_>) -> Result<(String, Map<String, Value>, String), JsonError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut map = Map::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| JsonError::Xml(e.to_string()))?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| JsonError::Xml(e.to_string()))?
            .into_owned();
        if key == "xmlns" {
            namespaces(&mut map).insert("$".into(), Value::String(value));
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            namespaces(&mut map).insert(prefix.to_owned(), Value::String(value));
        } else {
            map.insert(format!("@{key}"), Value::String(value));
        }
    }
    Ok((name, map, String::new()))
}

fn namespaces(map: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = map
        .entry("@xmlns")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(namespaces) => namespaces,
        _ => unreachable!("made an object just above"),
    }
}

fn close(
    (name, mut map, text): (String, Map<String, Value>, String),
    stack: &mut [(String, Map<String, Value>, String)],
    root: &mut Option<Value>,
) {
    if !text.trim().is_empty() {
        map.insert("$".into(), Value::String(text));
    }
    let value = Value::Object(map);
    match stack.last_mut() {
        Some((_, parent, _)) => match parent.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                parent.insert(name, value);
            }
        },
        None => {
            let mut document = Map::new();
            document.insert(name, value);
            *root = Some(Value::Object(document));
        }
    }
}

/// Converts a BadgerFish JSON document to XML (with an XML declaration).
pub fn json_to_xml(json: &Value) -> Result<String, JsonError> {
    let Value::Object(document) = json else {
        return Err(JsonError::Shape("the document must be an object".into()));
    };
    let mut entries = document.iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err(JsonError::Shape(
            "the document must have exactly one root element".into(),
        ));
    };
    let mut writer = quick_xml::Writer::new(Vec::new());
    write(
        &mut writer,
        Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
    )?;
    element(&mut writer, name, value)?;
    String::from_utf8(writer.into_inner()).map_err(|e| JsonError::Shape(e.to_string()))
}

fn write(writer: &mut quick_xml::Writer<Vec<u8>>, event: Event<'_>) -> Result<(), JsonError> {
    writer
        .write_event(event)
        .map_err(|e| JsonError::Shape(e.to_string()))
}

fn check_name(name: &str) -> Result<(), JsonError> {
    let mut chars = name.chars();
    let valid_start = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')) {
        return Err(JsonError::Shape(format!(
            "\"{name}\" is not an element name"
        )));
    }
    Ok(())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn element(
    writer: &mut quick_xml::Writer<Vec<u8>>,
    name: &str,
    value: &Value,
) -> Result<(), JsonError> {
    check_name(name)?;
    let mut start = BytesStart::new(name);
    let mut text = None;
    let mut children = Vec::new();
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "@xmlns" {
                    let Value::Object(namespaces) = value else {
                        return Err(JsonError::Shape("\"@xmlns\" must be an object".into()));
                    };
                    for (prefix, uri) in namespaces {
                        let uri = scalar(uri).ok_or_else(|| {
                            JsonError::Shape("a namespace must be a string".into())
                        })?;
                        let attribute = if prefix == "$" {
                            "xmlns".to_owned()
                        } else {
                            check_name(prefix)?;
                            format!("xmlns:{prefix}")
                        };
                        start.push_attribute((attribute.as_str(), uri.as_str()));
                    }
                } else if let Some(attribute) = key.strip_prefix('@') {
                    check_name(attribute)?;
                    let value = scalar(value).ok_or_else(|| {
                        JsonError::Shape(format!("attribute \"{attribute}\" must be a scalar"))
                    })?;
                    start.push_attribute((attribute, value.as_str()));
                } else if key == "$" {
                    text = Some(scalar(value).ok_or_else(|| {
                        JsonError::Shape(format!("the text of \"{name}\" must be a scalar"))
                    })?);
                } else {
                    children.push((key, value));
                }
            }
        }
        Value::Null => {}
        Value::Array(_) => {
            return Err(JsonError::Shape(format!(
                "\"{name}\" cannot be an array here"
            )))
        }
        other => text = scalar(other),
    }
    write(writer, Event::Start(start))?;
    if let Some(text) = &text {
        write(writer, Event::Text(BytesText::new(text)))?;
    }
    for (key, value) in children {
        match value {
            Value::Array(items) => {
                for item in items {
                    element(writer, key, item)?;
                }
            }
            single => element(writer, key, single)?,
        }
    }
    write(writer, Event::End(BytesEnd::new(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_namespaces_text_attributes_and_repeats() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Doc xmlns="urn:x"><a>1 &amp; 2</a><b kind="k">t</b><c><d>x</d></c><c><d>y</d></c><e/></Doc>"#;
        let json = xml_to_json(xml).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Doc": {
                "@xmlns": {"$": "urn:x"},
                "a": {"$": "1 & 2"},
                "b": {"@kind": "k", "$": "t"},
                "c": [{"d": {"$": "x"}}, {"d": {"$": "y"}}],
                "e": {}
            }})
        );
        let back = json_to_xml(&json).unwrap();
        assert_eq!(xml_to_json(&back).unwrap(), json);
    }

    #[test]
    fn plain_values_are_taken_as_text() {
        let json = serde_json::json!({"DoNotDisturb": {"active": true, "ringSplash": "false"}});
        let xml = json_to_xml(&json).unwrap();
        assert!(
            xml.contains("<active>true</active><ringSplash>false</ringSplash>"),
            "{xml}"
        );
    }

    #[test]
    fn refuses_bad_shapes_and_names() {
        for bad in [
            serde_json::json!([1]),
            serde_json::json!({"a": {}, "b": {}}),
            serde_json::json!({"a b": {}}),
            serde_json::json!({"a": {"x><y": "1"}}),
            serde_json::json!({"a": {"@xmlns": "nope"}}),
        ] {
            assert!(json_to_xml(&bad).is_err(), "{bad}");
        }
        assert!(xml_to_json("<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>").is_err());
        assert!(xml_to_json("<x>&undefined;</x>").is_err());
    }

    /// A small XML tree: element names from a short alphabet, text that needs escaping.
    fn trees() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = proptest::sample::select(vec!["a", "b", "active", "entry"]);
        let text = "[ -~àé€☎<>&\"']{0,12}";
        let leaf = (name.clone(), text).prop_map(|(n, t)| {
            let escaped = t
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("<{n}>{escaped}</{n}>")
        });
        leaf.prop_recursive(4, 32, 4, move |inner| {
            (name.clone(), proptest::collection::vec(inner, 1..4))
                .prop_map(|(n, children)| format!("<{n}>{}</{n}>", children.concat()))
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// XML → BadgerFish → XML → BadgerFish gives the same JSON: nothing is lost or
        /// invented on the way, whatever the text holds.
        #[test]
        fn badgerfish_round_trips(body in trees()) {
            let xml = format!("<Doc xmlns=\"http://schema.broadsoft.com/xsi\">{body}</Doc>");
            let json = xml_to_json(&xml).unwrap();
            let again = xml_to_json(&json_to_xml(&json).unwrap()).unwrap();
            proptest::prop_assert_eq!(json, again);
        }

        /// Any JSON value is converted or refused, never a panic.
        #[test]
        fn any_json_is_converted_or_refused(text in "[\\[\\]{}\":,$@a-z0-9 ]{0,64}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = json_to_xml(&value);
            }
        }
    }
}
