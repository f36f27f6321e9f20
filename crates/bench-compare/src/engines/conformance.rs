//! The round trip every adapter's unit test runs, so that each engine is held to the same
//! contract: insert, read, upsert, delete, count, compact, and a reopen that finds it all.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{Capability, Durability, EngineKind};

/// A fresh directory under the system temp dir (the caller removes it).
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "bench-compare-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Document `i` at version `v`, with its id.
pub fn doc(i: usize, v: u64) -> (String, Value) {
    let id = format!("id-{i:04}");
    (
        id.clone(),
        json!({"_id": id, "n": i, "v": v, "tag": format!("tag-{i:04}"), "body": "x".repeat(150)}),
    )
}

/// Runs the round trip on `kind` in each of `durabilities`; `compacts` is what the engine's
/// `compact` reports (false for engines without a compaction call).
pub fn round_trip(kind: &dyn EngineKind, durabilities: &[Durability], compacts: bool) {
    let dir = temp_dir(kind.name());
    for &durability in durabilities {
        let sub = dir.join(format!("{durability:?}"));
        std::fs::create_dir_all(&sub).unwrap();
        let engine = kind.open(&sub, durability).unwrap();
        let docs: Vec<_> = (0..100).map(|i| doc(i, 0)).collect();
        engine.insert_batch(&docs).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().as_deref(), Some(&docs[7].1));
        assert_eq!(engine.get("missing").unwrap().as_deref(), None);
        let id_list = |found: Vec<super::Doc>| -> Vec<String> {
            found
                .iter()
                .map(|d| d["_id"].as_str().unwrap().to_owned())
                .collect()
        };
        if kind.supports(Capability::RangeScan) {
            assert_eq!(
                id_list(engine.range("id-0010", 3).unwrap()),
                ["id-0010", "id-0011", "id-0012"],
                "{}",
                kind.name()
            );
            // From between two ids, and running off the end.
            assert_eq!(
                id_list(engine.range("id-0097x", 5).unwrap()),
                ["id-0098", "id-0099"]
            );
            assert_eq!(&*engine.range("id-0010", 1).unwrap()[0], &docs[10].1);
        }
        let indexed = kind.supports(Capability::SecondaryIndex);
        if indexed {
            engine.create_index("tag").unwrap();
            assert_eq!(
                id_list(engine.find_eq("tag", "tag-0042").unwrap()),
                ["id-0042"]
            );
            assert!(engine.find_eq("tag", "no such tag").unwrap().is_empty());
        }
        let updates: Vec<_> = (0..50).map(|i| doc(i, 1)).collect();
        engine.update_batch(&updates).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().unwrap()["v"], 1);
        if indexed {
            // The index follows updates.
            let found = engine.find_eq("tag", "tag-0007").unwrap();
            assert_eq!(found.len(), 1, "{}", kind.name());
            assert_eq!(found[0]["v"], 1, "{}", kind.name());
        }
        let mut ids: Vec<String> = (0..25).map(|i| format!("id-{i:04}")).collect();
        ids.push("missing".into());
        engine.delete_batch(&ids).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().as_deref(), None);
        if indexed {
            assert!(
                engine.find_eq("tag", "tag-0007").unwrap().is_empty(),
                "{}",
                kind.name()
            );
        }
        if kind.supports(Capability::RangeScan) {
            assert_eq!(
                id_list(engine.range("id-0000", 2).unwrap()),
                ["id-0025", "id-0026"]
            );
        }
        assert_eq!(engine.count().unwrap(), 75);
        assert_eq!(engine.compact().unwrap(), compacts, "{}", kind.name());
        assert_eq!(engine.count().unwrap(), 75);
        engine.close().unwrap();

        let engine = kind.open(&sub, durability).unwrap();
        assert_eq!(engine.count().unwrap(), 75);
        assert_eq!(engine.get("id-0030").unwrap().unwrap()["v"], 1);
        assert_eq!(engine.get("id-0080").unwrap().as_deref(), Some(&docs[80].1));
        engine.close().unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
