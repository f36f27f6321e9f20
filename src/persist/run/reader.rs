//! `RunReader`: streams a run file back, checking every frame, the order and the footer.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{
    corrupt, io_err, Entry, LastKey, RunError, RunFrame, RunSummary, DECODE_LIMIT, FILE_HEADER_LEN,
    READ_BUFFER, RUN_FORMAT, RUN_MAGIC,
};
use crate::storage::frame::{Defect, FrameError, FrameReader, MAX_FRAME_LEN};
use crate::storage::vfs::{to_u64, OpenMode, Vfs, VfsFile};

/// Sequential reads of an open file through [`VfsFile::read_at`], for [`BufReader`].
#[derive(Debug)]
struct FileRead {
    file: Box<dyn VfsFile>,
    pos: u64,
}

impl Read for FileRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(self.pos, buf)?;
        self.pos += to_u64(n);
        Ok(n)
    }
}

/// Reads a run's entries in key order, holding one 64 KiB buffer and the entry being decoded,
/// never the whole file. Checks every checksum, the key order and the footer as it goes.
#[derive(Debug)]
pub(crate) struct RunReader {
    path: PathBuf,
    frames: FrameReader<BufReader<FileRead>>,
    /// The payload of the frame being decoded, reused between entries.
    payload: Vec<u8>,
    /// The file's length when opened; a run never changes once written.
    len: u64,
    last: LastKey,
    entries: u64,
    max_ts: u64,
    /// Offset of the frame of the entry last returned.
    pub(super) entry_offset: u64,
    /// Length on disk of the frame of the entry last returned, header included.
    pub(super) entry_len: u64,
    state: ReadState,
}

/// Where a [`RunReader`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Entries,
    /// A valid footer was read: every later call returns `None`.
    Done,
    /// An error was returned: every later call returns [`RunError::Stopped`].
    Failed,
}

impl RunReader {
    /// Opens the run `path` and checks its magic and format.
    pub(crate) fn open(vfs: &dyn Vfs, path: &Path) -> Result<RunReader, RunError> {
        let file = vfs
            .open(path, OpenMode::Existing)
            .map_err(io_err("opening", path))?;
        let len = file.len().map_err(io_err("reading the length of", path))?;
        let mut header = [0; 12];
        if len < FILE_HEADER_LEN {
            return Err(corrupt(path, 0, "the file is shorter than a run's header"));
        }
        file.read_exact_at(0, &mut header)
            .map_err(io_err("reading", path))?;
        let [m0, m1, m2, m3, m4, m5, m6, m7, f0, f1, f2, f3] = header;
        if [m0, m1, m2, m3, m4, m5, m6, m7] != RUN_MAGIC {
            return Err(corrupt(
                path,
                0,
                "the file does not start with the run magic",
            ));
        }
        let format = u32::from_le_bytes([f0, f1, f2, f3]);
        if format > RUN_FORMAT {
            return Err(RunError::NewerFormat {
                path: path.to_path_buf(),
                found: format,
                supported: RUN_FORMAT,
            });
        }
        if format == 0 {
            return Err(corrupt(path, 8, "format version 0 does not exist"));
        }
        let read = FileRead {
            file,
            pos: FILE_HEADER_LEN,
        };
        Ok(RunReader {
            path: path.to_path_buf(),
            frames: FrameReader::new(BufReader::with_capacity(READ_BUFFER, read), MAX_FRAME_LEN),
            payload: Vec::new(),
            len,
            last: LastKey::default(),
            entries: 0,
            max_ts: 0,
            entry_offset: FILE_HEADER_LEN,
            entry_len: 0,
            state: ReadState::Entries,
        })
    }

    /// The run file being read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes, header and footer included.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// How many bytes of the file have been read and checked so far: up to the end of the last
    /// frame decoded (the whole file once the footer has been read).
    pub(crate) fn bytes_read(&self) -> u64 {
        FILE_HEADER_LEN + self.frames.offset()
    }

    /// The next entry in key order, or `None` after a valid footer (its entry count and
    /// greatest timestamp match the entries, and nothing follows it). Any damage, including
    /// keys out of order or a missing footer, is [`RunError::Corrupt`]; after an error every
    /// call returns [`RunError::Stopped`].
    // An Iterator of Results would make "ended at the footer" and "stopped at damage" look alike
    // to a `for` loop; `Result<Option<_>>` makes the caller handle both with `?`.
    pub(crate) fn next(&mut self) -> Result<Option<Entry>, RunError> {
        match self.state {
            ReadState::Entries => {}
            ReadState::Done => return Ok(None),
            ReadState::Failed => {
                return Err(RunError::Stopped {
                    path: self.path.clone(),
                })
            }
        }
        let result = self.read_entry();
        if result.is_err() {
            self.state = ReadState::Failed;
        }
        result
    }

    fn read_entry(&mut self) -> Result<Option<Entry>, RunError> {
        let offset = FILE_HEADER_LEN + self.frames.offset();
        let path = &self.path;
        let payload = &mut self.payload;
        match self.frames.next_into(payload) {
            Ok(true) => {}
            Ok(false) => {
                return Err(corrupt(path, offset, "the file ends without a footer"));
            }
            Err(e) => return Err(frame_error(path, offset, e)),
        }
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let (decoded, used) = bincode::serde::decode_from_slice::<RunFrame<'_>, _>(payload, config)
            .map_err(|e| {
                corrupt(
                    path,
                    offset,
                    format!("the frame's payload is malformed: {e}"),
                )
            })?;
        if used != payload.len() {
            return Err(corrupt(
                path,
                offset,
                format!(
                    "{} unexpected bytes follow the frame's payload",
                    payload.len() - used
                ),
            ));
        }
        match decoded {
            RunFrame::Entry(entry) => {
                let entry = entry.into_owned();
                if !self.last.is_below(&entry) {
                    return Err(corrupt(
                        path,
                        offset,
                        "the entry's key is not above the previous entry's",
                    ));
                }
                self.last.set(&entry);
                self.entries += 1;
                self.max_ts = self.max_ts.max(entry.ts());
                self.entry_offset = offset;
                self.entry_len = FILE_HEADER_LEN + self.frames.offset() - offset;
                Ok(Some(entry))
            }
            RunFrame::Footer { entries, max_ts } => {
                if entries != self.entries {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "the footer counts {entries} entries but the file holds {}",
                            self.entries
                        ),
                    ));
                }
                if max_ts != self.max_ts {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "the footer's greatest timestamp is {max_ts} but the entries' is {}",
                            self.max_ts
                        ),
                    ));
                }
                let end = FILE_HEADER_LEN + self.frames.offset();
                if end != self.len {
                    return Err(corrupt(
                        path,
                        end,
                        format!("{} bytes follow the footer", self.len.saturating_sub(end)),
                    ));
                }
                self.state = ReadState::Done;
                Ok(None)
            }
        }
    }

    /// What the run holds, once [`RunReader::next`] has returned `None`.
    fn summary(&self) -> RunSummary {
        RunSummary {
            entries: self.entries,
            bytes: self.len,
            max_ts: self.max_ts,
        }
    }
}

/// Turns a frame reader's error at `offset` in the run into a [`RunError`].
fn frame_error(path: &Path, offset: u64, e: FrameError) -> RunError {
    match e {
        FrameError::Io(source) => io_err("reading", path)(source),
        FrameError::Stopped { .. } => RunError::Stopped {
            path: path.to_path_buf(),
        },
        FrameError::Truncated { .. } => corrupt(
            path,
            offset,
            "the file ends inside a frame, before its footer",
        ),
        FrameError::LengthOverMax { .. } | FrameError::PayloadTooLarge { .. } => {
            corrupt(path, offset, Defect::LengthOverMax.as_str())
        }
        FrameError::ChecksumMismatch { .. } => {
            corrupt(path, offset, Defect::ChecksumMismatch.as_str())
        }
    }
}

/// Reads the whole run `path`, checking every checksum, the key order and the footer, and
/// returns what it holds. For `Database::verify` and tests.
pub(crate) fn verify_run(vfs: &dyn Vfs, path: &Path) -> Result<RunSummary, RunError> {
    let mut reader = RunReader::open(vfs, path)?;
    while reader.next()?.is_some() {}
    Ok(reader.summary())
}
