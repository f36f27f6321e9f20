//! The version chain: a writer prepends a version while readers at two snapshot timestamps
//! traverse; each gets exactly the version visible at its timestamp.
//! Meaningful in tier 2, where the chain's atomics are loom's.

use crossbeam_epoch as epoch;
use loom::sync::Arc;
use loom::thread;
use serde_json::json;
use snapbase::__loom::{document, Oracle, VersionChain};

fn version_of(chain: &VersionChain, ts: u64) -> Option<u64> {
    let guard = epoch::pin();
    chain
        .read(ts.into(), &guard)
        .map(|d| d["v"].as_u64().unwrap())
}

#[test]
fn readers_see_exactly_their_version_while_a_writer_installs() {
    loom::model(|| {
        let oracle = Arc::new(Oracle::new());
        let chain = Arc::new(VersionChain::new());
        {
            let slot = oracle.begin_commit();
            chain.install(slot.ts(), Some(document(json!({"v": 1}))), &epoch::pin());
            slot.publish();
        }
        let writer = {
            let (oracle, chain) = (oracle.clone(), chain.clone());
            thread::spawn(move || {
                let slot = oracle.begin_commit();
                chain.install(slot.ts(), Some(document(json!({"v": 2}))), &epoch::pin());
                slot.publish();
            })
        };
        // Reader at the latest published timestamp: exactly that version.
        let ts = oracle.visible().get();
        assert_eq!(version_of(&chain, ts), Some(ts));
        // Reader pinned at the first commit: still version 1, whatever the writer did.
        assert_eq!(version_of(&chain, 1), Some(1));
        writer.join().unwrap();
        assert_eq!(version_of(&chain, 2), Some(2));
    });
}
