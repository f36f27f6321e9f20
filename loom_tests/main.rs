//! Loom models of the lock-free core. Compiled only under `--cfg loom`; see `scripts/loom.sh`.
//!
//! Tier 1 (`--cfg loom`) models the oracle, the snapshot registry, the commit lock, the catalog
//! cell and the document map. Tier 2 (`--cfg loom --cfg crossbeam_loom --features loom`) also
//! models crossbeam-epoch and the version chain's atomics, which tier 1 cannot see: run the
//! chain, publication and GC models there.
#![cfg(loom)]
#![allow(clippy::unwrap_used, missing_docs)]

mod chain;
mod committers;
mod count;
mod gc;
mod group_commit;
mod oracle;
mod publication;
mod registry;
