//! `Collection`: a named handle whose operations each run as one auto-commit unit.

use std::collections::HashSet;
use std::fmt;

use serde_json::Value;

use crate::document::{prepare_checking_size, Document, IdRule};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::DocId;
use crate::sync::Arc;
use crate::txn::commit::{AutoWrite, Expect};

/// A handle on one collection. Cheap to clone; the collection itself is created by the first
/// write that stores a document in it.
///
/// Each write is applied atomically at the commit point, with its precondition (absent for
/// `insert`, present for `replace` and `delete`) checked there, so these operations never fail
/// with a conflict. Each read runs at a fresh snapshot.
#[derive(Clone)]
pub struct Collection {
    engine: Arc<Engine>,
    name: String,
}

impl Collection {
    pub(crate) fn new(engine: Arc<Engine>, name: String) -> Self {
        Self { engine, name }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Inserts `doc`, taking its `_id` from the document or generating one. Fails with
    /// `DuplicateId` if a document with that `_id` exists.
    pub fn insert(&self, doc: Value) -> Result<DocId> {
        self.engine.check_open()?;
        let (id, doc) = self.prepare(doc, None)?;
        self.commit(vec![AutoWrite {
            id: id.clone(),
            body: Some(doc),
            expect: Expect::Absent,
        }])?;
        Ok(id)
    }

    /// Inserts every document in one atomic commit: all or none. Fails with `DuplicateId` if
    /// any `_id` exists already or appears twice in `docs`.
    pub fn insert_many(&self, docs: impl IntoIterator<Item = Value>) -> Result<Vec<DocId>> {
        self.engine.check_open()?;
        let mut writes = Vec::new();
        for doc in docs {
            let (id, doc) = self.prepare(doc, None)?;
            writes.push(AutoWrite {
                id,
                body: Some(doc),
                expect: Expect::Absent,
            });
        }
        let mut seen = HashSet::with_capacity(writes.len());
        if let Some(w) = writes.iter().find(|w| !seen.insert(&w.id)) {
            return Err(Error::DuplicateId {
                collection: self.name.clone(),
                id: w.id.clone(),
            });
        }
        let ids = writes.iter().map(|w| w.id.clone()).collect();
        if !writes.is_empty() {
            self.commit(writes)?;
        }
        Ok(ids)
    }

    /// The document `id` at a fresh snapshot.
    pub fn get(&self, id: impl Into<DocId>) -> Result<Option<Document>> {
        let id = id.into();
        self.engine
            .at_latest(|ts| self.engine.read_at(ts, &self.name, &id))
    }

    /// Replaces document `id` with `doc`. Returns false, inserting nothing, if there is no such
    /// document.
    pub fn replace(&self, id: impl Into<DocId>, doc: Value) -> Result<bool> {
        self.engine.check_open()?;
        let id = id.into();
        let (id, doc) = self.prepare(doc, Some(&id))?;
        let applied = self.commit(vec![AutoWrite {
            id,
            body: Some(doc),
            expect: Expect::Present,
        }])?;
        Ok(applied == [true])
    }

    /// Inserts `doc`, or replaces the document with the same `_id`. Returns the `_id`.
    pub fn upsert(&self, doc: Value) -> Result<DocId> {
        self.engine.check_open()?;
        let (id, doc) = self.prepare(doc, None)?;
        self.commit(vec![AutoWrite {
            id: id.clone(),
            body: Some(doc),
            expect: Expect::Any,
        }])?;
        Ok(id)
    }

    /// Deletes document `id`. Returns false if there was no such document.
    pub fn delete(&self, id: impl Into<DocId>) -> Result<bool> {
        self.engine.check_open()?;
        let applied = self.commit(vec![AutoWrite {
            id: id.into(),
            body: None,
            expect: Expect::Present,
        }])?;
        Ok(applied == [true])
    }

    /// Number of documents at a fresh snapshot.
    pub fn len(&self) -> Result<usize> {
        self.engine
            .at_latest(|ts| self.engine.count_at(ts, &self.name))
    }

    /// True if the collection has no document at a fresh snapshot.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every document at one fresh snapshot, in `_id` order.
    pub fn scan(&self) -> Result<Vec<Document>> {
        self.engine.at_latest(|ts| {
            self.engine
                .scan_at(ts, &self.name)
                .into_iter()
                .map(|(_, d)| d)
                .collect()
        })
    }

    fn commit(&self, writes: Vec<AutoWrite>) -> Result<Vec<bool>> {
        self.engine.commit_auto(&self.name, writes)
    }

    /// Validates `doc`. On a durable database the size check waits for the commit, which
    /// serializes the document for the WAL anyway (`CommitLog::encode_write`) and refuses it
    /// before anything is applied.
    fn prepare(&self, doc: Value, id: Option<&DocId>) -> Result<(DocId, Document)> {
        let rule = match id {
            Some(id) => IdRule::Fixed(id),
            None => IdRule::FromDocumentOrGenerate(&self.engine.ids),
        };
        let max = self.engine.options.max_document_size;
        prepare_checking_size(doc, rule, (!self.engine.logs_writes()).then_some(max))
    }
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
