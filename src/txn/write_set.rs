//! What a transaction has written and (in serializable mode) read, kept until commit.

use std::collections::{BTreeMap, BTreeSet};

use crate::document::Document;
use crate::id::DocId;

/// Buffered writes: collection → id → new body (`None` deletes). Later writes to the same
/// document replace earlier ones; the commit installs the last.
#[derive(Debug, Default)]
pub(crate) struct WriteSet {
    by_collection: BTreeMap<String, BTreeMap<DocId, Option<Document>>>,
}

impl WriteSet {
    /// `Some(body)` if this transaction wrote `id` (`Some(None)`: it deleted it).
    pub(crate) fn get(&self, collection: &str, id: &DocId) -> Option<&Option<Document>> {
        self.by_collection.get(collection)?.get(id)
    }

    pub(crate) fn put(&mut self, collection: &str, id: DocId, body: Option<Document>) {
        if let Some(docs) = self.by_collection.get_mut(collection) {
            docs.insert(id, body);
        } else {
            self.by_collection
                .insert(collection.to_owned(), BTreeMap::from([(id, body)]));
        }
    }

    pub(crate) fn collection(
        &self,
        collection: &str,
    ) -> Option<&BTreeMap<DocId, Option<Document>>> {
        self.by_collection.get(collection)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &BTreeMap<DocId, Option<Document>>)> {
        self.by_collection
            .iter()
            .map(|(name, docs)| (name.as_str(), docs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_collection.is_empty()
    }
}

/// Serializable mode only: what the transaction's results depended on.
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    pub(crate) docs: BTreeMap<String, BTreeSet<DocId>>,
    pub(crate) scans: BTreeSet<String>,
}

impl ReadSet {
    pub(crate) fn doc(&mut self, collection: &str, id: &DocId) {
        if let Some(ids) = self.docs.get_mut(collection) {
            ids.insert(id.clone());
        } else {
            self.docs
                .insert(collection.to_owned(), BTreeSet::from([id.clone()]));
        }
    }

    pub(crate) fn scan(&mut self, collection: &str) {
        self.scans.insert(collection.to_owned());
    }
}
