//! Loading the data runs at open: the merge of the runs feeds the catalog and the document
//! map, on two threads once the runs are large.
//!
//! Why two threads: a profile of opening 1M documents (`perf record` of `cargo bench --bench
//! durability -- --only 4`) put 34% of the run loading in parsing JSON and 25% in installing,
//! against 27% in decoding the runs, 10% in the live-bytes accounting (`Space`) and a few
//! percent in the merge. A *reader* thread decodes and merges the runs and keeps `Space`; the
//! opening thread parses and installs.
//!
//! Why that way round: the thread that parses allocates every document, and the documents
//! stay. On the opening thread they come from the same allocator arena as in a load on one
//! thread: glibc's main arena when the program opens from its main thread (as the bench
//! does), which grows its heap a large step at a time. The other way round, they came from the
//! new thread's arena, which grows a page per `mprotect`: opening 1M documents made 223k
//! `mprotect` calls instead of 29k, and one open in four or five took 2–3 s instead of 0.7 s. Likewise each batch carries its
//! documents' JSON in one buffer, copied out of the merge's per-document buffers on the reader
//! thread, which frees them: a buffer freed on another thread than the one that allocated it
//! takes that thread's arena lock.
//!
//! **Same result as one thread.** Items cross over in merge order and are applied in that
//! order, so the engine ends up as a sequential load leaves it, and the first error in merge
//! order is the one reported: the opening thread stops at the first invalid document and
//! drops the channel, which stops the reader; otherwise it applies everything the reader
//! handed over before it looks at the reader's own result.
//!
//! **Small databases stay on one thread** (runs under [`PARALLEL_BYTES`] in all): the same two
//! halves run one after the other on the opening thread, so opening a database of a few
//! documents (the crash tests open thousands) starts no thread.

use std::path::Path;

use crossbeam_epoch as epoch;

use crate::catalog::CollectionStore;
use crate::document::{parse_stored, Document};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::DocId;
use crate::mvcc::Timestamp;
use crate::persist::run::{self, Merge, Merged};
use crate::persist::space::Space;
use crate::sync::mpsc;
use crate::sync::Arc;
use crate::txn::commit::install;

/// Runs of at least this many bytes in all load on two threads.
pub(crate) const PARALLEL_BYTES: u64 = 4 << 20;
/// Documents per batch.
const BATCH: usize = 1024;
/// Items the reader may run ahead of the opening thread: bounds the memory of documents
/// decoded but not yet installed.
const AHEAD: usize = 4;

/// What the merge hands over, in merge order.
enum Item {
    /// A live collection, created at `created`: it goes into the catalog.
    Collection { name: String, created: u64 },
    /// Documents of the collection last handed over.
    Docs(Batch),
}

/// Documents of one collection, in merge order.
struct Batch {
    collection: String,
    /// The documents' JSON, one after another.
    bodies: Vec<u8>,
    /// Each document's id, commit timestamp and the end of its JSON in `bodies`.
    docs: Vec<(DocId, Timestamp, usize)>,
}

/// Loads the runs behind `merge` into `engine`, keeping `space`; returns the greatest
/// timestamp found. `data_bytes` (the runs' size) decides between one thread and two.
pub(crate) fn load(
    merge: &mut Merge,
    dir: &Path,
    first_run: &Path,
    engine: &Engine,
    space: &mut Space,
    data_bytes: u64,
) -> Result<u64> {
    let mut applier = Applier::new(engine, dir);
    if data_bytes < PARALLEL_BYTES {
        let mut failed = None;
        let last = read(merge, first_run, space, &mut |item| {
            applier.apply(item).map_err(|e| failed = Some(e)).is_ok()
        });
        // The applier's error is from an earlier point in the merge than any of the reader's.
        return failed.map_or(last, Err);
    }
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Item>(AHEAD);
        let reader = std::thread::Builder::new()
            .name("snapbase-open".to_owned())
            .spawn_scoped(scope, move || {
                // The sender is dropped when this returns, which ends the loop below.
                read(merge, first_run, space, &mut |item| {
                    sender.send(item).is_ok()
                })
            })
            .map_err(|e| Error::io("starting the thread that reads the data runs", &e))?;
        let mut failed = None;
        for item in &receiver {
            if let Err(e) = applier.apply(item) {
                failed = Some(e);
                break;
            }
        }
        // Stops a reader blocked on a full channel.
        drop(receiver);
        let read = match reader.join() {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // Everything the reader handed over came before any error of its own.
        failed.map_or(read, Err)
    })
}

/// The reader's half: merges the runs, keeps `space`, and hands collections and batches of
/// documents to `emit` in merge order until `emit` returns false. Returns the greatest
/// timestamp it saw.
fn read(
    merge: &mut Merge,
    first_run: &Path,
    space: &mut Space,
    emit: &mut dyn FnMut(Item) -> bool,
) -> Result<u64> {
    let mut last = 0;
    let mut in_collection = false;
    let mut batch: Option<Batch> = None;
    while let Some(merged) = merge.next().map_err(run::to_error)? {
        match merged {
            Merged::Collection { name, created } => {
                if let Some(b) = batch.take() {
                    if !emit(Item::Docs(b)) {
                        return Ok(last);
                    }
                }
                in_collection = true;
                last = last.max(created);
                if !emit(Item::Collection { name, created }) {
                    return Ok(last);
                }
            }
            Merged::Doc {
                collection,
                id,
                ts,
                body,
            } => {
                if !in_collection {
                    return Err(Error::Corrupt {
                        path: first_run.to_path_buf(),
                        offset: None,
                        reason: format!("a document of {collection} comes before its collection"),
                    });
                }
                let id = id.into_doc_id();
                space.set(&collection, id.clone(), Some(merge.last_bytes()));
                last = last.max(ts);
                let b = batch.get_or_insert_with(|| Batch {
                    collection,
                    bodies: Vec::new(),
                    docs: Vec::with_capacity(BATCH),
                });
                b.bodies.extend_from_slice(&body);
                b.docs.push((id, Timestamp(ts), b.bodies.len()));
                if b.docs.len() >= BATCH {
                    if let Some(b) = batch.take() {
                        if !emit(Item::Docs(b)) {
                            return Ok(last);
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = batch {
        emit(Item::Docs(b));
    }
    Ok(last)
}

/// The opening thread's half: puts collections into the catalog and parses and installs
/// documents.
struct Applier<'a> {
    engine: &'a Engine,
    dir: &'a Path,
    store: Option<Arc<CollectionStore>>,
}

impl<'a> Applier<'a> {
    fn new(engine: &'a Engine, dir: &'a Path) -> Self {
        Applier {
            engine,
            dir,
            store: None,
        }
    }

    /// Applies one item; fails at the first document that is not valid JSON.
    fn apply(&mut self, item: Item) -> Result<()> {
        match item {
            Item::Collection { name, created } => {
                let catalog = self.engine.catalog.load_full();
                let (next, store) = catalog.with_created(&name, Timestamp(created));
                self.engine.catalog.store(Arc::new(next));
                self.store = Some(store);
            }
            Item::Docs(batch) => {
                // `read` refuses a document before its collection, so this does not happen.
                let Some(store) = &self.store else {
                    return Err(Error::Corrupt {
                        path: self.dir.to_path_buf(),
                        offset: None,
                        reason: format!(
                            "a document of {} comes before its collection",
                            batch.collection
                        ),
                    });
                };
                let guard = epoch::pin();
                let mut start = 0;
                for (id, ts, end) in batch.docs {
                    let body = batch.bodies.get(start..end).unwrap_or_default();
                    start = end;
                    let value = parse_stored(body).map_err(|e| Error::Corrupt {
                        path: self.dir.to_path_buf(),
                        offset: None,
                        reason: format!(
                            "document {id} of {} is not valid JSON: {e}",
                            batch.collection
                        ),
                    })?;
                    install(store, &id, Some(Document::from_raw(value)), ts, &guard);
                }
            }
        }
        Ok(())
    }
}
