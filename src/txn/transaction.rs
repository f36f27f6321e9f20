//! `Transaction`: reads at a snapshot plus its own buffered writes, applied atomically by
//! `commit`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::document::{prepare, validate_collection_name, Document, IdRule};
use crate::error::{Error, Result};
use crate::id::DocId;
use crate::snapshot::Snapshot;
use crate::txn::write_set::{ReadSet, WriteSet};
use crate::txn::Isolation;

/// A transaction. Its snapshot is taken at `begin`; its writes stay private until `commit`.
///
/// `commit` and `rollback` consume it; dropping it without committing rolls it back. An
/// operation that returns an error (a duplicate `_id`, an invalid document) changes nothing, and
/// the transaction stays usable.
pub struct Transaction {
    snapshot: Snapshot,
    isolation: Isolation,
    writes: WriteSet,
    reads: ReadSet,
}

impl Transaction {
    pub(crate) fn new(snapshot: Snapshot, isolation: Isolation) -> Self {
        Self {
            snapshot,
            isolation,
            writes: WriteSet::default(),
            reads: ReadSet::default(),
        }
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The snapshot this transaction reads from (without its own writes).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The document `id` of `collection` as this transaction sees it.
    pub fn get(&mut self, collection: &str, id: impl Into<DocId>) -> Result<Option<Document>> {
        self.check(collection)?;
        let id = id.into();
        Ok(self.view(collection, &id))
    }

    /// Every document of `collection` as this transaction sees it, in `_id` order.
    pub fn scan(&mut self, collection: &str) -> Result<Vec<Document>> {
        self.check(collection)?;
        if self.isolation == Isolation::Serializable {
            self.reads.scan(collection);
        }
        let base = self.snapshot.scan_with_ids(collection);
        let Some(own) = self.writes.collection(collection) else {
            return Ok(base.into_iter().map(|(_, d)| d).collect());
        };
        let mut merged: BTreeMap<DocId, Document> = base.into_iter().collect();
        for (id, body) in own {
            match body {
                Some(doc) => merged.insert(id.clone(), doc.clone()),
                None => merged.remove(id),
            };
        }
        Ok(merged.into_values().collect())
    }

    /// Inserts `doc`; its `_id` is taken from the document or generated. Fails with
    /// `DuplicateId` if this transaction already sees a document with that `_id`.
    pub fn insert(&mut self, collection: &str, doc: Value) -> Result<DocId> {
        self.check(collection)?;
        let (id, doc) = self.prepare(doc, None)?;
        if self.view(collection, &id).is_some() {
            return Err(Error::DuplicateId {
                collection: collection.to_owned(),
                id,
            });
        }
        self.writes.put(collection, id.clone(), Some(doc));
        Ok(id)
    }

    /// Replaces document `id` with `doc`. Returns false, writing nothing, if this transaction
    /// sees no such document.
    pub fn replace(&mut self, collection: &str, id: impl Into<DocId>, doc: Value) -> Result<bool> {
        self.check(collection)?;
        let id = id.into();
        let (id, doc) = self.prepare(doc, Some(&id))?;
        if self.view(collection, &id).is_none() {
            return Ok(false);
        }
        self.writes.put(collection, id, Some(doc));
        Ok(true)
    }

    /// Inserts `doc`, or replaces the document with the same `_id`.
    pub fn upsert(&mut self, collection: &str, doc: Value) -> Result<DocId> {
        self.check(collection)?;
        let (id, doc) = self.prepare(doc, None)?;
        self.writes.put(collection, id.clone(), Some(doc));
        Ok(id)
    }

    /// Deletes document `id`. Returns false if this transaction sees no such document.
    pub fn delete(&mut self, collection: &str, id: impl Into<DocId>) -> Result<bool> {
        self.check(collection)?;
        let id = id.into();
        if self.view(collection, &id).is_none() {
            return Ok(false);
        }
        self.writes.put(collection, id, None);
        Ok(true)
    }

    /// Applies every write atomically. Fails with a conflict (`is_conflict()`), applying
    /// nothing, if another transaction committed first to a document this one wrote (or, when
    /// serializable, to what it read).
    pub fn commit(self) -> Result<()> {
        let read_ts = self.snapshot.timestamp();
        self.snapshot.engine().commit_transaction(
            read_ts,
            self.isolation,
            &self.writes,
            &self.reads,
        )
    }

    /// Discards every write. Dropping the transaction does the same.
    pub fn rollback(self) {}

    /// The document as this transaction sees it: its own write if any, else the snapshot's.
    /// In serializable mode a snapshot read is recorded for validation at commit.
    fn view(&mut self, collection: &str, id: &DocId) -> Option<Document> {
        if let Some(own) = self.writes.get(collection, id) {
            return own.clone();
        }
        if self.isolation == Isolation::Serializable {
            self.reads.doc(collection, id);
        }
        self.snapshot.read_unchecked(collection, id)
    }

    fn prepare(&self, doc: Value, id: Option<&DocId>) -> Result<(DocId, Document)> {
        let engine = self.snapshot.engine();
        let rule = match id {
            Some(id) => IdRule::Fixed(id),
            None => IdRule::FromDocumentOrGenerate(&engine.ids),
        };
        prepare(doc, rule, engine.options.max_document_size)
    }

    fn check(&self, collection: &str) -> Result<()> {
        self.snapshot.engine().check_open()?;
        validate_collection_name(collection)
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snapshot.timestamp())
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}
