//! Document identifiers and the generator of new ones.

use std::fmt;

use serde_json::Value;

use crate::error::Error;
use crate::sync::{AtomicU64, Ordering};

/// A document's `_id`: a JSON integer (i64) or a JSON string.
///
/// Ids order integers before strings, integers numerically and strings byte-wise; scans return
/// documents in this order.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DocId(Repr);

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Repr {
    Int(i64),
    Str(Box<str>),
}

impl DocId {
    /// The id as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.0 {
            Repr::Int(i) => Some(*i),
            Repr::Str(_) => None,
        }
    }

    /// The id as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Int(_) => None,
            Repr::Str(s) => Some(s),
        }
    }

    /// The id as the JSON value stored in a document's `_id` field.
    pub fn to_value(&self) -> Value {
        match &self.0 {
            Repr::Int(i) => Value::from(*i),
            Repr::Str(s) => Value::from(&**s),
        }
    }
}

/// Hashes only the integer or the string: the variant needs no bytes of its own, because
/// equality (which decides) still tells the two kinds apart. This halves the hashed bytes of an
/// integer id, on every point read.
impl std::hash::Hash for DocId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Int(i) => state.write_i64(*i),
            Repr::Str(s) => s.hash(state),
        }
    }
}

impl From<i64> for DocId {
    fn from(v: i64) -> Self {
        DocId(Repr::Int(v))
    }
}

impl From<i32> for DocId {
    fn from(v: i32) -> Self {
        DocId(Repr::Int(i64::from(v)))
    }
}

impl From<&str> for DocId {
    fn from(v: &str) -> Self {
        DocId(Repr::Str(v.into()))
    }
}

impl From<String> for DocId {
    fn from(v: String) -> Self {
        DocId(Repr::Str(v.into_boxed_str()))
    }
}

impl From<&DocId> for DocId {
    fn from(v: &DocId) -> Self {
        v.clone()
    }
}

impl TryFrom<&Value> for DocId {
    type Error = Error;

    fn try_from(v: &Value) -> Result<Self, Error> {
        match v {
            Value::String(s) => Ok(DocId::from(s.as_str())),
            Value::Number(n) => n.as_i64().map(DocId::from).ok_or_else(|| Error::InvalidId {
                reason: format!("{n} is not an integer in the range of a signed 64-bit integer"),
            }),
            other => Err(Error::InvalidId {
                reason: format!(
                    "an _id must be an integer or a string, not {}",
                    json_kind(other)
                ),
            }),
        }
    }
}

impl TryFrom<Value> for DocId {
    type Error = Error;

    fn try_from(v: Value) -> Result<Self, Error> {
        DocId::try_from(&v)
    }
}

/// Displays the id as JSON: `7` or `"abc"`, so the two kinds cannot be confused.
impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Int(i) => write!(f, "{i}"),
            Repr::Str(s) => write!(f, "{:?}", &**s),
        }
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Generates `_id`s for documents inserted without one: 16 lower-case hex digits of a
/// microsecond clock that never repeats or goes backwards within one database handle, so
/// generated ids are unique strings that sort in generation order.
#[derive(Debug, Default)]
pub(crate) struct IdGenerator {
    /// The last value handed out. Written by `next` (CAS, Relaxed: only the value matters, it
    /// orders nothing else); read only by `next`.
    last: AtomicU64,
}

impl IdGenerator {
    pub(crate) fn next(&self) -> DocId {
        let now = crate::sync::clock_micros();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return DocId::from(format!("{next:016x}")),
                Err(actual) => prev = actual,
            }
        }
    }
}
