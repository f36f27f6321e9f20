//! The round trip every adapter's unit test runs, so that each engine is held to the same
//! contract: insert, read, upsert, delete, count, compact, and a reopen that finds it all.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{Durability, EngineKind};

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
        json!({"_id": id, "n": i, "v": v, "body": "x".repeat(150)}),
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
        let updates: Vec<_> = (0..50).map(|i| doc(i, 1)).collect();
        engine.update_batch(&updates).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().unwrap()["v"], 1);
        let mut ids: Vec<String> = (0..25).map(|i| format!("id-{i:04}")).collect();
        ids.push("missing".into());
        engine.delete_batch(&ids).unwrap();
        assert_eq!(engine.get("id-0007").unwrap().as_deref(), None);
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
