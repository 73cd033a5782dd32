//! Service settings between the telephony catalogue and the XSI documents, generic over
//! the fields each service declares (`telephony::services`): the document of the current
//! settings, and a PUT body laid over them (absent fields keep their value, an empty
//! number clears it). The same field writer gives an XSI-Events event its `info`.

use hyper::body::Bytes;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::telephony::services::{BadValue, Field, Value};
use crate::telephony::ServiceSettings;

use super::codec::{self, Format};
use super::error::ApiError;
use super::model::XSI_NS;

/// Writes `fields` as elements, each name after `prefix` (`""` or `"xsi:"`).
pub(crate) fn write_fields(
    writer: &mut quick_xml::Writer<Vec<u8>>,
    prefix: &str,
    fields: &[Field],
) {
    // Writing to a Vec cannot fail.
    for field in fields {
        let name: std::borrow::Cow<'_, str> = if prefix.is_empty() {
            field.name.into()
        } else {
            format!("{prefix}{}", field.name).into()
        };
        let start = BytesStart::new(name.as_ref());
        match &field.value {
            Value::Fields(children) if children.is_empty() => {
                let _ = writer.write_event(Event::Empty(start));
                continue;
            }
            Value::Text(text) => {
                let _ = writer.write_event(Event::Start(start));
                let _ = writer.write_event(Event::Text(BytesText::new(text)));
            }
            Value::Fields(children) => {
                let _ = writer.write_event(Event::Start(start));
                write_fields(writer, prefix, children);
            }
        }
        let _ = writer.write_event(Event::End(BytesEnd::new(name.as_ref())));
    }
}

/// The document of `settings` in `format`.
pub(super) fn render(settings: &ServiceSettings, format: Format) -> Result<Bytes, ApiError> {
    let root = settings.name().as_str();
    let mut writer = quick_xml::Writer::new(Vec::new());
    let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let _ = writer.write_event(Event::Start(
        BytesStart::new(root).with_attributes([("xmlns", XSI_NS)]),
    ));
    write_fields(&mut writer, "", &settings.fields());
    let _ = writer.write_event(Event::End(BytesEnd::new(root)));
    let xml = String::from_utf8(writer.into_inner()).map_err(|_| ApiError::Internal)?;
    codec::encode(xml, format)
}

/// `current` with the fields of a PUT `body` applied.
pub(super) fn apply(
    current: ServiceSettings,
    body: &[u8],
    format: Format,
    max_depth: usize,
) -> Result<ServiceSettings, ApiError> {
    let root = current.name().as_str();
    let given = codec::parse_tree(body, format, root, max_depth)?;
    current.apply(&given).map_err(|bad| match bad {
        BadValue::Malformed { field, reason } => ApiError::Malformed {
            expected: root,
            detail: format!("{field}: {reason}"),
        },
        BadValue::Invalid { field, reason } => ApiError::Invalid {
            field: field.to_owned(),
            reason,
        },
    })
}
