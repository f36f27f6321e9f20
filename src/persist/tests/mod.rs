//! Crash, fault, log-damage and compaction tests of the durable database, on the simulated
//! file system (`storage::sim_fs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compaction;
mod crash;
mod damage;
mod fault;
mod loader;
mod support;
mod tombstones;
