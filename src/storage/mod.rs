//! storage: the bytes on disk. Every file operation goes through the `Vfs` seam (`vfs`), whose
//! real implementation is `std_fs` and whose simulated one (`sim_fs`, tests and the `sim`
//! feature only) models crashes and injected faults. `frame` is the record framing shared by
//! the WAL and the data log: `[len u32 LE][crc32 u32 LE][payload]`.
//!
//! Knows bytes, offsets and files; nothing about documents, versions or isolation.
// The seam and the log offer a few operations only the tests use so far (`OpenOrCreate`,
// `VfsFile::is_empty`, `SegmentLog::is_poisoned`, `Manifest::new`, `DirLock::dir`); they are
// part of the contract the simulator is tested against, so they stay.
#![allow(
    dead_code,
    reason = "a few seam operations are used only by tests so far"
)]

pub(crate) mod frame;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod segment_log;
#[cfg(any(test, feature = "sim"))]
pub(crate) mod sim_fs;
pub(crate) mod std_fs;
#[cfg(test)]
pub(crate) mod temp_dir;
pub(crate) mod vfs;
