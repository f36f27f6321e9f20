//! The commit path: validate, install, publish, all under the oracle's commit lock. The WAL
//! operations of a durable commit are encoded before the lock is taken (`CommitLog`), so the
//! lock covers only what must be ordered.
//!
//! Every commit follows the same three steps, and only the first can fail:
//! 1. **Validate** against the latest committed state: first-committer-wins on every document
//!    written (its newest version must not be newer than the snapshot), the incarnation check on
//!    every collection touched, and in serializable mode the same checks on what was read.
//!    Auto-commit operations have no snapshot; their preconditions (absent for insert, present
//!    for replace and delete) are checked here instead, so they never conflict.
//! 2. **Install**: publish any catalog change, then prepend one version per written document
//!    with the commit's timestamp. Cannot fail.
//! 3. **Publish** the timestamp (see `oracle`), which makes the whole commit visible at once.

use crossbeam_epoch::{self as epoch, Guard};

use crate::catalog::{Catalog, CollectionStore, Incarnation};
use crate::document::Document;
use crate::engine::Engine;
use crate::error::{ConflictKind, Error, Result};
use crate::id::DocId;
use crate::mvcc::chain::VersionChain;
use crate::mvcc::Timestamp;
use crate::sync::{fence, Arc, Ordering};
use crate::txn::log::{CommitLog, EncodedWrite};
use crate::txn::oracle::CommitSlot;
use crate::txn::write_set::{ReadSet, WriteSet};
use crate::txn::Isolation;

/// The precondition of one auto-commit write, checked at the commit point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Insert: the document must not exist (else `DuplicateId`).
    Absent,
    /// Replace or delete: applied only if the document exists.
    Present,
    /// Upsert: always applied.
    Any,
}

/// One write of an auto-commit operation.
#[derive(Debug)]
pub(crate) struct AutoWrite {
    pub(crate) id: DocId,
    pub(crate) body: Option<Document>,
    pub(crate) expect: Expect,
}

impl Engine {
    /// Commits a transaction's buffered writes. Read-only transactions always succeed.
    pub(crate) fn commit_transaction(
        &self,
        read_ts: Timestamp,
        isolation: Isolation,
        writes: &WriteSet,
        reads: &ReadSet,
    ) -> Result<()> {
        // A read-only transaction serializes at its snapshot, so it never conflicts.
        if writes.is_empty() {
            return self.check_open();
        }
        // Checked in size when the transaction took them.
        let encoded = writes
            .iter()
            .map(|(name, docs)| {
                docs.iter()
                    .map(|(id, body)| CommitLog::encode_write(self, name, id, body.as_ref(), None))
                    .collect::<Result<Vec<EncodedWrite>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        // Allocated before the lock: room for every write and a creation per collection.
        let ops = encoded.iter().map(|e| e.len() + 1).sum();
        let mut log = CommitLog::with_capacity(self, ops);
        let mut targets = Vec::with_capacity(encoded.len());
        let slot = self.oracle.begin_commit();
        self.check_writable()?;
        let catalog = self.catalog.load_full();
        let guard = epoch::pin();

        for (name, docs) in writes.iter() {
            if let Some(inc) = incarnation_unchanged(&catalog, name, read_ts)? {
                for id in docs.keys() {
                    if changed_since(&inc.store, id, read_ts, &guard) {
                        return Err(Error::conflict(name, Some(id), ConflictKind::WriteWrite));
                    }
                }
            }
        }
        if isolation == Isolation::Serializable {
            validate_reads(&catalog, reads, read_ts, &guard)?;
        }

        let mut next_catalog: Option<Catalog> = None;
        // `encoded` follows the same iteration of the same unchanged write set.
        for ((name, docs), encoded) in writes.iter().zip(encoded) {
            let store = match catalog.current(name) {
                Some(inc) => Arc::clone(&inc.store),
                // Deleting from a collection that does not exist changes nothing.
                None if docs.values().all(Option::is_none) => continue,
                None => {
                    log.create(name);
                    create(&mut next_catalog, &catalog, name, slot.ts())
                }
            };
            for write in encoded {
                log.write(write);
            }
            targets.push((store, docs));
        }
        let log = log.seal(self, &slot)?;
        if let Some(next) = next_catalog {
            self.catalog.store(Arc::new(next));
        }
        for (store, docs) in targets {
            let live_before = store.live_docs.load(Ordering::Relaxed);
            for (id, body) in docs {
                install(&store, id, body.clone(), slot.ts(), &guard);
            }
            note_live_count(&store, live_before, slot.ts());
        }
        drop(guard);
        log.commit(self, slot)?;
        self.free_after_commit(writes.iter().map(|(_, docs)| docs.len()).sum());
        Ok(())
    }

    /// Applies auto-commit writes to one collection atomically, checking each precondition at
    /// the commit point. Returns, per write, whether it was applied. A failed `Absent`
    /// precondition fails the whole batch with `DuplicateId` and applies nothing.
    pub(crate) fn commit_auto(
        &self,
        collection: &str,
        writes: Vec<AutoWrite>,
    ) -> Result<Vec<bool>> {
        // `Collection` leaves the size check of a durable database's documents to this.
        let max = Some(self.options.max_document_size);
        let encoded = writes
            .iter()
            .map(|w| CommitLog::encode_write(self, collection, &w.id, w.body.as_ref(), max))
            .collect::<Result<Vec<EncodedWrite>>>()?;
        // Allocated before the lock, which every committer waits for: one more operation in
        // case the collection is created.
        let mut log = CommitLog::with_capacity(self, encoded.len() + 1);
        let mut applied = Vec::with_capacity(writes.len());
        let slot = self.oracle.begin_commit();
        self.check_writable()?;
        let catalog = self.catalog.load_full();
        let guard = epoch::pin();
        let current = catalog
            .current(collection)
            .map(|inc| Arc::clone(&inc.store));

        for w in &writes {
            let exists = current
                .as_deref()
                .is_some_and(|s| is_live(s, &w.id, &guard));
            applied.push(match w.expect {
                Expect::Absent if exists => {
                    return Err(Error::DuplicateId {
                        collection: collection.to_owned(),
                        id: w.id.clone(),
                    })
                }
                Expect::Present => exists,
                Expect::Absent | Expect::Any => true,
            });
        }
        if !applied.iter().any(|&a| a) {
            return Ok(applied);
        }
        if current.is_none() {
            log.create(collection);
        }
        for (write, &ok) in encoded.into_iter().zip(&applied) {
            if ok {
                log.write(write);
            }
        }
        let log = log.seal(self, &slot)?;
        let store = current.unwrap_or_else(|| {
            let (next, store) = catalog.with_created(collection, slot.ts());
            self.catalog.store(Arc::new(next));
            store
        });
        let live_before = store.live_docs.load(Ordering::Relaxed);
        for (w, &ok) in writes.into_iter().zip(&applied) {
            if ok {
                install(&store, &w.id, w.body, slot.ts(), &guard);
            }
        }
        note_live_count(&store, live_before, slot.ts());
        drop(guard);
        log.commit(self, slot)?;
        self.free_after_commit(applied.iter().filter(|&&a| a).count());
        Ok(applied)
    }

    /// Drops the current incarnation of `name` as one commit. Returns false if there is none.
    pub(crate) fn drop_collection(&self, name: &str) -> Result<bool> {
        let slot = self.oracle.begin_commit();
        self.check_writable()?;
        let catalog = self.catalog.load_full();
        let Some(inc) = catalog.current(name) else {
            return Ok(false);
        };
        let mut log = CommitLog::new(self);
        log.drop_collection(name);
        let log = log.seal(self, &slot)?;
        inc.store.last_write.store(slot.ts().0, Ordering::Relaxed);
        self.catalog
            .store(Arc::new(catalog.with_dropped(name, slot.ts())));
        log.commit(self, slot)?;
        Ok(true)
    }

    /// Takes the commit lock without committing, for GC steps that must not race an install.
    pub(crate) fn commit_lock(&self) -> CommitSlot<'_> {
        self.oracle.begin_commit()
    }
}

/// The current incarnation of `name`, after checking it is the one the snapshot at `read_ts`
/// saw (a drop after the snapshot is a conflict).
fn incarnation_unchanged<'c>(
    catalog: &'c Catalog,
    name: &str,
    read_ts: Timestamp,
) -> Result<Option<&'c Incarnation>> {
    let current = catalog.current(name);
    if let Some(seen) = catalog.visible(name, read_ts) {
        if current.map(|c| c.created) != Some(seen.created) {
            return Err(Error::conflict(name, None, ConflictKind::CollectionDropped));
        }
    }
    Ok(current)
}

fn validate_reads(
    catalog: &Catalog,
    reads: &ReadSet,
    read_ts: Timestamp,
    guard: &Guard,
) -> Result<()> {
    for (name, ids) in &reads.docs {
        if let Some(inc) = incarnation_unchanged(catalog, name, read_ts)? {
            for id in ids {
                if changed_since(&inc.store, id, read_ts, guard) {
                    return Err(Error::conflict(name, Some(id), ConflictKind::ReadWrite));
                }
            }
        }
    }
    for name in &reads.scans {
        if let Some(inc) = incarnation_unchanged(catalog, name, read_ts)? {
            if inc.store.last_write() > read_ts {
                return Err(Error::conflict(name, None, ConflictKind::ScanChanged));
            }
        }
    }
    Ok(())
}

/// True if a version of `id` newer than `read_ts` exists (first-committer-wins test).
fn changed_since(store: &CollectionStore, id: &DocId, read_ts: Timestamp, guard: &Guard) -> bool {
    store
        .chains
        .read(id, |c| c.newest(guard).is_some_and(|(ts, _)| ts > read_ts))
        == Some(true)
}

fn is_live(store: &CollectionStore, id: &DocId, guard: &Guard) -> bool {
    store
        .chains
        .read(id, |c| c.newest(guard).is_some_and(|(_, live)| live))
        == Some(true)
}

fn create(
    next: &mut Option<Catalog>,
    catalog: &Catalog,
    name: &str,
    ts: Timestamp,
) -> Arc<CollectionStore> {
    let (updated, store) = next.as_ref().unwrap_or(catalog).with_created(name, ts);
    *next = Some(updated);
    store
}

/// Records `store`'s live count in its history if commit `ts` changed it: after the commit's
/// installs, before it is published (see `CountHistory`).
fn note_live_count(store: &CollectionStore, before: u64, ts: Timestamp) {
    let after = store.live_docs.load(Ordering::Relaxed);
    if after != before {
        store.live_history.record(ts, after);
    }
}

/// Prepends one version and keeps the store's counters. Deleting a document that is not live
/// installs nothing.
pub(crate) fn install(
    store: &CollectionStore,
    id: &DocId,
    body: Option<Document>,
    ts: Timestamp,
    guard: &Guard,
) {
    let live_after = body.is_some();
    // Moved into whichever closure installs it.
    let mut body = Some(body);
    // Before anything this commit changes is counted: see `CollectionStore::live_docs_at`.
    let mark_written = || {
        store.last_write.store(ts.0, Ordering::Relaxed);
        fence(Ordering::Release);
    };
    let installed = store.chains.read(id, |chain| {
        let live_before = chain.newest(guard).is_some_and(|(_, live)| live);
        if live_before || live_after {
            mark_written();
            // The chain now holds a second version (or a tombstone): GC has work there.
            let newly_dirty = chain.install(ts, body.take().flatten(), guard);
            Some((live_before, newly_dirty))
        } else {
            None
        }
    });
    let live_before = match installed {
        Some(Some((before, newly_dirty))) => {
            if newly_dirty {
                store.dirty.push(id);
            }
            before
        }
        Some(None) => return,
        None if !live_after => return,
        None => {
            mark_written();
            store
                .chains
                .read_or_insert(id.clone(), VersionChain::new, |c| {
                    c.install(ts, body.take().flatten(), guard);
                });
            false
        }
    };
    store.versions.fetch_add(1, Ordering::Relaxed);
    match (live_before, live_after) {
        (false, true) => {
            store.live_docs.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            store.live_docs.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}
