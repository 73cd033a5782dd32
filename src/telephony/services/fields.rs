//! A service's settings as fields: names in BroadWorks' spelling, in the order of its XSI
//! document. The [`fields!`](crate::telephony::services::fields) macro declares a settings
//! struct once and derives from that one declaration
//!
//! - the struct itself (serde, for the store: Rust field names, as stored since the first
//!   release),
//! - [`Fields::fields`]: the values as a small tree of [`Field`]s that the interfaces write
//!   (the XSI-Actions document, the `info` of an XSI-Events event),
//! - [`Fields::apply`]: a [`Node`] tree read from a request (a PUT body) laid over the
//!   current values; a field the request leaves out keeps its value.
//!
//! How one value becomes text and back is its type's [`FieldValue`]: booleans, small
//! numbers, optional addresses (an empty element clears them), lists of nested fields.

use super::super::TelephonyError;

/// One field of a settings document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The element name (`forwardToPhoneNumber`).
    pub name: &'static str,
    /// Its value.
    pub value: Value,
}

/// A field's value: text, or nested fields (a list item, a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text content.
    Text(String),
    /// Child fields, in order.
    Fields(Vec<Field>),
}

/// An element read from a request: its local name, its text (trimmed), its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Text content, trimmed.
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// A value a field cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    /// The wrong shape for the field (`<active>perhaps</active>`): the request is
    /// malformed.
    #[error("{field}: {reason}")]
    Malformed {
        /// The element.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Text that is none of the field's allowed spellings: the value is invalid (as are
    /// values that break a service's rules, which validation finds later).
    #[error("{field}: {reason}")]
    Invalid {
        /// The element.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Settings made of fields.
pub trait Fields {
    /// The values, in document order; unset optional values are left out.
    fn fields(&self) -> Vec<Field>;
    /// Lays the children of `given` over the current values.
    fn apply(&mut self, given: &Node) -> Result<(), BadValue>;
}

/// How one Rust type is a field.
pub trait FieldValue: Sized {
    /// The value; `None` leaves the field out.
    fn to_value(&self) -> Option<Value>;
    /// The value `node` gives the field `field`.
    fn from_node(node: &Node, field: &'static str) -> Result<Self, BadValue>;
}

impl FieldValue for bool {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Text(if *self { "true" } else { "false" }.to_owned()))
    }

    /// The lexical forms of `xs:boolean`: `true`, `false`, `1`, `0`.
    fn from_node(node: &Node, field: &'static str) -> Result<Self, BadValue> {
        match node.text.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(BadValue::Malformed {
                field,
                reason: format!("\"{}\" is not a boolean", node.text),
            }),
        }
    }
}

impl FieldValue for u8 {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Text(self.to_string()))
    }

    fn from_node(node: &Node, field: &'static str) -> Result<Self, BadValue> {
        node.text.parse().map_err(|_| BadValue::Malformed {
            field,
            reason: format!("\"{}\" is not a number from 0 to 255", node.text),
        })
    }
}

/// An optional number or address: left out when unset; an empty element clears it.
impl FieldValue for Option<String> {
    fn to_value(&self) -> Option<Value> {
        self.clone().map(Value::Text)
    }

    fn from_node(node: &Node, _field: &'static str) -> Result<Self, BadValue> {
        Ok((!node.text.is_empty()).then(|| node.text.clone()))
    }
}

/// A required text.
impl FieldValue for String {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Text(self.clone()))
    }

    fn from_node(node: &Node, _field: &'static str) -> Result<Self, BadValue> {
        Ok(node.text.clone())
    }
}

/// An element of a list: its fields under one element name.
pub trait ListItem: Fields + Default {
    /// The element of one item (`simRingLocation`).
    const ELEMENT: &'static str;
}

/// A list (`<simRingLocations>`): one [`ListItem::ELEMENT`] per item. A list given in a
/// request replaces the whole list; each item starts from its defaults.
impl<T: ListItem> FieldValue for Vec<T> {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Fields(
            self.iter()
                .map(|item| Field {
                    name: T::ELEMENT,
                    value: Value::Fields(item.fields()),
                })
                .collect(),
        ))
    }

    fn from_node(node: &Node, _field: &'static str) -> Result<Self, BadValue> {
        node.children
            .iter()
            .filter(|c| c.name == T::ELEMENT)
            .map(|c| {
                let mut item = T::default();
                item.apply(c)?;
                Ok(item)
            })
            .collect()
    }
}

/// Declares a settings struct whose fields are named as in its XSI document, and derives
/// [`Fields`] for it (see the module docs).
macro_rules! fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $xml:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::telephony::services::fields::Fields for $name {
            fn fields(&self) -> Vec<$crate::telephony::services::fields::Field> {
                use $crate::telephony::services::fields::{Field, FieldValue};
                let mut fields = Vec::new();
                $(
                    if let Some(value) = FieldValue::to_value(&self.$field) {
                        fields.push(Field { name: $xml, value });
                    }
                )*
                fields
            }

            fn apply(
                &mut self,
                given: &$crate::telephony::services::fields::Node,
            ) -> Result<(), $crate::telephony::services::fields::BadValue> {
                use $crate::telephony::services::fields::FieldValue;
                $(
                    if let Some(node) = given.child($xml) {
                        self.$field = FieldValue::from_node(node, $xml)?;
                    }
                )*
                Ok(())
            }
        }
    };
}

pub(crate) use fields;

/// A `TelephonyError::Invalid` for `field`.
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> TelephonyError {
    TelephonyError::Invalid {
        field,
        reason: reason.into(),
    }
}
