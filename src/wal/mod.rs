//! wal: the write-ahead log. A commit is durable once its `CommitRecord` is in a synced WAL
//! segment (`storage::segment_log`); recovery replays the records written since the last
//! checkpoint. Knows commits as bytes and timestamps; nothing about isolation.
// Issue 3 wires the WAL into the commit path next; until then only the module's tests use it.
#![allow(
    dead_code,
    reason = "groundwork for the durability layer (issue 3), wired in next"
)]

pub(crate) mod record;
