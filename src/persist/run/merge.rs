//! `Merge`: the streaming k-way merge of runs into the live state.

use std::cmp::Ordering;
use std::path::PathBuf;

use super::{cmp_key, corrupt, CollectionState, Entry, RunError, RunReader};
use crate::wal::record::RecordId;

/// One item of the merged state, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    /// A live collection and the timestamp its current incarnation was created at.
    Collection {
        /// The collection's name.
        name: String,
        /// The commit timestamp of its current incarnation's create.
        created: u64,
    },
    /// The newest version of a live document.
    Doc {
        /// The name of the collection holding the document.
        collection: String,
        /// The document's `_id`.
        id: RecordId,
        /// The commit timestamp of this version.
        ts: u64,
        /// The document's compact JSON.
        body: Vec<u8>,
    },
}

/// The collection whose documents the merge is emitting or skipping.
#[derive(Debug)]
struct Current {
    name: String,
    /// When its live incarnation was created; `None` if it is dropped.
    created: Option<u64>,
}

/// A pending entry of one run: the smallest key that run has not yet given to the merge.
#[derive(Debug)]
struct Head {
    entry: Entry,
    /// Offset of its frame, for errors.
    offset: u64,
    /// Length of its frame on disk, header included.
    len: u64,
}

/// A streaming k-way merge of runs into the live state (see the module docs for the rules).
///
/// Holds one pending entry per run plus the winner of the key being resolved. Finding the
/// smallest key scans the pending entries, O(runs) per key: the compactor keeps the number of
/// runs small, and at a few dozen runs a scan is as cheap as a heap and simpler to get right.
#[derive(Debug)]
pub(crate) struct Merge {
    /// The runs, oldest first.
    readers: Vec<RunReader>,
    /// `heads[i]` is run `i`'s next entry, `None` once it is exhausted.
    heads: Vec<Option<Head>>,
    current: Option<Current>,
    /// Frame length of the entry behind the item last returned.
    last_bytes: u64,
    /// The run of the error returned, once there was one: the merge's position is then
    /// undefined, so it stops.
    failed: Option<PathBuf>,
}

impl Merge {
    /// A merge of `runs`, given oldest first (on equal timestamps a later run wins). Reads
    /// each run's first entry.
    pub(crate) fn new(runs: Vec<RunReader>) -> Result<Merge, RunError> {
        let mut readers = runs;
        let heads = readers
            .iter_mut()
            .map(read_head)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Merge {
            readers,
            heads,
            current: None,
            last_bytes: 0,
            failed: None,
        })
    }

    /// The next item of the merged state, in key order; `None` once every run is exhausted
    /// (each having ended at a valid footer). After an error every call returns an error.
    pub(crate) fn next(&mut self) -> Result<Option<Merged>, RunError> {
        if let Some(path) = &self.failed {
            return Err(RunError::Stopped { path: path.clone() });
        }
        let result = self.merge_next();
        if let Err(e) = &result {
            self.failed = Some(e.path().to_path_buf());
        }
        result
    }

    /// How many bytes of all the runs have been read so far, for progress reports: at most the
    /// sum of their [`RunReader::file_len`]s, reached once every run is exhausted.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.readers.iter().map(RunReader::bytes_read).sum()
    }

    /// The bytes on disk (frame header included) of the winning entry behind the item last
    /// returned by [`Merge::next`], 0 before the first: what that item costs in a run, the same
    /// as [`RunWriter::push`](crate::persist::run::writer::RunWriter::push) returns when it is written again.
    pub(crate) fn last_bytes(&self) -> u64 {
        self.last_bytes
    }

    fn merge_next(&mut self) -> Result<Option<Merged>, RunError> {
        loop {
            let Some((winner, run)) = self.next_winner()? else {
                return Ok(None);
            };
            self.last_bytes = winner.len;
            match winner.entry {
                Entry::Collection { name, state } => match state {
                    CollectionState::Live { created } => {
                        self.current = Some(Current {
                            name: name.clone(),
                            created: Some(created),
                        });
                        return Ok(Some(Merged::Collection { name, created }));
                    }
                    CollectionState::Dropped { .. } => {
                        self.current = Some(Current {
                            name,
                            created: None,
                        });
                    }
                },
                Entry::Doc {
                    collection,
                    id,
                    ts,
                    body,
                } => {
                    // Collection entries sort before their documents, so if any run held one for
                    // this collection it has been resolved just before.
                    let created = match &self.current {
                        Some(current) if current.name == collection => current.created,
                        _ => {
                            return Err(corrupt(
                                self.readers[run].path(),
                                winner.offset,
                                format!(
                                    "a document of collection {collection:?} has no collection \
                                     entry in any run"
                                ),
                            ))
                        }
                    };
                    if let (Some(created), Some(body)) = (created, body) {
                        if ts >= created {
                            return Ok(Some(Merged::Doc {
                                collection,
                                id,
                                ts,
                                body,
                            }));
                        }
                    }
                }
            }
        }
    }

    /// Takes every pending entry with the smallest key, refilling each from its run, and
    /// returns the one that wins (greatest timestamp, then newest run) with its run's index.
    fn next_winner(&mut self) -> Result<Option<(Head, usize)>, RunError> {
        let mut min: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            let Some(head) = head else { continue };
            let smaller = match min.and_then(|m| self.heads[m].as_ref()) {
                Some(best) => cmp_key(&head.entry, &best.entry) == Ordering::Less,
                None => true,
            };
            if smaller {
                min = Some(i);
            }
        }
        let Some(first) = min else {
            return Ok(None);
        };
        let Some(mut winner) = self.take_head(first)? else {
            return Ok(None);
        };
        let mut winner_run = first;
        // Runs before `first` hold only greater keys: `first` is the first run with the smallest.
        for i in first + 1..self.heads.len() {
            let same_key = self.heads[i]
                .as_ref()
                .is_some_and(|h| cmp_key(&h.entry, &winner.entry) == Ordering::Equal);
            if !same_key {
                continue;
            }
            if let Some(candidate) = self.take_head(i)? {
                // `i` is newer than the current winner's run, so it wins ties.
                if candidate.entry.ts() >= winner.entry.ts() {
                    winner = candidate;
                    winner_run = i;
                }
            }
        }
        Ok(Some((winner, winner_run)))
    }

    /// Takes run `i`'s pending entry, if any, and reads its next one.
    fn take_head(&mut self, i: usize) -> Result<Option<Head>, RunError> {
        if self.heads[i].is_none() {
            return Ok(None);
        }
        let next = read_head(&mut self.readers[i])?;
        Ok(std::mem::replace(&mut self.heads[i], next))
    }
}

/// Reads `reader`'s next entry as a pending head.
fn read_head(reader: &mut RunReader) -> Result<Option<Head>, RunError> {
    Ok(reader.next()?.map(|entry| Head {
        entry,
        offset: reader.entry_offset,
        len: reader.entry_len,
    }))
}
