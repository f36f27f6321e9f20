//! Plain files: one JSON file per document in one directory, each written to a temporary file
//! and renamed over its final name, so a reader never sees half a document.
//!
//! Durable batches write every temporary file, make them durable, rename them all, then `fsync`
//! the directory once, so that the renames are on disk when the batch returns. Small batches
//! `fsync` each temporary file; a batch of [`SYNCFS_BATCH`] or more makes them durable with one
//! `syncfs(2)` of the file system instead, as a tool writing thousands of files does (one
//! journal commit rather than one per file). A batch is not atomic: a crash in the middle leaves
//! some documents of it written and others not.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::{Capability, Doc, Durability, Engine, EngineKind, EngineResult};

/// One file per document.
#[derive(Debug)]
pub struct Files;

impl EngineKind for Files {
    fn name(&self) -> &'static str {
        "files"
    }

    fn config(&self) -> String {
        "one <_id>.json file per document in one directory, written to a .tmp file then renamed; \
         durable = fsync of each file (one syncfs for batches of 1,000 or more) before the \
         renames and of the directory after the batch, relaxed = no fsync; a batch is not atomic; the OS page cache is the only cache; get \
         reads the file and parses it into a Value"
            .to_owned()
    }

    fn open(&self, dir: &Path, durability: Durability) -> EngineResult<Box<dyn Engine>> {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Box::new(Dir {
            dir: dir.to_owned(),
            durable: durability == Durability::Durable,
            next_temp: AtomicU64::new(0),
        }))
    }

    fn supports(&self, capability: Capability) -> bool {
        // Durable, but no indexes beyond the file name and no ordered scans.
        capability == Capability::Durability
    }
}

struct Dir {
    dir: PathBuf,
    durable: bool,
    /// Numbers the temporary files.
    next_temp: AtomicU64,
}

/// Documents are stored as `<name>.json`, their temporaries as `<name>.json.<n>.tmp` with `n`
/// unique, so that concurrent writers of one document never share a temporary file.
const EXTENSION: &str = ".json";

/// Durable batches of at least this many documents are synced with one `syncfs` rather than one
/// `fsync` per file.
const SYNCFS_BATCH: usize = 1_000;

impl Dir {
    /// The file name of `id`: the id itself when it is made of file-name-safe characters (the
    /// workloads' base64url ids are), otherwise `x` and its bytes in hex.
    fn file_name(id: &str) -> String {
        let safe = !id.is_empty()
            && !id.starts_with('x')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if safe {
            return id.to_owned();
        }
        let mut name = String::with_capacity(1 + 2 * id.len());
        name.push('x');
        for b in id.bytes() {
            name.push_str(&format!("{b:02x}"));
        }
        name
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}{EXTENSION}", Self::file_name(id)))
    }

    fn temp_path(&self, id: &str) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{}{EXTENSION}.{n}.tmp", Self::file_name(id)))
    }

    fn sync_dir(&self) -> EngineResult<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("syncing {}: {e}", self.dir.display()))
    }

    /// Writes back every dirty page and inode of the file system holding the directory.
    fn sync_file_system(&self) -> EngineResult<()> {
        let dir =
            File::open(&self.dir).map_err(|e| format!("opening {}: {e}", self.dir.display()))?;
        // SAFETY: `syncfs` takes a file descriptor and nothing else; `dir` keeps it open for the
        // duration of the call.
        let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "syncing the file system of {}: {}",
                self.dir.display(),
                std::io::Error::last_os_error()
            ))
        }
    }

    fn write_all(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        // Write (and sync) every temporary file first, then rename: one directory sync covers
        // all the renames of the batch.
        let mut temps = Vec::with_capacity(docs.len());
        for (id, doc) in docs {
            let tmp = self.temp_path(id);
            let bytes = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
            file.write_all(&bytes)
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            if self.durable && docs.len() < SYNCFS_BATCH {
                file.sync_data()
                    .map_err(|e| format!("syncing {}: {e}", tmp.display()))?;
            }
            temps.push(tmp);
        }
        if self.durable && docs.len() >= SYNCFS_BATCH {
            self.sync_file_system()?;
        }
        for ((id, _), tmp) in docs.iter().zip(temps) {
            let path = self.path(id);
            fs::rename(&tmp, &path).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        }
        if self.durable {
            self.sync_dir()?;
        }
        Ok(())
    }
}

impl Engine for Dir {
    fn insert_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.write_all(docs)
    }

    fn update_batch(&self, docs: &[(String, Value)]) -> EngineResult<()> {
        self.write_all(docs)
    }

    fn delete_batch(&self, ids: &[String]) -> EngineResult<()> {
        for id in ids {
            let path = self.path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(format!("removing {}: {e}", path.display())),
            }
        }
        if self.durable {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn get(&self, id: &str) -> EngineResult<Option<Doc>> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(|v| Some(Doc::Parsed(v)))
                .map_err(|e| format!("parsing {}: {e}", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    fn count(&self) -> EngineResult<u64> {
        let mut n = 0;
        let entries =
            fs::read_dir(&self.dir).map_err(|e| format!("listing {}: {e}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("listing {}: {e}", self.dir.display()))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.ends_with(EXTENSION))
            {
                n += 1;
            }
        }
        Ok(n)
    }

    fn compact(&self) -> EngineResult<bool> {
        Ok(false)
    }

    fn close(self: Box<Self>) -> EngineResult<()> {
        if self.durable {
            self.sync_dir()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::{self, doc, temp_dir};

    #[test]
    fn files_round_trip() {
        conformance::round_trip(&Files, &[Durability::Durable, Durability::Relaxed], false);
    }

    #[test]
    fn a_large_durable_batch_reads_back_and_leaves_no_temporaries() {
        let dir = temp_dir("files-syncfs");
        let engine = Files.open(&dir, Durability::Durable).unwrap();
        let docs: Vec<_> = (0..SYNCFS_BATCH).map(|i| doc(i, 0)).collect();
        engine.insert_batch(&docs).unwrap();
        engine.close().unwrap();
        let engine = Files.open(&dir, Durability::Durable).unwrap();
        assert_eq!(engine.count().unwrap(), SYNCFS_BATCH as u64);
        let last = &docs[SYNCFS_BATCH - 1];
        assert_eq!(engine.get(&last.0).unwrap().as_deref(), Some(&last.1));
        // No temporary file is left behind.
        let leftovers = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_that_are_not_file_name_safe_are_hex_encoded() {
        assert_eq!(Dir::file_name("abc-_Z9"), "abc-_Z9");
        assert_eq!(Dir::file_name("a/b"), "x612f62");
        assert_eq!(Dir::file_name("xyz"), "x78797a");
        assert_eq!(Dir::file_name(""), "x");
    }
}
