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
//! `MAX_TOKEN_BYTES` (in `reader`) arrives in parts that the tree joins; a longer name or attribute
//! value is not well-formed here.
//!
//! Writing: one rxml `Encoder` per stream. The header declares the `stream` prefix and the
//! stream's default namespace; stanzas are written by walking the minidom tree into the
//! same encoder, which escapes text and declares any other namespace where it is needed.
//!
//! Stanzas stay namespace-agnostic elements here: routing looks at `to`, `from`, `type`
//! and `id` only, and the session at the other end rewrites the stanza namespace
//! ([`retarget_namespace`]) before writing it into its own stream.
//!
//! `reader` holds the reading side and its limits, `writer` the writing side and the
//! namespace moves between stream kinds.

mod reader;
mod writer;

pub use reader::{parse_element, ElementLimits, StreamReader};
pub use writer::{for_stream, retarget_namespace, stalled, StreamWriter};

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
