//! `DirtySet`: the chains of one collection that may hold a version a GC pass can unlink, so
//! that a pass costs what was written since the last one, not what the collection holds.
//!
//! **Invariant:** every chain that holds more than one version, or whose only version is a
//! tombstone, has its dirty tag set (a bit of its `head` pointer) and its id in its
//! collection's set, or is being visited by the running pass. The pass clears a chain's tag
//! before pruning it and, unless the prune left it settled (one live version at or below the
//! watermark, which no later pass can shorten) or dead (then removed from the map), sets the
//! tag again and gives the id back.
//!
//! Why the commit path's marks are enough: a chain gains a second version only when a commit
//! installs over an existing one (a replace, an upsert over a document, a delete, an insert over
//! a tombstone), and `commit::install` marks it then. A new chain starts with one live version,
//! and a delete of a document that does not exist installs nothing.
//!
//! The tag, not the set, decides who adds an id: only the thread that sets it from clear does,
//! so the set holds each id at most once and a hot document costs one entry, not one per write.
//! `VersionChain`'s `head` explains why a commit racing a pass is not forgotten.

use crate::id::DocId;
use crate::sync::Mutex;

/// Ids whose chains may hold garbage (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DirtySet {
    /// Appended to by committers (under the commit lock, so uncontended among them), taken and
    /// refilled by GC passes (serialized by `Engine::gc_state`).
    ids: Mutex<Vec<DocId>>,
}

impl DirtySet {
    /// Adds `id`, whose chain's dirty tag the caller has just set from clear.
    pub(crate) fn push(&self, id: &DocId) {
        self.ids.lock().push(id.clone());
    }

    /// Empties the set for a pass, which visits what it returns and gives back (`restore`) the
    /// chains it could not settle.
    pub(crate) fn take(&self) -> Vec<DocId> {
        let mut ids = self.ids.lock();
        // Leave room for as many as last time: regrowing from empty after every pass, on the
        // committer's thread, cost a replace-heavy writer about 8% (measured, issue 2's notes).
        // The pass pays for the allocation instead.
        let capacity = ids.len();
        std::mem::replace(&mut *ids, Vec::with_capacity(capacity))
    }

    /// Gives back the chains a pass left holding versions a later pass must unlink, their
    /// tags set again by the pass.
    pub(crate) fn restore(&self, unsettled: Vec<DocId>) {
        if !unsettled.is_empty() {
            self.ids.lock().extend(unsettled);
        }
    }

    /// Ids in the set now.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.ids.lock().len()
    }
}
