//! Tests of the checkpoint's fold (the newest change per document, in id order, in bounded
//! memory, against a sorted map) and of which changes it writes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::id::DocId;
use crate::storage::sim_fs::SimFs;

/// One step fed to a `CollectionDelta`.
#[derive(Debug, Clone)]
enum Step {
    Put(u8),
    Delete(u8),
    Create,
    Drop,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => any::<u8>().prop_map(Step::Put),
        6 => any::<u8>().prop_map(Step::Delete),
        1 => Just(Step::Create),
        1 => Just(Step::Drop),
    ]
}

/// Integer ids below 128 and string ids above, so both kinds and their order are exercised.
fn id_of(k: u8) -> RecordId {
    if k < 128 {
        RecordId::Int(i64::from(k) - 64)
    } else {
        RecordId::Str(format!("k{k}"))
    }
}

proptest! {
    #[test]
    fn a_fold_keeps_the_newest_change_per_document_in_id_order(
        steps in prop::collection::vec(step(), 0..600),
    ) {
        let mut delta = CollectionDelta::default();
        let mut model: BTreeMap<RecordId, (u64, Option<Vec<u8>>)> = BTreeMap::new();
        let mut state = None;
        for (ts, step) in (1u64..).zip(&steps) {
            match *step {
                Step::Put(k) => {
                    let body = ts.to_le_bytes().to_vec();
                    delta.push(Change { id: id_of(k), ts, body: Some(body.clone()) });
                    model.insert(id_of(k), (ts, Some(body)));
                }
                Step::Delete(k) => {
                    delta.push(Change { id: id_of(k), ts, body: None });
                    model.insert(id_of(k), (ts, None));
                }
                Step::Create => {
                    state = Some(CollectionState::Live { created: ts });
                    delta.reset(CollectionState::Live { created: ts });
                    model.clear();
                }
                Step::Drop => {
                    state = Some(CollectionState::Dropped { at: ts });
                    delta.reset(CollectionState::Dropped { at: ts });
                    model.clear();
                }
            }
            // Folding whenever the changes double keeps them under twice the documents.
            prop_assert!(delta.changes.len() < FOLD_AT.max(2 * model.len()));
        }
        delta.fold();
        prop_assert_eq!(delta.state, state);
        let folded: Vec<_> = delta
            .changes
            .into_iter()
            .map(|c| (c.id, (c.ts, c.body)))
            .collect();
        let expected: Vec<_> = model.into_iter().collect();
        prop_assert_eq!(folded, expected);
    }
}

#[test]
fn a_fold_of_one_document_changed_many_times_keeps_the_last() {
    let mut delta = CollectionDelta::default();
    for ts in 1..=1000 {
        delta.push(Change {
            id: RecordId::Str("hot".to_owned()),
            ts,
            body: Some(vec![u8::try_from(ts % 256).unwrap()]),
        });
        assert!(delta.changes.len() <= FOLD_AT);
    }
    delta.fold();
    assert_eq!(delta.changes.len(), 1);
    assert_eq!(delta.changes[0].ts, 1000);
    assert_eq!(delta.changes[0].body, Some(vec![232]));
}

/// Reads every entry of the run at `path`.
fn entries(fs: &SimFs, path: &std::path::Path) -> Vec<Entry> {
    let mut reader = crate::persist::run::RunReader::open(fs, path).unwrap();
    let mut out = Vec::new();
    while let Some(entry) = reader.next().unwrap() {
        out.push(entry);
    }
    out
}

fn doc(id: RecordId, ts: u64, body: Option<&[u8]>) -> Entry {
    Entry::Doc {
        collection: "c".to_owned(),
        id,
        ts,
        body: body.map(<[u8]>::to_vec),
    }
}

#[test]
fn a_deletion_is_written_only_over_a_live_entry() {
    let fs = SimFs::new();
    let path = std::path::Path::new("/r.run");
    let mut space = Space::default();
    space.set("c", DocId::from(1), Some(10));
    space.set("c", DocId::from("s"), Some(10));
    // Live in another collection only: still nothing to hide in "c".
    space.set("other", DocId::from(2), Some(10));
    let folded = vec![
        Change {
            id: RecordId::Int(1),
            ts: 5,
            body: None,
        },
        Change {
            id: RecordId::Int(2),
            ts: 6,
            body: None,
        },
        Change {
            id: RecordId::Int(3),
            ts: 7,
            body: Some(b"{}".to_vec()),
        },
        Change {
            id: RecordId::Str("s".to_owned()),
            ts: 8,
            body: None,
        },
        Change {
            id: RecordId::Str("t".to_owned()),
            ts: 9,
            body: None,
        },
    ];
    let mut writer = RunWriter::create(&fs, path).unwrap();
    write_changes(&mut writer, &mut space, "c".to_owned(), folded).unwrap();
    writer.finish().unwrap();

    assert_eq!(
        entries(&fs, path),
        vec![
            doc(RecordId::Int(1), 5, None),
            doc(RecordId::Int(3), 7, Some(b"{}")),
            doc(RecordId::Str("s".to_owned()), 8, None),
        ]
    );
    assert!(!space.is_live("c", &DocId::from(1)));
    assert!(!space.is_live("c", &DocId::from("s")));
    assert!(space.is_live("c", &DocId::from(3)));
    assert!(space.is_live("other", &DocId::from(2)));
}
