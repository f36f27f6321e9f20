//! The version chain: a writer prepends a version while readers at two snapshot timestamps
//! traverse; each gets exactly the version visible at its timestamp.
//! Meaningful in tier 2, where the chain's atomics are loom's.

use crossbeam_epoch as epoch;
use loom::sync::Arc;
use loom::thread;
use serde_json::json;
use snapbase::__loom::{document, Keep, Limbo, Oracle, Retired, VersionChain};

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

/// The dirty tag (see `gc::dirty`): a commit installs over a dirty chain while GC clears the
/// tag and prunes it. Whichever order the two read-modify-writes of the head take, exactly one
/// side adds the id back to the dirty set, so the version GC may not have seen is not forgotten
/// and the set holds the id once.
#[test]
fn an_install_racing_a_prune_leaves_the_chain_marked_exactly_once() {
    loom::model(|| {
        let chain = Arc::new(VersionChain::new());
        {
            let guard = epoch::pin();
            chain.install(1.into(), Some(document(json!({"v": 1}))), &guard);
            // Over an existing version: the tag goes from clear to set.
            assert!(chain.install(2.into(), Some(document(json!({"v": 2}))), &guard));
        }
        let committer = {
            let chain = chain.clone();
            thread::spawn(move || {
                chain.install(3.into(), Some(document(json!({"v": 3}))), &epoch::pin())
            })
        };
        // GC at watermark 2, as `gc::Sweep::visit` does it.
        let (gc_adds, freed) = {
            let guard = epoch::pin();
            let mut retired = Retired::new();
            chain.clear_dirty(&guard);
            let pruned = chain.prune(2.into(), &guard, &mut retired);
            let adds = !pruned.settled && !pruned.dead && chain.mark_dirty(&guard);
            drop(retired);
            (adds, pruned.freed)
        };
        let committer_adds = committer.join().unwrap();
        assert_eq!(freed, 1, "the version at 1 is below the watermark's");
        assert_eq!(chain.len(&epoch::pin()), 2, "versions 2 and 3 remain");
        assert!(
            committer_adds ^ gc_adds,
            "exactly one side adds the id back (committer: {committer_adds}, gc: {gc_adds})"
        );
        for _ in 0..4 {
            epoch::pin().flush();
        }
    });
}

/// GC unlinks a version that lies between two snapshots (`prune_keeping`) while a reader at the
/// older snapshot walks the chain. The reader still gets its version, whichever link it loads
/// (through the unlinked version, whose own link is left alone, or past it), and the unlinked
/// version is retired once, after the reader is done with it.
#[test]
fn unlinking_a_version_between_snapshots_races_readers() {
    loom::model(|| {
        let chain = Arc::new(VersionChain::new());
        {
            let guard = epoch::pin();
            for v in 1..=3_u64 {
                chain.install(v.into(), Some(document(json!({ "v": v }))), &guard);
            }
        }
        let old = {
            let chain = chain.clone();
            thread::spawn(move || version_of(&chain, 1))
        };
        let limbo = std::sync::Arc::new(Limbo::default());
        // A snapshot is open at 1 and 3 is the latest commit: version 2, visible in [2, 3),
        // is needed by no snapshot now or later.
        let freed = {
            let guard = epoch::pin();
            let mut retired = Retired::new();
            let keep = Keep {
                watermark: 1.into(),
                visible: 3.into(),
                open: &[1],
            };
            let pruned = chain.prune_keeping(&keep, &guard, &mut retired);
            retired.defer_into(&limbo, &guard);
            pruned.freed
        };
        assert_eq!(old.join().unwrap(), Some(1));
        assert_eq!(version_of(&chain, 3), Some(3));
        assert_eq!(
            version_of(&chain, 2),
            Some(1),
            "version 2 is gone from the chain"
        );
        assert_eq!(freed, 1, "version 2 is unlinked");
        assert_eq!(chain.len(&epoch::pin()), 2, "versions 1 and 3 remain");
        for _ in 0..4 {
            epoch::pin().flush();
        }
        limbo.drain();
    });
}
