//! manifest: the one file that names the live files of a database directory.
//!
//! Every other file (WAL segments, data segments, checkpoints) counts only if the manifest names
//! it, so replacing the manifest is how the durability layer switches atomically from one set of
//! files to the next (a WAL rotation, a checkpoint, a compaction hand-over).
//!
//! # Byte layout of `MANIFEST`
//!
//! ```text
//! offset  size  field
//! 0       8     magic    b"SNAPMAN1"
//! 8       8+n   record   one frame (storage::frame): [len u32 LE][crc32 u32 LE][payload: n bytes]
//! 16+n          end      nothing may follow the record
//!
//! payload, every integer little-endian:
//! 0       4     format_version   u32, FORMAT_VERSION (1) for this layout
//! 4       8     generation       u64
//! 12      1     has_checkpoint   u8, 0 or 1
//! 13      8     checkpoint       u64, the checkpoint id; 0 when has_checkpoint is 0
//! 21      4     wal_count        u32
//! 25      8·w   wal_segments     wal_count × u64
//! ..      4     data_count       u32
//! ..      8·d   data_segments    data_count × u64; the payload ends exactly here
//! ```
//!
//! Compatibility contract: the magic, the framing and the leading `format_version` never change.
//! A later format changes only what follows `format_version` and raises it, so this build can
//! verify the checksum of a newer manifest, read its version and refuse it with
//! [`ManifestError::NewerFormat`] instead of calling it corrupt.
//!
//! # Replacement
//!
//! [`Manifest::store`] writes `MANIFEST.tmp`, syncs it, renames it over `MANIFEST` and syncs the
//! directory. [`Manifest::load`] reads only `MANIFEST`, never the temporary file, and never
//! writes: a leftover `MANIFEST.tmp` is removed by [`Manifest::cleanup_temp`], which the opener
//! calls once it holds the directory lock.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::frame::{self, Defect, FrameError, FrameReader, HEADER_LEN};
use crate::storage::vfs::{OpenMode, Vfs};

/// The manifest format this build writes, and the newest it can read.
pub const FORMAT_VERSION: u32 = 1;

/// The first bytes of every manifest, whatever its format version.
pub const MAGIC: [u8; 8] = *b"SNAPMAN1";

/// The manifest's file name in the database directory.
pub const FILE_NAME: &str = "MANIFEST";

/// The name the next manifest is written under before it is renamed over [`FILE_NAME`].
pub const TEMP_NAME: &str = "MANIFEST.tmp";

/// The largest payload written or read: 4 MiB, about 500,000 segment ids. A longer length
/// field is damage, refused before anything is allocated for it.
pub const MAX_PAYLOAD_LEN: u32 = 4 << 20;

/// Payload bytes before the two segment lists: version, generation, checkpoint flag and id.
const FIXED_LEN: usize = 4 + 8 + 1 + 8;

/// The live files of a database: which WAL segments, data segments and checkpoint recovery
/// starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The format the manifest is (or will be) stored in. The engine always writes
    /// [`FORMAT_VERSION`]; [`Manifest::store`] writes whatever is here, so tests can produce a
    /// manifest from the future.
    pub format_version: u32,
    /// Increases by one with every replacement, so the files of two states can be told apart.
    pub generation: u64,
    /// Ids of the live WAL segments, in the order the caller keeps them.
    pub wal_segments: Vec<u64>,
    /// Ids of the live data segments, in the order the caller keeps them.
    pub data_segments: Vec<u64>,
    /// Id of the checkpoint recovery starts from, if one has been taken.
    pub checkpoint: Option<u64>,
}

/// Why a manifest could not be stored or loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest was written by a newer snapbase in a format this build cannot read.
    NewerFormat {
        /// The format version the manifest declares.
        found: u32,
        /// The newest format version this build reads ([`FORMAT_VERSION`]).
        supported: u32,
    },
    /// The manifest exists but is damaged: it must not be trusted, and nothing is guessed.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The manifest to store lists more segments than [`MAX_PAYLOAD_LEN`] can hold.
    TooLarge {
        /// The payload's length in bytes.
        len: usize,
        /// The maximum in bytes.
        max: u32,
    },
    /// A file operation failed.
    Io {
        /// What was being done, as a gerund phrase ("syncing", "renaming into place").
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NewerFormat { found, supported } => write!(
                f,
                "the database was written by a newer version of snapbase: its manifest has \
                 format version {found}, and this build reads up to version {supported}; \
                 upgrade snapbase to open it"
            ),
            Self::Corrupt { path, reason } => write!(
                f,
                "the manifest {} is damaged ({reason}); the database cannot be opened safely, \
                 restore it from a backup",
                path.display()
            ),
            Self::TooLarge { len, max } => write!(
                f,
                "the manifest would be {len} bytes, over the maximum of {max}: too many segments"
            ),
            Self::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Wraps an I/O error with what was being done to which file.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ManifestError + 'a {
    move |source| ManifestError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Manifest {
    /// A manifest in the current [`FORMAT_VERSION`].
    pub fn new(
        generation: u64,
        wal_segments: Vec<u64>,
        data_segments: Vec<u64>,
        checkpoint: Option<u64>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            generation,
            wal_segments,
            data_segments,
            checkpoint,
        }
    }

    /// Atomically replaces the manifest in `dir` with `self`.
    ///
    /// The steps, and why each is needed:
    ///
    /// 1. Remove a stale `MANIFEST.tmp` and create it afresh, so the new file holds exactly
    ///    the bytes appended next.
    /// 2. Append the bytes and `sync_all` the temporary file. This must complete before the
    ///    rename: otherwise the rename could reach the disk before the data, and a crash would
    ///    leave `MANIFEST` naming an empty or torn file, losing the old state and the new.
    /// 3. Rename it over `MANIFEST`. A rename replaces its target atomically: after a crash the
    ///    name holds the old file or the new one, never neither and never a mix.
    /// 4. `sync_dir`. Until it returns, a crash may revert the rename, bringing back the old
    ///    manifest.
    ///
    /// So the new manifest is durable only when this returns `Ok`; only then may the caller
    /// act on it (delete files that only the old manifest names, acknowledge what depends on
    /// it). On error either manifest may be the one a crash leaves, and the live `MANIFEST` may
    /// already be the new one. Both must stay loadable: keep every file either names, and treat
    /// the error as fatal for the writer (a failed sync guarantees nothing, even after a retry
    /// that succeeds).
    pub fn store(&self, vfs: &dyn Vfs, dir: &Path) -> Result<(), ManifestError> {
        let bytes = self.encode()?;
        let tmp = dir.join(TEMP_NAME);
        let path = dir.join(FILE_NAME);
        remove_if_present(vfs, &tmp)?;
        let file = vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(io_err("creating", &tmp))?;
        file.append(&bytes).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        // Closed before the rename: some platforms refuse to rename an open file.
        drop(file);
        vfs.rename(&tmp, &path)
            .map_err(io_err("renaming into place", &tmp))?;
        vfs.sync_dir(dir)
            .map_err(io_err("syncing the directory", dir))
    }

    /// Reads the manifest in `dir`: `Ok(None)` if there is none (a new database, or a directory
    /// that does not exist). Never writes, and never looks at `MANIFEST.tmp`.
    ///
    /// Any damage (wrong magic, failed checksum, truncation, trailing bytes, an invalid field)
    /// is [`ManifestError::Corrupt`]; a valid manifest in a newer format is
    /// [`ManifestError::NewerFormat`].
    pub fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(FILE_NAME);
        let file = match vfs.open(&path, OpenMode::Existing) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("opening", &path)(e)),
        };
        let corrupt = |reason| ManifestError::Corrupt {
            path: path.clone(),
            reason,
        };
        let len = file.len().map_err(io_err("reading the length of", &path))?;
        // Checked before allocating: a damaged file must not size the buffer.
        let max = (MAGIC.len() + HEADER_LEN) as u64 + u64::from(MAX_PAYLOAD_LEN);
        if len > max {
            return Err(corrupt("the file is larger than any manifest"));
        }
        let mut bytes = vec![0; usize::try_from(len).unwrap_or_default()];
        file.read_exact_at(0, &mut bytes)
            .map_err(io_err("reading", &path))?;
        Self::decode(&bytes)
            .map_err(|e| match e {
                Decode::Newer(found) => ManifestError::NewerFormat {
                    found,
                    supported: FORMAT_VERSION,
                },
                Decode::Corrupt(reason) => corrupt(reason),
            })
            .map(Some)
    }

    /// Removes a `MANIFEST.tmp` left by a store that a crash or an error interrupted.
    ///
    /// Call it when opening the database, after taking the directory lock: without the lock,
    /// another process could be between writing and renaming its temporary file. Not needed
    /// for correctness ([`Manifest::store`] replaces a stale one and [`Manifest::load`] ignores
    /// it), only to leave the directory tidy; so the removal is not synced, and a crash may
    /// bring the file back harmlessly.
    pub fn cleanup_temp(vfs: &dyn Vfs, dir: &Path) -> Result<(), ManifestError> {
        remove_if_present(vfs, &dir.join(TEMP_NAME))
    }

    /// The whole file: magic, then one frame holding the payload.
    fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let (wal, data) = (&self.wal_segments, &self.data_segments);
        let len = FIXED_LEN + 4 + 8 * wal.len() + 4 + 8 * data.len();
        let too_large = || ManifestError::TooLarge {
            len,
            max: MAX_PAYLOAD_LEN,
        };
        if len > MAX_PAYLOAD_LEN as usize {
            return Err(too_large());
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&self.format_version.to_le_bytes());
        payload.extend_from_slice(&self.generation.to_le_bytes());
        payload.push(u8::from(self.checkpoint.is_some()));
        payload.extend_from_slice(&self.checkpoint.unwrap_or(0).to_le_bytes());
        for ids in [wal, data] {
            let count = u32::try_from(ids.len()).map_err(|_| too_large())?;
            payload.extend_from_slice(&count.to_le_bytes());
            for id in ids {
                payload.extend_from_slice(&id.to_le_bytes());
            }
        }
        let mut bytes = Vec::with_capacity(MAGIC.len() + HEADER_LEN + len);
        bytes.extend_from_slice(&MAGIC);
        frame::encode(&payload, &mut bytes).map_err(|_| too_large())?;
        Ok(bytes)
    }

    /// Parses a whole manifest file.
    fn decode(bytes: &[u8]) -> Result<Manifest, Decode> {
        let corrupt = Decode::Corrupt;
        let record = bytes
            .strip_prefix(&MAGIC)
            .ok_or(corrupt("the file does not start with the manifest magic"))?;
        let mut reader = FrameReader::new(record, MAX_PAYLOAD_LEN);
        let payload = match reader.next() {
            Ok(Some(payload)) => payload,
            Ok(None) => return Err(corrupt("the file holds no record after its magic")),
            Err(FrameError::Truncated { .. }) => {
                return Err(corrupt("the record is incomplete: the file ends inside it"))
            }
            Err(FrameError::LengthOverMax { .. }) => {
                return Err(corrupt(Defect::LengthOverMax.as_str()))
            }
            Err(_) => return Err(corrupt(Defect::ChecksumMismatch.as_str())),
        };
        if !reader.into_inner().is_empty() {
            return Err(corrupt("bytes follow the manifest record"));
        }
        let mut cur = Cursor(&payload);
        let short = "the record is shorter than its fields";
        let format_version = cur.u32().ok_or(corrupt(short))?;
        if format_version > FORMAT_VERSION {
            return Err(Decode::Newer(format_version));
        }
        if format_version == 0 {
            return Err(corrupt("format version 0 does not exist"));
        }
        let generation = cur.u64().ok_or(corrupt(short))?;
        let has_checkpoint = cur.u8().ok_or(corrupt(short))?;
        let checkpoint_id = cur.u64().ok_or(corrupt(short))?;
        // Exactly one encoding per manifest: a flag other than 0 or 1, or an id beside a 0 flag,
        // was not written by `encode`.
        let checkpoint = match (has_checkpoint, checkpoint_id) {
            (0, 0) => None,
            (1, id) => Some(id),
            _ => return Err(corrupt("the checkpoint field is invalid")),
        };
        let wal_segments = cur.ids().ok_or(corrupt(short))?;
        let data_segments = cur.ids().ok_or(corrupt(short))?;
        if !cur.0.is_empty() {
            return Err(corrupt("the record is longer than its fields"));
        }
        Ok(Manifest {
            format_version,
            generation,
            wal_segments,
            data_segments,
            checkpoint,
        })
    }
}

/// Why [`Manifest::decode`] refused its input, before the path is attached.
enum Decode {
    Newer(u32),
    Corrupt(&'static str),
}

/// Reads little-endian fields off the front of a payload.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    /// A u32 count, then that many u64 ids.
    fn ids(&mut self) -> Option<Vec<u64>> {
        let count = usize::try_from(self.u32()?).ok()?;
        // Checked against the bytes left before allocating: a damaged count must not size the
        // vector.
        if count > self.0.len() / 8 {
            return None;
        }
        (0..count).map(|_| self.u64()).collect()
    }
}

/// Removes `path`, succeeding if it does not exist.
fn remove_if_present(vfs: &dyn Vfs, path: &Path) -> Result<(), ManifestError> {
    if !vfs.exists(path) {
        return Ok(());
    }
    match vfs.remove(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
