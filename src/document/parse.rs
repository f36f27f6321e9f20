//! Parsing stored documents: the JSON of a checkpointed run or a WAL record, into a tree that
//! wastes no capacity.
//!
//! `serde_json::from_slice` builds each object by inserting into an empty map, and with
//! `preserve_order` a map grows the way an `IndexMap` does: its entry vector is reserved to
//! match its hash index. An object of 4 to 7 fields keeps room for 7, 8 to 14 for 14, and each
//! entry is a hash, a key and a `Value` of 80 bytes. A stored document is never grown again, so
//! that room is dead weight for as long as the document lives. `cargo run --release --example
//! compaction_memory` counts the heap a reopened database holds: for 1M ~150-byte documents of
//! 4 fields, 1,147 bytes per document when recovery parsed with `from_slice`, 835 bytes with
//! [`parse_stored`], and the open took as long. Documents a user inserts are stored as the
//! user built them.
//!
//! [`parse_stored`] accepts exactly what `serde_json::from_slice::<Value>` accepts and returns
//! an equal value (the tests check both on random input): it drives the same parser, and only
//! collects each object's fields before building its map.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses a stored document's JSON, building every object and array at its final size.
pub(crate) fn parse_stored(json: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Compact>(json).map(|c| c.0)
}

/// A `Value` deserialized by [`CompactVisitor`].
struct Compact(Value);

impl<'de> Deserialize<'de> for Compact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CompactVisitor).map(Compact)
    }
}

/// `serde_json`'s own `Value` visitor, but for how objects and arrays are collected.
struct CompactVisitor;

impl<'de> Visitor<'de> for CompactVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json: JSON text cannot spell a non-finite number, so this is never `Null`
        // for a stored document.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Compact::deserialize(deserializer).map(|c| c.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Compact(item)) = seq.next_element()? {
            items.push(item);
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, Compact(value))) = access.next_entry::<String, Compact>()? {
            fields.push((key, value));
        }
        // A repeated key keeps its first position and its last value, as `from_slice` does:
        // both insert in order into a map.
        let mut map = Map::with_capacity(fields.len());
        for (key, value) in fields {
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests;
