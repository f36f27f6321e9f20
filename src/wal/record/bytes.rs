//! serde helpers for the byte fields of the WAL's and the runs' records (document bodies,
//! collection names, string ids): written in one `serialize_bytes` call, read without
//! trusting a claimed length.
//!
//! In bincode a byte field is a varint length, then the bytes, the same encoding as a sequence
//! of `u8`s or a `str`. Reading it through `deserialize_bytes` gets a slice of the input,
//! whose length bincode has checked against what is left of it, so a damaged length field
//! fails without allocating, and the bytes are copied once rather than visited one at a time.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// Serializes bytes with one `serialize_bytes` call.
pub(crate) fn bytes_at_once<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

/// [`bytes_at_once`] for an optional body.
#[allow(
    clippy::ref_option,
    reason = "serde's serialize_with passes a reference to the field"
)]
pub(crate) fn opt_bytes_at_once<S: Serializer>(
    bytes: &Option<Vec<u8>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    struct AtOnce<'a>(&'a [u8]);
    impl Serialize for AtOnce<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    match bytes {
        Some(b) => s.serialize_some(&AtOnce(b)),
        None => s.serialize_none(),
    }
}

/// Reads a byte field (see the module docs).
pub(crate) fn bytes_from_input<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_bytes(BytesVisitor)
}

/// [`bytes_from_input`] for an optional body.
pub(crate) fn opt_bytes_from_input<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    d.deserialize_option(OptBytesVisitor)
}

/// Reads a `String` written as a `str` (the same encoding as bytes); it must be UTF-8.
pub(crate) fn string_from_input<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::from_utf8(bytes_from_input(d)?).map_err(serde::de::Error::custom)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    // A format that offers bytes as a sequence: reserve no more than a page up front, whatever
    // it claims.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

struct OptBytesVisitor;

impl<'de> Visitor<'de> for OptBytesVisitor {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("optional bytes")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        bytes_from_input(d).map(Some)
    }
}
