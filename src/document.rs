//! `Document`, the immutable shared form of a stored JSON object, and the checks every document
//! and collection name passes before it reaches the commit path.

use std::fmt;
use std::io;
use std::ops::Deref;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::id::{json_kind, DocId};
use crate::mvcc::version::Version;
use crate::sync::PayloadArc as Arc;

// The loom models read nothing from disk.
#[cfg(not(loom))]
mod parse;
#[cfg(all(test, not(loom)))]
pub(crate) mod strategies;

#[cfg(not(loom))]
pub(crate) use parse::parse_stored;

/// Deepest nesting of arrays and objects a document may have (MongoDB's limit). It also keeps
/// the recursive JSON encoder far from the end of the stack.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Default limit on a document's encoded size (MongoDB's 16 MiB).
pub const DEFAULT_MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// Longest collection name, in bytes.
pub const MAX_COLLECTION_NAME_LEN: usize = 64;

/// A stored document: a JSON object that always carries its `_id`.
///
/// Cloning is cheap (a reference count); the value behind it never changes. The handle points
/// at the version node itself (see `mvcc::version`), so holding a document keeps only that one
/// version alive.
#[derive(Clone)]
pub struct Document(Arc<Version>);

/// What a tombstone would dereference to; never reached, since `Document`s hold bodies only.
static NO_BODY: Value = Value::Null;

impl Document {
    /// The document's `_id`.
    pub fn id(&self) -> DocId {
        // Documents are only built by `prepare`, which guarantees a valid `_id`.
        self.as_value()
            .get("_id")
            .and_then(|v| DocId::try_from(v).ok())
            .unwrap_or_else(|| DocId::from(""))
    }

    /// The JSON value.
    pub fn as_value(&self) -> &Value {
        self.0.body.as_ref().unwrap_or(&NO_BODY)
    }

    /// Wraps a value that is already a valid document: one recovered from the files, which
    /// was validated when it was committed, or one built by a loom model.
    pub(crate) fn from_raw(value: Value) -> Self {
        Document(Arc::new(Version::uncommitted(value)))
    }

    /// The JSON value, copied only if another clone of this document (or its chain) holds it.
    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.0) {
            Ok(version) => version.body.unwrap_or(Value::Null),
            Err(shared) => shared.body.clone().unwrap_or(Value::Null),
        }
    }

    /// The version node, for installing into a chain.
    pub(crate) fn into_version(self) -> Arc<Version> {
        self.0
    }

    /// Handles on this version, the chain's own included.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// A handle on a live version found in a chain.
    pub(crate) fn from_version(version: Arc<Version>) -> Self {
        debug_assert!(version.body.is_some());
        Document(version)
    }
}

impl Deref for Document {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.as_value()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_value(), f)
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_value(), f)
    }
}

impl serde::Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.as_value().serialize(s)
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Document) -> bool {
        self.as_value() == other.as_value()
    }
}

impl PartialEq<Value> for Document {
    fn eq(&self, other: &Value) -> bool {
        self.as_value() == other
    }
}

/// What the `_id` of a document being written must be.
pub(crate) enum IdRule<'a> {
    /// Take `_id` from the document, or generate one if it has none.
    FromDocumentOrGenerate(&'a crate::id::IdGenerator),
    /// The operation names the id; a `_id` in the document must agree with it.
    Fixed(&'a DocId),
}

/// Validates `value` as a document and returns it with its `_id` in place (first field).
pub(crate) fn prepare(
    value: Value,
    rule: IdRule<'_>,
    max_size: usize,
) -> Result<(DocId, Document)> {
    prepare_checking_size(value, rule, Some(max_size))
}

/// [`prepare`], with the size check left to the caller if `max_size` is `None`. Auto-commit
/// writes to a durable database leave it to `CommitLog::encode_write`, which serializes the
/// document for the WAL anyway, rather than serialize every document twice.
pub(crate) fn prepare_checking_size(
    value: Value,
    rule: IdRule<'_>,
    max_size: Option<usize>,
) -> Result<(DocId, Document)> {
    let Value::Object(mut map) = value else {
        return Err(Error::invalid_document(format!(
            "a document must be a JSON object, not {}",
            json_kind(&value)
        )));
    };
    check_depth(&map)?;
    let id = match (map.get("_id"), rule) {
        (Some(v), IdRule::FromDocumentOrGenerate(_)) => DocId::try_from(v)?,
        (None, IdRule::FromDocumentOrGenerate(ids)) => ids.next(),
        (Some(v), IdRule::Fixed(id)) => {
            let given = DocId::try_from(v)?;
            if &given != id {
                return Err(Error::invalid_document(format!(
                    "the document's _id {given} does not match the id {id} of the operation"
                )));
            }
            given
        }
        (None, IdRule::Fixed(id)) => id.clone(),
    };
    if map.get("_id").is_none() {
        let mut with_id = Map::with_capacity(map.len() + 1);
        with_id.insert("_id".to_owned(), id.to_value());
        with_id.append(&mut map);
        map = with_id;
    }
    let value = Value::Object(map);
    if let Some(max) = max_size {
        check_size(encoded_size(&value), max)?;
    }
    Ok((id, Document(Arc::new(Version::uncommitted(value)))))
}

/// Depth check without recursion, so a hostile document cannot overflow the stack here. Only
/// nested arrays and objects are stacked, so a flat document allocates nothing.
fn check_depth(map: &Map<String, Value>) -> Result<()> {
    fn push<'a>(stack: &mut Vec<(&'a Value, usize)>, v: &'a Value, depth: usize) {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            stack.push((v, depth));
        }
    }
    let mut stack = Vec::new();
    for v in map.values() {
        push(&mut stack, v, 2);
    }
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_NESTING_DEPTH {
            return Err(Error::invalid_document(format!(
                "the document nests arrays and objects deeper than {MAX_NESTING_DEPTH} levels"
            )));
        }
        match v {
            Value::Array(a) => a.iter().for_each(|c| push(&mut stack, c, depth + 1)),
            Value::Object(o) => o.values().for_each(|c| push(&mut stack, c, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a document whose compact JSON takes `size` bytes if that is over `max`.
pub(crate) fn check_size(size: usize, max: usize) -> Result<()> {
    if size > max {
        return Err(Error::DocumentTooLarge { size, max });
    }
    Ok(())
}

fn encoded_size(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to an infallible writer cannot fail: its keys are strings.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Checks a collection name: 1 to 64 bytes of `[A-Za-z0-9_.-]`.
pub(crate) fn validate_collection_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a collection name must not be empty"
    } else if name.len() > MAX_COLLECTION_NAME_LEN {
        "a collection name must be at most 64 bytes long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        "a collection name may contain only ASCII letters, digits, '_', '.' and '-'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidCollectionName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn id_is_inserted_first_and_kept() {
        let ids = crate::id::IdGenerator::default();
        let (id, doc) = prepare(
            json!({"a": 1}),
            IdRule::FromDocumentOrGenerate(&ids),
            1 << 20,
        )
        .unwrap();
        assert_eq!(doc.as_object().unwrap().keys().next().unwrap(), "_id");
        assert_eq!(doc.id(), id);
        let (id, _) = prepare(
            json!({"_id": 7, "a": 1}),
            IdRule::FromDocumentOrGenerate(&ids),
            100,
        )
        .unwrap();
        assert_eq!(id, DocId::from(7));
    }

    #[test]
    fn refuses_bad_documents() {
        let ids = crate::id::IdGenerator::default();
        let gen = || IdRule::FromDocumentOrGenerate(&ids);
        assert!(matches!(
            prepare(json!([1]), gen(), 100),
            Err(Error::InvalidDocument { .. })
        ));
        assert!(matches!(
            prepare(json!({"_id": 1.5}), gen(), 100),
            Err(Error::InvalidId { .. })
        ));
        assert!(matches!(
            prepare(json!({"_id": null}), gen(), 100),
            Err(Error::InvalidId { .. })
        ));
        assert!(matches!(
            prepare(json!({"_id": u64::MAX}), gen(), 100),
            Err(Error::InvalidId { .. })
        ));
        assert!(matches!(
            prepare(json!({"a": "x".repeat(200)}), gen(), 100),
            Err(Error::DocumentTooLarge { max: 100, .. })
        ));
        let seven = DocId::from(7);
        assert!(matches!(
            prepare(json!({"_id": 8}), IdRule::Fixed(&seven), 100),
            Err(Error::InvalidDocument { .. })
        ));
        let mut deep = json!(1);
        for _ in 0..MAX_NESTING_DEPTH {
            deep = json!([deep]);
        }
        assert!(prepare(json!({ "d": deep }), gen(), 1 << 20).is_err());
        // The document is level 1, so MAX_NESTING_DEPTH - 1 nested arrays reach the limit.
        let mut ok = json!(1);
        for _ in 0..MAX_NESTING_DEPTH - 1 {
            ok = json!([ok]);
        }
        assert!(prepare(json!({ "d": ok }), gen(), 1 << 20).is_ok());
    }

    /// Wraps a scalar in one container per entry of `spine` (true: an array, false: an object),
    /// each with a scalar sibling when its flag says so, innermost first.
    fn nest(spine: &[(bool, bool)]) -> Value {
        spine.iter().fold(json!(0), |inner, &(array, sibling)| {
            match (array, sibling) {
                (true, false) => json!([inner]),
                (true, true) => json!([1, inner, "x"]),
                (false, false) => json!({ "k": inner }),
                (false, true) => json!({ "s": true, "k": inner }),
            }
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The iterative depth check agrees with the definition: the document is level 1, so a
        /// field wrapped in `d` containers reaches level `1 + d`, and the deepest field decides.
        #[test]
        fn depth_check_refuses_exactly_what_nests_past_the_limit(
            a in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY), 0..=MAX_NESTING_DEPTH + 3),
            b in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY), 90..=MAX_NESTING_DEPTH + 3),
        ) {
            let deepest = 1 + a.len().max(b.len());
            let doc = json!({ "a": nest(&a), "n": 5, "b": nest(&b) });
            let ids = crate::id::IdGenerator::default();
            let outcome = prepare(doc, IdRule::FromDocumentOrGenerate(&ids), 1 << 24);
            proptest::prop_assert_eq!(outcome.is_err(), deepest > MAX_NESTING_DEPTH, "deepest level {}", deepest);
        }
    }

    #[test]
    fn collection_names() {
        for good in ["a", "users", "A-b_c.9", &"x".repeat(64)] {
            assert!(validate_collection_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "..%2f", "a b", "é", "a\0", &"x".repeat(65)] {
            assert!(validate_collection_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_increase() {
        let ids = crate::id::IdGenerator::default();
        let a = ids.next();
        let b = ids.next();
        assert!(a < b);
        assert_eq!(a.as_str().unwrap().len(), 16);
    }
}
