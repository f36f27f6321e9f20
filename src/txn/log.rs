//! `CommitLog`: the WAL record of one commit, built by the commit path as it decides what the
//! commit writes, and handed to `persist` at the commit point.
//!
//! A database in memory builds nothing: every method is a no-op when the engine has no
//! persistence, and under loom, which does not compile the durability layer.

use crate::document::Document;
use crate::engine::Engine;
use crate::error::Result;
use crate::id::DocId;
use crate::txn::oracle::CommitSlot;

#[cfg(not(loom))]
use crate::wal::record::{self, CommitRecord, RecordId, RecordOp};

/// The operations of one commit, in the order recovery applies them.
#[derive(Debug)]
pub(crate) struct CommitLog {
    #[cfg(not(loom))]
    ops: Option<Vec<RecordOp>>,
}

#[cfg_attr(
    loom,
    allow(
        clippy::unused_self,
        clippy::unnecessary_wraps,
        reason = "under loom the log records nothing, but keeps the signatures the commit path calls"
    )
)]
impl CommitLog {
    /// An empty log for a commit of `engine`; it records only if the engine is durable.
    pub(crate) fn new(engine: &Engine) -> Self {
        Self::with_capacity(engine, 0)
    }

    /// [`CommitLog::new`] with room for `ops` operations, so that a log built under the commit
    /// lock need not grow there.
    pub(crate) fn with_capacity(engine: &Engine, ops: usize) -> Self {
        #[cfg(not(loom))]
        return Self {
            ops: engine.persist.as_ref().map(|_| Vec::with_capacity(ops)),
        };
        #[cfg(loom)]
        {
            let _ = (engine, ops);
            Self {}
        }
    }

    /// A new incarnation of `collection`, before the first put into it.
    pub(crate) fn create(&mut self, collection: &str) {
        #[cfg(not(loom))]
        if let Some(ops) = &mut self.ops {
            ops.push(RecordOp::CreateCollection {
                collection: collection.to_owned(),
            });
        }
        #[cfg(loom)]
        let _ = collection;
    }

    /// Adds a write encoded by [`CommitLog::encode_write`].
    #[cfg_attr(
        loom,
        allow(
            clippy::needless_pass_by_value,
            reason = "under loom an encoded write holds nothing to move"
        )
    )]
    pub(crate) fn write(&mut self, write: EncodedWrite) {
        #[cfg(not(loom))]
        if let (Some(ops), Some(op)) = (&mut self.ops, write.op) {
            ops.push(op);
        }
        #[cfg(loom)]
        let _ = write;
    }

    /// Encodes a put of `body` (document `id`) into `collection` or, for `None`, a delete of
    /// `id`, for a commit of `engine`; with `max_size`, refuses a body whose JSON is longer
    /// (the caller left the size check to this serialization). Called before the commit lock
    /// is taken: encoding needs no order, and every committer waits for whatever is done
    /// under the lock.
    pub(crate) fn encode_write(
        engine: &Engine,
        collection: &str,
        id: &DocId,
        body: Option<&Document>,
        max_size: Option<usize>,
    ) -> Result<EncodedWrite> {
        #[cfg(not(loom))]
        {
            if engine.persist.is_none() {
                return Ok(EncodedWrite { op: None });
            }
            let op = match body {
                Some(doc) => {
                    let json = record::json_body(doc);
                    if let Some(max) = max_size {
                        crate::document::check_size(json.len(), max)?;
                    }
                    record::put(collection, id, json)
                }
                None => RecordOp::Delete {
                    collection: collection.to_owned(),
                    id: RecordId::from(id),
                },
            };
            Ok(EncodedWrite { op: Some(op) })
        }
        #[cfg(loom)]
        {
            let _ = (engine, collection, id, body, max_size);
            Ok(EncodedWrite {})
        }
    }

    /// A drop of the current incarnation of `collection`.
    pub(crate) fn drop_collection(&mut self, collection: &str) {
        #[cfg(not(loom))]
        if let Some(ops) = &mut self.ops {
            ops.push(RecordOp::DropCollection {
                collection: collection.to_owned(),
            });
        }
        #[cfg(loom)]
        let _ = collection;
    }

    /// Encodes the record for commit `slot`. Fails, before anything is installed, if the
    /// database is poisoned or the record is too large for the WAL.
    pub(crate) fn seal(self, engine: &Engine, slot: &CommitSlot<'_>) -> Result<SealedLog> {
        #[cfg(not(loom))]
        {
            let (Some(ops), Some(persist)) = (self.ops, engine.persist.as_ref()) else {
                return Ok(SealedLog { bytes: None });
            };
            persist.check_writable()?;
            let bytes = record::encode(&CommitRecord {
                ts: slot.ts().0,
                ops,
            });
            if bytes.len() > crate::wal::batch::MAX_RECORD_LEN {
                return Err(crate::error::Error::CommitTooLarge {
                    size: bytes.len(),
                    max: crate::wal::batch::MAX_RECORD_LEN,
                });
            }
            Ok(SealedLog { bytes: Some(bytes) })
        }
        #[cfg(loom)]
        {
            let _ = (engine, slot);
            Ok(SealedLog {})
        }
    }
}

/// One write of a commit in its record form (nothing for a database in memory), built outside
/// the commit lock and added to a [`CommitLog`] under it.
#[derive(Debug)]
pub(crate) struct EncodedWrite {
    #[cfg(not(loom))]
    op: Option<RecordOp>,
}

/// An encoded commit record, ready for the commit point.
#[derive(Debug)]
pub(crate) struct SealedLog {
    #[cfg(not(loom))]
    bytes: Option<Vec<u8>>,
}

#[cfg_attr(
    loom,
    allow(
        clippy::unused_self,
        clippy::unnecessary_wraps,
        reason = "under loom a commit only publishes, but keeps the signature the commit path calls"
    )
)]
impl SealedLog {
    /// Ends the commit: publishes it at once (in memory), or hands the record to the WAL, which
    /// publishes it as its durability mode says. Everything must be installed already.
    pub(crate) fn commit(self, engine: &Engine, slot: CommitSlot<'_>) -> Result<()> {
        #[cfg(not(loom))]
        if let (Some(bytes), Some(persist)) = (self.bytes, engine.persist.as_ref()) {
            return persist.commit(slot, &bytes, &engine.oracle);
        }
        let _ = engine;
        slot.publish();
        Ok(())
    }
}
