//! Tests of the directory lock on the simulated and the real file system.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;
use crate::storage::sim_fs::{CrashMode, Fault, OpKind, SimFs};
use crate::storage::std_fs::StdFs;
use crate::storage::temp_dir::TempDir;

fn sim_with_dirs(dirs: &[&str]) -> SimFs {
    let fs = SimFs::new();
    for dir in dirs {
        fs.create_dir_all(Path::new(dir)).unwrap();
    }
    fs
}

/// The shared contract, run against both file systems: `a` and `b` are existing directories.
fn check_contract(vfs: &dyn Vfs, a: &Path, b: &Path) {
    let held = DirLock::acquire(vfs, a).unwrap();
    assert_eq!(held.dir(), a);
    assert!(vfs.exists(&a.join(LOCK_FILE)));

    let err = DirLock::acquire(vfs, a).unwrap_err();
    assert!(
        matches!(&err, LockError::Locked { dir } if dir == a),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the database at {} is locked by another process or another open handle in this \
             process; close it first",
            a.display()
        )
    );

    // Another directory is another lock.
    let other = DirLock::acquire(vfs, b).unwrap();

    // Dropping releases; the lock file staying behind does not matter.
    drop(held);
    let again = DirLock::acquire(vfs, a).unwrap();
    assert!(matches!(
        DirLock::acquire(vfs, b),
        Err(LockError::Locked { .. })
    ));
    drop((again, other));
    drop(DirLock::acquire(vfs, b).unwrap());
}

#[test]
fn sim_fs_contract() {
    let fs = sim_with_dirs(&["/db/a", "/db/b"]);
    check_contract(&fs, Path::new("/db/a"), Path::new("/db/b"));
}

#[test]
fn std_fs_contract() {
    let root = TempDir::new("lock-contract");
    let (a, b) = (root.0.join("a"), root.0.join("b"));
    StdFs.create_dir_all(&a).unwrap();
    StdFs.create_dir_all(&b).unwrap();
    check_contract(&StdFs, &a, &b);
}

#[test]
fn missing_directory_is_an_io_error() {
    let root = TempDir::new("lock-missing");
    let missing = root.0.join("nope");
    let err = DirLock::acquire(&StdFs, &missing).unwrap_err();
    match &err {
        LockError::Io { dir, source } => {
            assert_eq!(dir, &missing);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        LockError::Locked { .. } => panic!("expected an I/O error, got {err:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().starts_with(&format!(
        "could not lock the database at {}",
        missing.display()
    )));

    let fs = SimFs::new();
    assert!(matches!(
        DirLock::acquire(&fs, Path::new("/nope")),
        Err(LockError::Io { .. })
    ));
}

#[test]
fn sim_fs_injected_open_fault_is_an_io_error() {
    let fs = sim_with_dirs(&["/db"]);
    fs.inject(Fault::new(OpKind::Open, 0));
    assert!(matches!(
        DirLock::acquire(&fs, Path::new("/db")),
        Err(LockError::Io { .. })
    ));
    drop(DirLock::acquire(&fs, Path::new("/db")).unwrap());
}

#[test]
fn sim_fs_locks_do_not_survive_a_crash_or_a_snapshot() {
    let fs = sim_with_dirs(&["/db"]);
    let dir = Path::new("/db");
    let held = DirLock::acquire(&fs, dir).unwrap();
    // Make the lock file's name durable, so it exists in every crash image.
    fs.sync_dir(dir).unwrap();
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::Random,
        CrashMode::InOrder,
    ] {
        let after = fs.crash(7, mode);
        assert!(after.exists(&dir.join(LOCK_FILE)));
        drop(DirLock::acquire(&after, dir).unwrap());
    }
    // Even without the sync the crashed file system has no lock.
    let fresh = sim_with_dirs(&["/db"]);
    let unsynced = DirLock::acquire(&fresh, dir).unwrap();
    drop(DirLock::acquire(&fresh.crash(1, CrashMode::Random), dir).unwrap());

    let copy = fs.snapshot();
    let in_copy = DirLock::acquire(&copy, dir).unwrap();
    // The original still holds its own lock, and dropping the copy's leaves it held.
    assert!(matches!(
        DirLock::acquire(&fs, dir),
        Err(LockError::Locked { .. })
    ));
    drop(in_copy);
    assert!(matches!(
        DirLock::acquire(&fs, dir),
        Err(LockError::Locked { .. })
    ));
    drop((held, unsynced));
    drop(DirLock::acquire(&fs, dir).unwrap());
}
