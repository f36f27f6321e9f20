//! `Space`: which bytes of the data runs are live.
//!
//! A run entry is live while it holds the newest version of a live document; every other byte
//! of the runs (superseded versions, tombstones, documents of dropped collections, collection
//! entries and file headers) is reclaimable by compaction. Knowing the live bytes exactly needs
//! the size of each document's newest entry, because a checkpoint that supersedes a document
//! must subtract what its previous entry took. That costs one small map entry per document,
//! kept beside the engine rather than in its version chains, so the read path is untouched.

use std::collections::HashMap;

use crate::id::DocId;

/// Sizes of the live entries of the data runs, per collection and document.
#[derive(Debug, Default)]
pub(crate) struct Space {
    collections: HashMap<String, CollectionSpace>,
    live: u64,
}

#[derive(Debug, Default)]
struct CollectionSpace {
    docs: HashMap<DocId, u32>,
    live: u64,
}

impl Space {
    /// Bytes of live entries.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live
    }

    /// True if document `id` of `collection` has a live entry in the runs.
    pub(crate) fn is_live(&self, collection: &str, id: &DocId) -> bool {
        self.collections
            .get(collection)
            .is_some_and(|space| space.docs.contains_key(id))
    }

    /// Document `id` of `collection` now has a live entry of `bytes`, or (`None`) none.
    pub(crate) fn set(&mut self, collection: &str, id: DocId, bytes: Option<u64>) {
        let space = match self.collections.get_mut(collection) {
            Some(space) => space,
            None if bytes.is_none() => return,
            None => self.collections.entry(collection.to_owned()).or_default(),
        };
        let old = match bytes {
            Some(bytes) => {
                let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
                space.live += u64::from(bytes);
                self.live += u64::from(bytes);
                space.docs.insert(id, bytes)
            }
            None => space.docs.remove(&id),
        };
        if let Some(old) = old {
            space.live -= u64::from(old);
            self.live -= u64::from(old);
        }
    }

    /// Every entry of `collection` is dead (dropped, or a new incarnation created).
    pub(crate) fn clear(&mut self, collection: &str) {
        if let Some(space) = self.collections.remove(collection) {
            self.live -= space.live;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supersede_delete_and_clear_keep_the_total_exact() {
        let mut s = Space::default();
        s.set("a", DocId::from(1), Some(100));
        s.set("a", DocId::from(2), Some(50));
        s.set("b", DocId::from("x"), Some(7));
        assert_eq!(s.live_bytes(), 157);
        s.set("a", DocId::from(1), Some(120));
        assert_eq!(s.live_bytes(), 177);
        s.set("a", DocId::from(2), None);
        assert_eq!(s.live_bytes(), 127);
        s.set("c", DocId::from(9), None);
        assert_eq!(s.live_bytes(), 127);
        s.clear("a");
        assert_eq!(s.live_bytes(), 7);
    }
}
