//! Tests of the commit record encoding: round trips of random records and documents, random and
//! truncated input, newer formats, trailing bytes, and lengths that claim far more than the input.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::document::strategies::json_value;
use crate::document::{prepare, IdRule, DEFAULT_MAX_DOCUMENT_SIZE};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn doc_id() -> impl Strategy<Value = DocId> {
    prop_oneof![
        any::<i64>().prop_map(DocId::from),
        any::<String>().prop_map(DocId::from),
    ]
}

/// A valid document with the given id: random fields, then `_id` put in place by `prepare`.
fn document() -> impl Strategy<Value = Document> {
    (
        doc_id(),
        prop::collection::vec(("[a-z]{1,8}|\\PC{0,8}", json_value()), 0..6),
    )
        .prop_map(|(id, fields)| {
            let map: Map<String, Value> = fields.into_iter().filter(|(k, _)| k != "_id").collect();
            prepare(
                Value::Object(map),
                IdRule::Fixed(&id),
                DEFAULT_MAX_DOCUMENT_SIZE,
            )
            .unwrap()
            .1
        })
}

fn collection() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_][a-z0-9_]{0,20}", any::<String>()]
}

fn record_op() -> impl Strategy<Value = RecordOp> {
    prop_oneof![
        (collection(), document()).prop_map(|(c, d)| put(&c, &d.id(), json_body(&d))),
        (collection(), doc_id()).prop_map(|(collection, id)| RecordOp::Delete {
            collection,
            id: RecordId::from(&id),
        }),
        collection().prop_map(|collection| RecordOp::DropCollection { collection }),
        collection().prop_map(|collection| RecordOp::CreateCollection { collection }),
    ]
}

fn commit_record() -> impl Strategy<Value = CommitRecord> {
    (any::<u64>(), prop::collection::vec(record_op(), 0..8))
        .prop_map(|(ts, ops)| CommitRecord { ts, ops })
}

fn sample() -> CommitRecord {
    CommitRecord {
        ts: 42,
        ops: vec![
            RecordOp::Put {
                collection: "users".into(),
                id: RecordId::Int(7),
                body: br#"{"_id":7,"name":"Ada"}"#.to_vec(),
            },
            RecordOp::Delete {
                collection: "users".into(),
                id: RecordId::Str("bob".into()),
            },
            RecordOp::DropCollection {
                collection: "tmp".into(),
            },
        ],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip(record in commit_record()) {
        let bytes = encode(&record);
        // The buffer was sized once: the bound held, so it never grew.
        prop_assert_eq!(bytes.capacity(), encoded_len_bound(&record));
        prop_assert_eq!(bytes[0], RECORD_FORMAT);
        prop_assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn documents_read_back_equal(collection in collection(), doc in document()) {
        let op = put(&collection, &doc.id(), json_body(&doc));
        let record = CommitRecord { ts: 1, ops: vec![op] };
        let back = decode(&encode(&record)).unwrap();
        let RecordOp::Put { collection: c, id, .. } = &back.ops[0] else {
            panic!("a Put came back as {:?}", back.ops[0]);
        };
        prop_assert_eq!(c, &collection);
        prop_assert_eq!(id.to_doc_id(), doc.id());
        prop_assert_eq!(back.ops[0].body_value().unwrap(), Some(doc.as_value().clone()));
    }

    #[test]
    fn ids_mirror_doc_ids(id in doc_id()) {
        prop_assert_eq!(RecordId::from(&id).to_doc_id(), id);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let mut with_format = vec![RECORD_FORMAT];
        with_format.extend_from_slice(&bytes);
        let _ = decode(&with_format);
    }

    #[test]
    fn every_truncation_is_an_error(record in commit_record()) {
        let bytes = encode(&record);
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len]).is_err(), "prefix of {} bytes decoded", len);
        }
    }

    #[test]
    fn trailing_bytes_are_refused(
        record in commit_record(),
        tail in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encode(&record);
        bytes.extend_from_slice(&tail);
        let refused = matches!(decode(&bytes), Err(RecordError::TrailingBytes { extra }) if extra == tail.len());
        prop_assert!(refused);
    }
}

#[test]
fn layout_is_as_documented() {
    let record = CommitRecord {
        ts: 300,
        ops: vec![
            RecordOp::Put {
                collection: "c".into(),
                id: RecordId::Int(-2),
                body: b"{}".to_vec(),
            },
            RecordOp::Delete {
                collection: "c".into(),
                id: RecordId::Str("x".into()),
            },
            RecordOp::DropCollection {
                collection: "c".into(),
            },
        ],
    };
    #[rustfmt::skip]
    let expected = [
        1,                  // format
        251, 0x2c, 0x01,    // ts 300: marker 251, then u16 LE
        3,                  // 3 ops
        0, 1, b'c', 0, 3, 2, b'{', b'}', // Put "c", Int(-2) zigzag 3, body "{}"
        1, 1, b'c', 1, 1, b'x',          // Delete "c", Str("x")
        2, 1, b'c',                      // DropCollection "c"
    ];
    assert_eq!(encode(&record), expected);
    assert_eq!(decode(&expected).unwrap(), record);
}

#[test]
fn newer_format_asks_for_an_upgrade() {
    let mut bytes = encode(&sample());
    bytes[0] = 2;
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(err, RecordError::NewerFormat { found: 2 }));
    assert!(err.to_string().contains("upgrade snapbase"), "{err}");
}

#[test]
fn format_zero_and_empty_input_are_refused() {
    let mut bytes = encode(&sample());
    bytes[0] = 0;
    assert!(matches!(
        decode(&bytes),
        Err(RecordError::UnknownFormat { found: 0 })
    ));
    assert!(matches!(decode(&[]), Err(RecordError::Empty)));
}

#[test]
fn trailing_garbage_is_refused() {
    let mut bytes = encode(&sample());
    bytes.push(0);
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(err, RecordError::TrailingBytes { extra: 1 }));
    assert!(err.to_string().contains("1 unexpected bytes"), "{err}");
}

/// A varint (bincode standard config) for `n` written as marker 253 and a u64 LE.
fn huge_len(n: u64) -> Vec<u8> {
    let mut v = vec![253];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

#[test]
fn huge_claimed_lengths_fail_without_allocating() {
    let claim = 1u64 << 60;
    // ts 0, then an op count of 2^60.
    let mut ops = vec![RECORD_FORMAT, 0];
    ops.extend(huge_len(claim));
    // ts 0, one Put into a collection whose name claims 2^60 bytes.
    let mut name = vec![RECORD_FORMAT, 0, 1, 0];
    name.extend(huge_len(claim));
    // ts 0, one Put into "c", id 0, a body claiming 2^60 bytes.
    let mut body = vec![RECORD_FORMAT, 0, 1, 0, 1, b'c', 0, 0];
    body.extend(huge_len(claim));
    // Just under the limit: bincode lets the length through, then finds the input too short
    // for it before anything is allocated.
    let mut body_under_limit = vec![RECORD_FORMAT, 0, 1, 0, 1, b'c', 0, 0];
    body_under_limit.extend(huge_len(60 << 20));
    for input in [ops, name, body, body_under_limit] {
        // Allocating 2^60 bytes or elements would abort the test process; an error returns.
        let err = decode(&input).unwrap_err();
        assert!(matches!(err, RecordError::Malformed(_)), "{err}");
        assert!(input.len() < 32);
    }
}

#[test]
fn body_value_of_other_ops_is_none_and_bad_json_is_an_error() {
    let record = sample();
    assert_eq!(record.ops[1].body_value().unwrap(), None);
    assert_eq!(record.ops[2].body_value().unwrap(), None);
    let bad = RecordOp::Put {
        collection: "c".into(),
        id: RecordId::Int(1),
        body: b"{".to_vec(),
    };
    let err = bad.body_value().unwrap_err();
    assert!(matches!(err, RecordError::Body(_)));
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[test]
fn invalid_utf8_in_a_name_is_malformed() {
    let input = [RECORD_FORMAT, 0, 1, 2, 1, 0xff];
    assert!(matches!(decode(&input), Err(RecordError::Malformed(_))));
}
