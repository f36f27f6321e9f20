//! One committed (or about-to-be-committed) version of a document: the node of a version chain
//! and, at the same time, the allocation a `Document` handle points to.
//!
//! Sharing one allocation means a read touches one scattered memory location (the node, whose
//! timestamp, reference count and JSON value header sit together) instead of two (a node, then a
//! separately allocated body). On a large database that is the difference between one and two
//! cache and TLB misses per read.
//!
//! Ownership: a node is reference-counted (`PayloadArc`). A chain holds one strong reference
//! per linked node (as a raw pointer in its `Atomic` links, from `Arc::into_raw`), released
//! through crossbeam-epoch when the node is unlinked; every `Document` handle holds another.
//! `next` never owns: the chain does.

use crossbeam_epoch::Atomic;
use serde_json::Value;

use super::Timestamp;
use crate::sync::{Ordering, PayloadAtomicU64};

/// `commit_ts` of a version not yet installed in a chain.
const UNCOMMITTED: u64 = u64::MAX;

/// A version: a document body, or a tombstone (`body == None`) recording a delete.
///
/// `repr(C)` keeps `commit_ts`, the first thing a reader checks, on the same cache line as the
/// `Arc` reference count it increments next.
#[repr(C)]
pub(crate) struct Version {
    /// `UNCOMMITTED` until the commit path installs the node, then its commit timestamp.
    /// Written once, by `mark_installed` (Relaxed), before the node is published by the
    /// chain's Release store of `head`; read by chain walkers after their Acquire load of the
    /// pointer that led them here.
    commit_ts: PayloadAtomicU64,
    /// The next older version in the chain. Written by `VersionChain::install` before publication
    /// and by GC's `prune` (swap to null); read by chain walkers (Acquire).
    pub(super) next: Atomic<Version>,
    pub(crate) body: Option<Value>,
}

impl Version {
    /// A body that is not in any chain yet.
    pub(crate) fn uncommitted(body: Value) -> Self {
        Self {
            commit_ts: PayloadAtomicU64::new(UNCOMMITTED),
            next: Atomic::null(),
            body: Some(body),
        }
    }

    /// A tombstone, about to be installed.
    pub(crate) fn tombstone() -> Self {
        Self {
            commit_ts: PayloadAtomicU64::new(UNCOMMITTED),
            next: Atomic::null(),
            body: None,
        }
    }

    pub(crate) fn commit_ts(&self) -> Timestamp {
        Timestamp(self.commit_ts.load(Ordering::Relaxed))
    }

    /// Stamps the commit timestamp. A version is installed in exactly one chain, once.
    pub(super) fn mark_installed(&self, ts: Timestamp) {
        let previous = self.commit_ts.swap(ts.0, Ordering::Relaxed);
        debug_assert_eq!(previous, UNCOMMITTED, "a version was installed twice");
    }
}
