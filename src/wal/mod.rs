//! wal: the write-ahead log. A commit is durable once its `CommitRecord` is in a synced WAL
//! segment (`storage::segment_log`); recovery replays the records written since the last
//! checkpoint. Knows commits as bytes and timestamps; nothing about isolation. Group commit
//! (`group`) publishes each durable group through the oracle, its one use of `txn`.

pub(crate) mod batch;
pub(crate) mod group;
#[cfg(not(loom))]
pub(crate) mod record;
