#![allow(clippy::unwrap_used)]
use super::*;
use crate::document::{prepare, IdRule};
use crate::id::DocId;

fn doc(v: i64) -> Document {
    let id = DocId::from(1);
    prepare(serde_json::json!({ "v": v }), IdRule::Fixed(&id), 1 << 20)
        .unwrap()
        .1
}

/// Waits until the epoch collector has moved a retired batch into `limbo`. Other tests in
/// this process pin the collector too; the grace period ends once all of them have moved
/// on. Flushing runs the hand-over, on this thread or another.
fn wait_for_hand_over(limbo: &Limbo) {
    let mut flushes = 0;
    while limbo.ready.lock().is_empty() {
        epoch::pin().flush();
        flushes += 1;
        assert!(flushes < 1_000_000, "the epoch never advanced");
    }
}

fn value(d: Option<Document>) -> Option<i64> {
    d.map(|d| d["v"].as_i64().unwrap())
}

#[test]
fn reads_follow_the_visibility_rule_and_prune_keeps_what_the_watermark_needs() {
    let chain = VersionChain::new();
    let guard = epoch::pin();
    assert!(chain.is_empty(&guard));
    chain.install(Timestamp(2), Some(doc(20)), &guard);
    chain.install(Timestamp(4), Some(doc(40)), &guard);
    chain.install(Timestamp(6), None, &guard);
    assert_eq!(value(chain.read(Timestamp(1), &guard)), None);
    assert_eq!(value(chain.read(Timestamp(3), &guard)), Some(20));
    assert_eq!(value(chain.read(Timestamp(5), &guard)), Some(40));
    assert_eq!(value(chain.read(Timestamp(9), &guard)), None);
    assert_eq!(chain.newest(&guard), Some((Timestamp(6), false)));

    // Watermark 5: the version at 4 is what a snapshot at 5 sees; only the one at 2 goes.
    assert_eq!(
        chain.prune(Timestamp(5), &guard, &mut Retired::new()),
        Pruned {
            freed: 1,
            dead: false,
            settled: false,
        }
    );
    assert_eq!(chain.len(&guard), 2);
    assert_eq!(value(chain.read(Timestamp(5), &guard)), Some(40));
    assert!(!chain.is_dead_at(Timestamp(5), &guard));

    // Watermark 6: the tombstone is all anyone can see, and the chain is dead.
    assert_eq!(
        chain.prune(Timestamp(6), &guard, &mut Retired::new()),
        Pruned {
            freed: 1,
            dead: true,
            settled: false,
        }
    );
    assert_eq!(chain.len(&guard), 1);
    assert!(chain.is_dead_at(Timestamp(6), &guard));
    // Below every version nothing is pruned.
    assert_eq!(
        chain.prune(Timestamp(1), &guard, &mut Retired::new()),
        Pruned::default()
    );
}

#[test]
fn a_chain_is_settled_once_one_live_version_at_or_below_the_watermark_is_left() {
    let chain = VersionChain::new();
    let guard = epoch::pin();
    chain.install(Timestamp(2), Some(doc(20)), &guard);
    chain.install(Timestamp(4), Some(doc(40)), &guard);
    // A newer version than the watermark's remains: a later pass has work here.
    let at_3 = chain.prune(Timestamp(3), &guard, &mut Retired::new());
    assert_eq!((at_3.freed, at_3.dead, at_3.settled), (0, false, false));
    let at_4 = chain.prune(Timestamp(4), &guard, &mut Retired::new());
    assert_eq!((at_4.freed, at_4.dead, at_4.settled), (1, false, true));
    // Settled stays settled, with nothing more to unlink.
    let again = chain.prune(Timestamp(9), &guard, &mut Retired::new());
    assert_eq!((again.freed, again.dead, again.settled), (0, false, true));
}

#[test]
fn retired_versions_wait_in_limbo_until_their_owner_drains_it() {
    let chain = VersionChain::new();
    let guard = epoch::pin();
    chain.install(Timestamp(1), Some(doc(10)), &guard);
    let old = chain.read(Timestamp(1), &guard).unwrap();
    chain.install(Timestamp(2), Some(doc(20)), &guard);
    // Held by the chain and by `old`.
    assert_eq!(old.handles(), 2);

    let limbo = Arc::new(Limbo::default());
    let mut retired = Retired::new();
    assert_eq!(chain.prune(Timestamp(2), &guard, &mut retired).freed, 1);
    assert_eq!(retired.len(), 1);
    retired.defer_into(&limbo, &guard);
    drop(guard);

    wait_for_hand_over(&limbo);
    // The collector ran the hand-over, but nothing was released by it.
    assert_eq!(old.handles(), 2);
    assert_eq!(limbo.drain(), 1);
    assert_eq!(old.handles(), 1);
    assert_eq!(limbo.drain(), 0);
}

#[test]
fn committers_release_at_most_what_they_ask_for() {
    let chain = VersionChain::new();
    let guard = epoch::pin();
    let mut olds = Vec::new();
    for v in 1..=3i64 {
        let ts = Timestamp(v.unsigned_abs());
        chain.install(ts, Some(doc(v)), &guard);
        olds.push(chain.read(ts, &guard).unwrap());
    }
    let limbo = Arc::new(Limbo::default());
    let mut retired = Retired::new();
    assert_eq!(chain.prune(Timestamp(3), &guard, &mut retired).freed, 2);
    retired.defer_into(&limbo, &guard);
    drop(guard);
    wait_for_hand_over(&limbo);
    // How many of the two pruned versions the limbo still holds.
    let held = |olds: &[Document]| olds[..2].iter().filter(|d| d.handles() == 2).count();
    assert_eq!(held(&olds), 2);
    assert_eq!(limbo.release_some(1), 1);
    assert_eq!(held(&olds), 1);
    // Asked for more than is left: releases the rest, and the emptied batch goes too.
    assert_eq!(limbo.release_some(5), 1);
    assert_eq!(held(&olds), 0);
    assert!(limbo.is_empty());
    assert_eq!(limbo.release_some(5), 0);
    // The version still in the chain keeps the chain's reference.
    assert_eq!(olds[2].handles(), 2);
}
