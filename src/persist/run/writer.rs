//! `RunWriter`: streams sorted entries into a new run file.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::{
    io_err, Entry, RunError, RunFrame, RunSummary, DECODE_LIMIT, RUN_FORMAT, RUN_MAGIC,
    WRITE_BUFFER,
};
use crate::storage::frame::{self, FrameError, MAX_FRAME_LEN};
use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile};
use crate::wal::record::RecordId;

/// The key of the last entry written or read, kept to check that the next one is above it.
/// Reuses its allocations, so checking costs no allocation per entry in the common case.
#[derive(Debug, Default)]
pub(super) struct LastKey {
    /// `None` before the first entry.
    collection: Option<String>,
    /// The document id, `None` for a collection entry.
    id: Option<RecordId>,
}

impl LastKey {
    /// Whether `entry`'s key is strictly above the last one.
    pub(super) fn is_below(&self, entry: &Entry) -> bool {
        let Some(collection) = &self.collection else {
            return true;
        };
        let by_name = collection.as_bytes().cmp(entry.collection().as_bytes());
        let ordering = by_name.then_with(|| match (&self.id, entry.id()) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        });
        ordering == Ordering::Less
    }

    /// Makes `entry`'s key the last one.
    pub(super) fn set(&mut self, entry: &Entry) {
        match &mut self.collection {
            Some(name) if name == entry.collection() => {}
            slot => *slot = Some(entry.collection().to_owned()),
        }
        match (&mut self.id, entry.id()) {
            (Some(RecordId::Str(mine)), Some(RecordId::Str(id))) => mine.clone_from(id),
            (slot, id) => *slot = id.cloned(),
        }
    }
}

/// Writes a run: entries in strictly increasing key order, then [`RunWriter::finish`].
///
/// Dropping a writer without finishing it leaves an incomplete file without a footer, which no
/// reader accepts; the caller removes it. After an I/O error the file is incomplete as well,
/// and every later call returns [`RunError::Stopped`].
#[derive(Debug)]
pub(crate) struct RunWriter {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    /// Encoded frames not yet appended to the file.
    buf: Vec<u8>,
    /// The bincode of the frame being encoded, reused between entries.
    scratch: Vec<u8>,
    last: LastKey,
    entries: u64,
    max_ts: u64,
    /// Bytes appended to the file so far.
    written: u64,
    failed: bool,
}

impl RunWriter {
    /// Creates the run file `path`, which must not exist. Its name is durable only after the
    /// caller syncs the directory, which it does once [`RunWriter::finish`] returns.
    pub(crate) fn create(vfs: &dyn Vfs, path: &Path) -> Result<RunWriter, RunError> {
        let file = vfs
            .open(path, OpenMode::CreateNew)
            .map_err(io_err("creating", path))?;
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        buf.extend_from_slice(&RUN_MAGIC);
        buf.extend_from_slice(&RUN_FORMAT.to_le_bytes());
        Ok(RunWriter {
            file,
            path: path.to_path_buf(),
            buf,
            scratch: Vec::new(),
            last: LastKey::default(),
            entries: 0,
            max_ts: 0,
            written: 0,
            failed: false,
        })
    }

    /// Appends one entry; its key must be strictly above the previous entry's, else
    /// [`RunError::OutOfOrder`] and nothing is written. Returns the bytes the entry's frame
    /// takes on disk.
    ///
    /// Entries are buffered and appended in batches of about 256 KiB, so an error from an
    /// earlier entry's write may surface here.
    pub(crate) fn push(&mut self, entry: &Entry) -> Result<u64, RunError> {
        self.check_running()?;
        if !self.last.is_below(entry) {
            return Err(RunError::OutOfOrder {
                path: self.path.clone(),
            });
        }
        if let Entry::Doc {
            body: Some(body), ..
        } = entry
        {
            // Refused before encoding, so an oversized body is not copied first.
            if body.len() > DECODE_LIMIT {
                return Err(self.too_large(body.len()));
            }
        }
        let len = self.encode_frame(&RunFrame::Entry(Cow::Borrowed(entry)))?;
        self.last.set(entry);
        self.entries += 1;
        self.max_ts = self.max_ts.max(entry.ts());
        if self.buf.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(len)
    }

    /// Writes the footer, appends what is buffered and `sync_all`s the file. The run is
    /// complete on disk when this returns `Ok`; its name is not durable until the caller syncs
    /// the directory.
    pub(crate) fn finish(mut self) -> Result<RunSummary, RunError> {
        self.check_running()?;
        self.encode_frame(&RunFrame::Footer {
            entries: self.entries,
            max_ts: self.max_ts,
        })?;
        self.flush()?;
        if let Err(e) = self.file.sync_all() {
            self.failed = true;
            return Err(io_err("syncing", &self.path)(e));
        }
        Ok(RunSummary {
            entries: self.entries,
            bytes: self.written,
            max_ts: self.max_ts,
        })
    }

    fn check_running(&self) -> Result<(), RunError> {
        if self.failed {
            return Err(RunError::Stopped {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn too_large(&self, len: usize) -> RunError {
        RunError::EntryTooLarge {
            path: self.path.clone(),
            len,
            max: MAX_FRAME_LEN,
        }
    }

    /// Encodes `frame` onto the buffer; returns its length on disk. Nothing is added on error.
    fn encode_frame(&mut self, frame: &RunFrame<'_>) -> Result<u64, RunError> {
        self.scratch.clear();
        bincode::serde::encode_into_std_write(
            frame,
            &mut self.scratch,
            bincode::config::standard(),
        )
        .unwrap_or_else(|e| unreachable!("encoding a run entry into memory failed: {e}"));
        let before = self.buf.len();
        let framed = frame::encode(&self.scratch, &mut self.buf);
        if self.scratch.capacity() > WRITE_BUFFER {
            self.scratch = Vec::new();
        }
        match framed {
            Ok(()) => Ok(to_u64(self.buf.len() - before)),
            Err(FrameError::PayloadTooLarge { len, .. }) => Err(self.too_large(len)),
            Err(e) => unreachable!("framing can only fail on the payload's length: {e}"),
        }
    }

    /// Appends the buffer to the file.
    fn flush(&mut self) -> Result<(), RunError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.append(&self.buf) {
            // Any prefix of the buffer may be on disk: the file can only be discarded.
            self.failed = true;
            return Err(io_err("writing", &self.path)(e));
        }
        self.written += to_u64(self.buf.len());
        self.buf.clear();
        // One huge entry must not keep its buffer for the rest of the run.
        if self.buf.capacity() > 2 * WRITE_BUFFER {
            self.buf.shrink_to(WRITE_BUFFER);
        }
        Ok(())
    }
}
