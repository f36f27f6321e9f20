//! Fault injection: an I/O error on the N-th operation of each kind, for every N of the crash
//! suite's workloads (issue 3, "Fault injection"; RELIABILITY.md 1.2 and 1.3 item 6).
//!
//! For every operation kind (append, sync, rename, directory sync, remove, open), every N from
//! 0 to the number of operations of that kind the workload does (N equal to the count is the
//! run where the fault never fires), `EIO` and `ENOSPC`, once, with each effect that means
//! something for the kind (a short write for appends, a lying page cache for syncs), the
//! workload runs in `Immediate` mode and the poison rule must hold:
//! - the step whose operation failed returns an error, naming the file, and its commit is not
//!   visible to readers;
//! - every later commit, checkpoint and compaction fails with `Error::Poisoned` ("poisoned,
//!   reopen it"), although the fault fired once: a failed sync is never retried and then
//!   acknowledged;
//! - reads keep working and show exactly the acknowledged commits;
//! - `close` may fail but releases the lock;
//! - reopening the live file system (a restart without power loss) and a power-loss image of
//!   it both recover a prefix holding every acknowledged commit, and take a new commit.
//!
//! One exception, checked precisely: an open of an existing file for reading changes nothing
//! on disk, so a failure there need not poison. Where the engine reads a file only for
//! statistics (the WAL's size), it may even swallow the error.
//!
//! Which operation the N-th of a kind is (its file, whether it only reads, which step does it)
//! comes from a reference run through [`Tracer`], a `Vfs` wrapper that records every
//! operation `SimFs` counts, in the same order; `Immediate` mode does no background file work,
//! so the runs are deterministic.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::crash::{check_recovery, workloads, Step, Workload};
use super::support::{self, State};
use crate::db::Database;
use crate::error::Error;
use crate::options::Durability;
use crate::storage::sim_fs::{
    CrashMode, Fault, FaultEffect, FaultError, OpKind, Persistence, SimFs,
};
use crate::storage::vfs::{OpenMode, Vfs, VfsFile, VfsLock};
use crate::sync::{Arc, Mutex};

/// One state-changing operation, as `SimFs` counts it.
#[derive(Debug, Clone)]
pub(super) struct Traced {
    /// `None` for `create_dir_all`, which no fault targets.
    pub(super) kind: Option<OpKind>,
    pub(super) path: PathBuf,
    /// An open of an existing file: it changes nothing on disk.
    pub(super) read_only: bool,
}

pub(super) type Trace = Arc<Mutex<Vec<Traced>>>;

/// A `Vfs` that records every operation `SimFs` counts, then forwards it; file syncs first
/// sleep `sync_delay` (zero: no sleep), like a disk, so concurrent committers pile up behind a
/// sync and the WAL groups them.
#[derive(Debug)]
pub(super) struct Tracer {
    fs: Arc<SimFs>,
    trace: Trace,
    sync_delay: Duration,
}

impl Tracer {
    /// A tracing view of `fs`, and its trace.
    pub(super) fn wrap(fs: &Arc<SimFs>, sync_delay: Duration) -> (Arc<dyn Vfs>, Trace) {
        let trace = Trace::default();
        let vfs = Arc::new(Tracer {
            fs: Arc::clone(fs),
            trace: Arc::clone(&trace),
            sync_delay,
        });
        (vfs, trace)
    }
}

fn record(trace: &Trace, kind: Option<OpKind>, path: &Path, read_only: bool) {
    trace.lock().push(Traced {
        kind,
        path: path.to_path_buf(),
        read_only,
    });
}

impl Vfs for Tracer {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        record(
            &self.trace,
            Some(OpKind::Open),
            path,
            mode == OpenMode::Existing,
        );
        let inner = self.fs.open(path, mode)?;
        Ok(Box::new(TracedFile {
            inner,
            path: path.to_path_buf(),
            trace: Arc::clone(&self.trace),
            sync_delay: self.sync_delay,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        record(&self.trace, Some(OpKind::Rename), to, false);
        self.fs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        record(&self.trace, Some(OpKind::Remove), path, false);
        self.fs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        record(&self.trace, Some(OpKind::SyncDir), dir, false);
        self.fs.sync_dir(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.fs.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        record(&self.trace, None, dir, false);
        self.fs.create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        record(&self.trace, Some(OpKind::Open), path, false);
        self.fs.lock_exclusive(path)
    }
}

#[derive(Debug)]
struct TracedFile {
    inner: Box<dyn VfsFile>,
    path: PathBuf,
    trace: Trace,
    sync_delay: Duration,
}

impl TracedFile {
    fn sync(&self, f: impl FnOnce(&dyn VfsFile) -> io::Result<()>) -> io::Result<()> {
        if !self.sync_delay.is_zero() {
            std::thread::sleep(self.sync_delay);
        }
        record(&self.trace, Some(OpKind::Sync), &self.path, false);
        f(&*self.inner)
    }
}

impl VfsFile for TracedFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }

    fn append(&self, data: &[u8]) -> io::Result<u64> {
        record(&self.trace, Some(OpKind::Write), &self.path, false);
        self.inner.append(data)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        record(&self.trace, Some(OpKind::Write), &self.path, false);
        self.inner.write_at(offset, data)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        record(&self.trace, Some(OpKind::SetLen), &self.path, false);
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(|f| f.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(|f| f.sync_all())
    }
}

/// A traced reference run: every operation, and the index in the trace where each step starts
/// (`starts[i]`) and the last one ends (`starts[steps]`).
struct TracedRun {
    ops: Vec<Traced>,
    starts: Vec<usize>,
}

impl TracedRun {
    /// Where the `nth` operation of `kind` happens: its index in the trace and the operation.
    fn find(&self, kind: OpKind, nth: u64) -> Option<(usize, &Traced)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == Some(kind))
            .nth(usize::try_from(nth).ok()?)
    }

    fn count(&self, kind: OpKind) -> u64 {
        self.ops.iter().filter(|t| t.kind == Some(kind)).count() as u64
    }

    /// The step doing operation `index`: `None` for the initial open, `Some(steps)` for none.
    fn step_of(&self, index: usize) -> Option<usize> {
        if index < self.starts[0] {
            return None;
        }
        Some(self.starts.iter().rposition(|&s| s <= index).unwrap_or(0))
    }
}

fn traced_reference(w: &Workload) -> TracedRun {
    let fs = Arc::new(SimFs::new());
    let (vfs, trace) = Tracer::wrap(&fs, Duration::ZERO);
    let open = || w.open_on(Arc::clone(&vfs), Durability::Immediate);
    let mut db = open().unwrap();
    let mut starts = Vec::new();
    for step in &w.steps {
        starts.push(trace.lock().len());
        w.run(&mut db, step, &open).unwrap();
    }
    starts.push(trace.lock().len());
    db.close().unwrap();
    let ops = trace.lock().clone();
    // `close` in Immediate mode has nothing left to write.
    assert_eq!(
        ops.len(),
        starts[w.steps.len()],
        "{}: close did file work",
        w.name
    );
    assert_eq!(
        ops.len() as u64,
        fs.ops(),
        "{}: the tracer and SimFs count operations differently",
        w.name
    );
    TracedRun { ops, starts }
}

/// The operation kinds faults are injected into, with the effects that mean something there.
const KINDS: [(OpKind, &[FaultEffect]); 7] = [
    (
        OpKind::Write,
        &[FaultEffect::Clean, FaultEffect::ShortWrite],
    ),
    (
        OpKind::Sync,
        &[FaultEffect::Clean, FaultEffect::LyingPageCache],
    ),
    (OpKind::Rename, &[FaultEffect::Clean]),
    (OpKind::SyncDir, &[FaultEffect::Clean]),
    (OpKind::Remove, &[FaultEffect::Clean]),
    (OpKind::Open, &[FaultEffect::Clean]),
    // Extending the newest WAL segment ahead of its appends, trimming it when sealed, and
    // truncating a torn tail.
    (OpKind::SetLen, &[FaultEffect::Clean]),
];

/// Counts of what the fault sweep saw.
#[derive(Debug, Default)]
struct Counts {
    cases: u64,
    /// Cases where the fault fired in the initial open, in a step, or never.
    in_open: u64,
    in_step: u64,
    never: u64,
    /// Read-only opens that failed without poisoning, or whose error was swallowed.
    read_errors_not_poisoning: u64,
    read_errors_swallowed: u64,
    /// Where those read errors happened ("step kind: file"), deduplicated.
    read_error_sites: std::collections::BTreeSet<String>,
    /// Later writes checked to fail with `Poisoned`.
    poisoned_writes: u64,
    /// Later replaces and deletes of documents the acknowledged state lacks, which rightly
    /// report "not found" without writing.
    noop_writes: u64,
    /// Recoveries checked (live restart and power loss).
    recoveries: u64,
}

/// One fault case: runs `w` with `fault`, checks the poison rule and both recoveries.
#[allow(clippy::too_many_lines)]
fn fault_case(
    w: &Workload,
    run: &TracedRun,
    model: &[State],
    fault: Fault,
    counts: &mut Counts,
) -> std::result::Result<(), String> {
    let target = run.find(fault.op, fault.nth);
    let fs = Arc::new(SimFs::new());
    fs.inject(fault);
    let open = || w.open(&fs, Durability::Immediate);
    let (mut acked, mut attempted) = (0, 0);
    let mut db = match open() {
        Ok(db) => Some(db),
        Err(e) => {
            counts.in_open += 1;
            let Some((index, op)) = target.filter(|(i, _)| run.step_of(*i).is_none()) else {
                return Err(format!("the initial open failed, not at the fault: {e}"));
            };
            check_sentence(&e, &op.path).map_err(|m| format!("open (operation {index}): {m}"))?;
            None
        }
    };
    // The first step that failed, and whether its failure poisoned the writer.
    let mut failed: Option<usize> = None;
    let mut poisoned = false;
    if let Some(db) = db.as_mut() {
        for (i, step) in w.steps.iter().enumerate() {
            if failed.is_none() {
                attempted += usize::from(step.is_commit());
                match w.run(db, step, &open) {
                    Ok(true) => acked += usize::from(step.is_commit()),
                    Ok(false) => return Err(format!("step {i} ({step:?}) changed nothing")),
                    Err(e) => {
                        failed = Some(i);
                        counts.in_step += 1;
                        let Some((index, op)) = target.filter(|(t, _)| run.step_of(*t) == Some(i))
                        else {
                            return Err(format!(
                                "step {i} ({}) failed, but the fault was not in it: {e}",
                                step.kind()
                            ));
                        };
                        check_sentence(&e, &op.path)
                            .map_err(|m| format!("step {i} (operation {index}): {m}"))?;
                        if matches!(step, Step::Reopen) {
                            // The old handle was closed; the new one did not open.
                            break;
                        }
                        poisoned = probe_poison(db, counts)
                            .map_err(|m| format!("after the failure of step {i}: {m}"))?;
                        if !poisoned {
                            if !read_only(target) {
                                return Err(format!(
                                    "step {i} ({}) failed ({e}) but the writer is not poisoned: \
                                     a compaction after it succeeded",
                                    step.kind()
                                ));
                            }
                            // An open for reading failed: nothing changed on disk, the writer
                            // rightly goes on.
                            counts.read_errors_not_poisoning += 1;
                            counts.read_error_sites.insert(format!(
                                "{} reports an error opening {}",
                                step.kind(),
                                op.path.display()
                            ));
                            attempted = acked;
                        }
                    }
                }
            } else if poisoned {
                if matches!(step, Step::Reopen) {
                    // A restart clears the poison; the recovery checks below do that.
                    break;
                }
                let noop = Workload::is_noop(step, &model[acked]);
                match w.run(db, step, &open) {
                    Err(e) if e.is_poisoned() => counts.poisoned_writes += 1,
                    // A replace or delete of a document the acknowledged state lacks needs no
                    // write: "not found" is the truth.
                    Ok(false) if noop => counts.noop_writes += 1,
                    Ok(applied) => {
                        return Err(format!(
                            "step {i} ({step:?}) returned Ok({applied}) on a poisoned database"
                        ))
                    }
                    Err(e) => {
                        return Err(format!(
                            "step {i} ({step:?}) on a poisoned database failed without \
                             Error::Poisoned: {e}"
                        ))
                    }
                }
            } else {
                match w.run(db, step, &open) {
                    Ok(true) => acked += usize::from(step.is_commit()),
                    other => return Err(format!("step {i} after a harmless fault: {other:?}")),
                }
                attempted = acked;
            }
            // Reads keep working and show exactly the acknowledged commits: in Immediate mode
            // a failed commit is not visible.
            let seen = support::state(db);
            if seen != model[acked] {
                return Err(format!(
                    "after step {i}, readers see a state other than the {acked} acknowledged \
                     commits\nseen:     {seen:?}\nexpected: {:?}",
                    model[acked]
                ));
            }
        }
    }
    match (failed, target) {
        (None, None) => counts.never += 1,
        (None, Some((index, op))) if db.is_some() => {
            // The fault fired (the run went past it) and no step reported it.
            if read_only(target) {
                counts.read_errors_swallowed += 1;
                let step = run.step_of(index).and_then(|s| w.steps.get(s));
                counts.read_error_sites.insert(format!(
                    "{} swallows an error opening {}",
                    step.map_or("open", Step::kind),
                    op.path.display()
                ));
            } else {
                return Err(format!(
                    "the fault fired at operation {index} ({:?} {}), but every step succeeded",
                    op.kind,
                    op.path.display()
                ));
            }
        }
        _ => {}
    }

    // Power loss now: taken before the restart below changes the live file system.
    fs.clear_faults();
    let images = [
        (CrashMode::DropUnsynced, 0),
        (CrashMode::Random, fault.nth),
        (CrashMode::InOrder, fault.nth),
    ]
    .map(|(mode, seed)| (mode, seed, Arc::new(fs.crash(seed, mode))));
    // `close` may fail (the writer is poisoned) but must release the lock: the restart below
    // opens the live file system while `db` is still alive.
    if let Some(db) = &db {
        let _ = db.close();
    }
    check_recovery(w, &fs, model, acked..=attempted, Durability::Immediate)
        .map_err(|m| format!("restart on the live file system: {m}"))?;
    counts.recoveries += 1;
    for (mode, seed, image) in &images {
        check_recovery(w, image, model, acked..=attempted, Durability::Immediate)
            .map_err(|m| format!("power loss ({mode:?}, seed {seed}): {m}"))?;
        counts.recoveries += 1;
    }
    drop(db);
    Ok(())
}

/// After a failed step: a compaction (which changes no document) tells whether the writer is
/// poisoned; if it is, a new commit, a transaction and a checkpoint must fail with
/// `Error::Poisoned` too. Their documents are new, so nothing the failed commit left behind can
/// interfere.
fn probe_poison(db: &Database, counts: &mut Counts) -> std::result::Result<bool, String> {
    let mut poisoned = |what: &str, r: crate::error::Result<()>| match r {
        Err(e) if e.is_poisoned() => {
            counts.poisoned_writes += 1;
            check_sentence(&e, Path::new("poisoned, reopen")).map_err(|m| format!("{what}: {m}"))
        }
        Err(e) => Err(format!("{what} failed without Error::Poisoned: {e}")),
        Ok(()) => Err(format!("{what} succeeded on a poisoned database")),
    };
    match db.compact() {
        Ok(_) => return Ok(false),
        Err(e) => poisoned("a compaction", Err(e))?,
    }
    poisoned(
        "a commit",
        db.collection("probe")
            .and_then(|c| c.insert(json!({"_id": "probe"})))
            .map(drop),
    )?;
    poisoned(
        "a transaction",
        db.transaction(|tx| tx.upsert("probe", json!({"_id": "tx"})).map(drop)),
    )?;
    poisoned("a checkpoint", db.checkpoint())?;
    Ok(true)
}

/// Whether the fault's target is an open of an existing file.
fn read_only(target: Option<(usize, &Traced)>) -> bool {
    target.is_some_and(|(_, t)| t.read_only)
}

/// An error message must be a sentence naming the file involved (for the lock file, the
/// database directory it locks), or saying to reopen.
fn check_sentence(e: &Error, expected: &Path) -> std::result::Result<(), String> {
    let msg = e.to_string();
    let lock_dir = expected
        .parent()
        .filter(|_| expected.file_name() == Some(crate::storage::lock::LOCK_FILE.as_ref()));
    let names = msg.contains(&*expected.to_string_lossy())
        || lock_dir.is_some_and(|dir| msg.contains(&format!("directory {}", dir.display())))
        || msg.contains("poisoned, reopen");
    if names && msg.len() > 20 && msg.contains(' ') {
        Ok(())
    } else {
        Err(format!(
            "the error message {msg:?} does not name {} (or say to reopen)",
            expected.display()
        ))
    }
}

fn sweep(w: &Workload) -> Counts {
    let run = traced_reference(w);
    let model = w.model();
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for (kind, effects) in KINDS {
        let total = run.count(kind);
        for nth in 0..=total {
            for error in [FaultError::Eio, FaultError::Enospc] {
                for &effect in effects {
                    let fault = Fault {
                        op: kind,
                        nth,
                        error,
                        persistence: Persistence::Once,
                        effect,
                    };
                    counts.cases += 1;
                    if let Err(msg) = fault_case(w, &run, &model, fault, &mut counts) {
                        let at = run.find(kind, nth).map_or_else(
                            || "never fires".to_owned(),
                            |(i, t)| {
                                let step = run.step_of(i).map_or("the open".to_owned(), |s| {
                                    w.steps
                                        .get(s)
                                        .map_or("the close".to_owned(), |s| format!("{s:?}"))
                                });
                                format!("operation {i} on {} in {step}", t.path.display())
                            },
                        );
                        failures.push(format!(
                            "workload {}, fault {kind:?} nth {nth} {error:?} {effect:?} ({at}): \
                             {msg}",
                            w.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fault cases failed; the first 5:\n{}",
        failures.len(),
        counts.cases,
        failures[..failures.len().min(5)].join("\n\n")
    );
    let mut by_kind = String::new();
    for (kind, _) in KINDS {
        let _ = write!(by_kind, " {kind:?} {}", run.count(kind));
    }
    println!(
        "fault sweep {}: {} cases (operations:{by_kind}); fired in open {}, in a step {}, never \
         {}; {} later writes poisoned, {} were no-ops; {} read errors did not poison, {} were swallowed; {} recoveries",
        w.name,
        counts.cases,
        counts.in_open,
        counts.in_step,
        counts.never,
        counts.poisoned_writes,
        counts.noop_writes,
        counts.read_errors_not_poisoning,
        counts.read_errors_swallowed,
        counts.recoveries
    );
    for site in &counts.read_error_sites {
        println!("  read error that did not poison: {site}");
    }
    counts
}

/// The least number of fault cases each workload must run.
const FAULT_FLOOR: u64 = 250;

fn sweep_named(name: &str) {
    let w = workloads().into_iter().find(|w| w.name == name).unwrap();
    let counts = sweep(&w);
    assert!(
        counts.cases >= FAULT_FLOOR,
        "{name}: only {} fault cases, below {FAULT_FLOOR}",
        counts.cases
    );
    assert!(counts.in_step > 0 && counts.never > 0 && counts.poisoned_writes > 0);
}

#[test]
fn every_fault_poisons_commits_checkpoint_compact() {
    sweep_named("commits-checkpoint-compact");
}

#[test]
fn every_fault_poisons_drop_recreate_reopen() {
    sweep_named("drop-recreate-reopen");
}

#[test]
fn every_fault_poisons_wal_rotation() {
    sweep_named("wal-rotation");
}

#[test]
fn every_fault_poisons_large_records() {
    sweep_named("large-records");
}

/// `None` and `Periodic` durability poison on a failed write or sync too, and every write
/// after it fails with `Poisoned`. In `None` mode a commit hands its record to the OS itself,
/// so a failed append surfaces in that commit, and a failed sync in the next checkpoint. In
/// `Periodic` mode commits do no I/O: the background syncer meets the fault, and the next
/// commit reports it.
#[test]
fn non_immediate_modes_poison_on_a_failed_write() {
    let mut cases = 0;
    for durability in [
        Durability::None,
        Durability::Periodic(Duration::from_millis(1)),
    ] {
        for (op, effect) in [
            (OpKind::Write, FaultEffect::Clean),
            (OpKind::Write, FaultEffect::ShortWrite),
            (OpKind::Sync, FaultEffect::Clean),
            (OpKind::Sync, FaultEffect::LyingPageCache),
        ] {
            cases += 1;
            non_immediate_case(durability, op, effect);
        }
    }
    println!("non-immediate fault cases: {cases}");
}

fn non_immediate_case(durability: Durability, op: OpKind, effect: FaultEffect) {
    let periodic = matches!(durability, Durability::Periodic(_));
    let case = format!("{durability:?}, {op:?} {effect:?}");
    let fs = Arc::new(SimFs::new());
    let db = support::open(&fs, durability).unwrap();
    let docs = db.collection("d").unwrap();
    docs.insert(json!({"_id": 0})).unwrap();
    db.checkpoint().unwrap();
    fs.inject(Fault {
        op,
        nth: 0,
        error: FaultError::Eio,
        persistence: Persistence::Once,
        effect,
    });
    // Commit until the fault surfaces. `None`: a checkpoint every 20 commits syncs.
    // `Periodic`: the syncer runs every millisecond; the bound only keeps a broken syncer from
    // hanging the test.
    let mut acked = 1;
    let mut first = None;
    for i in 1..=5000 {
        let result = if !periodic && i % 20 == 0 {
            db.checkpoint()
        } else {
            docs.insert(json!({"_id": i})).map(drop)
        };
        match result {
            Ok(()) => acked += usize::from(periodic || i % 20 != 0),
            Err(e) => {
                first = Some(e);
                break;
            }
        }
        if periodic {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let first = first.unwrap_or_else(|| panic!("{case}: the fault never surfaced"));
    assert!(
        first.to_string().contains("/db/wal-"),
        "{case}: the first error does not name the WAL segment: {first}"
    );
    if periodic {
        assert!(
            first.is_poisoned(),
            "{case}: a Periodic commit did I/O: {first}"
        );
    }
    // Every later write fails, poisoned, even though the fault fired once.
    let later = docs.insert(json!({"_id": "later"})).unwrap_err();
    assert!(
        later.is_poisoned(),
        "{case}: a commit after the failure: {later}"
    );
    let later = db.checkpoint().unwrap_err();
    assert!(
        later.is_poisoned(),
        "{case}: a checkpoint after the failure: {later}"
    );
    let later = db.compact().unwrap_err();
    assert!(
        later.is_poisoned(),
        "{case}: a compaction after the failure: {later}"
    );
    assert!(
        later.to_string().contains("poisoned, reopen"),
        "{case}: {later}"
    );
    // Reads work and show every acknowledged commit. In these modes a commit is published
    // before it is written, so a `None` commit whose append failed is visible although it
    // returned an error (see `a_failed_none_mode_commit_is_not_visible`).
    let seen = docs.len().unwrap();
    assert!(
        seen == acked || seen == acked + 1,
        "{case}: {seen} docs, {acked} acked"
    );
    let _ = db.close();
    // Restart without power loss: at least the checkpointed commit survives, nothing that was
    // never committed appears, and a new commit works and survives.
    let reopened = support::open(&fs, Durability::Immediate).unwrap();
    let kept = reopened.collection("d").unwrap().len().unwrap();
    assert!(
        kept >= 1 && kept <= seen,
        "{case}: {kept} docs after a restart"
    );
    reopened
        .collection("d")
        .unwrap()
        .insert(json!({"_id": "after"}))
        .unwrap();
    reopened.close().unwrap();
    let reopened = support::open(&fs, Durability::Immediate).unwrap();
    let after = reopened.collection("d").unwrap().len().unwrap();
    assert_eq!(after, kept + 1, "{case}: the commit after the restart");
    reopened.close().unwrap();
    drop(db);
}

/// Regression: in `None` mode a commit was published before its record was handed to the OS,
/// so when that append failed the commit returned an error yet readers saw it, and a restart
/// (no power loss) lost it.
#[test]
fn a_failed_none_mode_commit_is_not_visible() {
    let fs = Arc::new(SimFs::new());
    let db = support::open(&fs, Durability::None).unwrap();
    let docs = db.collection("d").unwrap();
    docs.insert(json!({"_id": 0})).unwrap();
    fs.inject(Fault::new(OpKind::Write, 0));
    assert!(docs.insert(json!({"_id": 1})).is_err());
    assert_eq!(
        docs.get(1).unwrap(),
        None,
        "the commit that failed is visible"
    );
}

/// Regression: after a commit fails on a WAL write or sync (which poisons the database), every
/// later write must fail with `Error::Poisoned`. The failed commit's versions stay installed
/// (unpublished, invisible to readers), and the commit path used to check preconditions and
/// conflicts against them before the poison: an insert of a document the failed commit
/// inserted failed with `DuplicateId`, a transaction writing it with a (retryable)
/// `WriteConflict` after 16 attempts, and a replace or delete of a document the failed commit
/// deleted returned `Ok(false)`, "no such document", while readers saw it.
#[test]
fn writes_after_a_failed_commit_fail_poisoned_not_on_its_invisible_versions() {
    let fs = Arc::new(SimFs::new());
    let db = support::open(&fs, Durability::Immediate).unwrap();
    let docs = db.collection("d").unwrap();
    docs.insert(json!({"_id": 1})).unwrap();
    fs.inject(Fault::new(OpKind::Sync, 0));
    // The failed commit inserts 2 and deletes 1.
    let failed = db.transaction(|tx| {
        tx.insert("d", json!({"_id": 2}))?;
        tx.delete("d", 1).map(drop)
    });
    assert!(failed.is_err());
    assert_eq!(
        docs.get(2).unwrap(),
        None,
        "the failed insert is not visible"
    );
    assert!(
        docs.get(1).unwrap().is_some(),
        "the failed delete is not visible"
    );
    let mut outcomes = Vec::new();
    let mut check = |what: &str, poisoned: bool, outcome: String| {
        if !poisoned {
            outcomes.push(format!("{what}: {outcome}"));
        }
    };
    let r = docs.insert(json!({"_id": 2}));
    check(
        "insert 2",
        r.as_ref().is_err_and(Error::is_poisoned),
        format!("{r:?}"),
    );
    let r = db.transaction(|tx| tx.upsert("d", json!({"_id": 2, "v": 1})).map(drop));
    check(
        "upsert 2 in a transaction",
        r.as_ref().is_err_and(Error::is_poisoned),
        format!("{r:?}"),
    );
    let r = docs.replace(1, json!({"_id": 1, "v": 2}));
    check(
        "replace 1",
        r.as_ref().is_err_and(Error::is_poisoned),
        format!("{r:?}"),
    );
    let r = docs.delete(1);
    check(
        "delete 1",
        r.as_ref().is_err_and(Error::is_poisoned),
        format!("{r:?}"),
    );
    assert!(
        outcomes.is_empty(),
        "writes on a poisoned database that did not fail with Poisoned:\n{}",
        outcomes.join("\n")
    );
}

/// A checkpoint that fails outside any WAL flush (its manifest rename) poisons the writer while
/// committers are queued behind a flush, yielding for one, parked, or being gathered by a
/// leader (syncs take a millisecond here, so all of these happen). Every committer returns
/// with `Poisoned`, and every acknowledged commit survives a reopen. (A flush already running
/// when the checkpoint fails may still complete and acknowledge its group: it is durable.)
#[test]
fn a_failed_checkpoint_poisons_committers_in_every_waiting_state() {
    const THREADS: i64 = 8;
    for round in 0..10 {
        let fs = Arc::new(SimFs::new());
        let (vfs, _trace) = Tracer::wrap(&fs, Duration::from_millis(1));
        let db = support::open_on(vfs, Durability::Immediate).unwrap();
        let docs = db.collection("d").unwrap();
        docs.insert(json!({"_id": -1})).unwrap();
        let acked = std::thread::scope(|s| {
            let committers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let docs = docs.clone();
                    s.spawn(move || {
                        let mut acked = Vec::new();
                        for k in 0..100_000 {
                            let id = t * 100_000 + k;
                            match docs.insert(json!({"_id": id})) {
                                Ok(_) => acked.push(id),
                                Err(e) => {
                                    assert!(e.is_poisoned(), "round {round}: {e}");
                                    return acked;
                                }
                            }
                        }
                        panic!("round {round}: committer {t} was never refused");
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(5 + round));
            fs.inject(Fault::new(OpKind::Rename, 0));
            let failed = loop {
                if let Err(e) = db.checkpoint() {
                    break e;
                }
            };
            assert!(
                failed.to_string().contains("MANIFEST"),
                "round {round}: {failed}"
            );
            committers
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(!acked.is_empty(), "round {round}: nothing committed");
        db.close().ok();
        let reopened = support::open(&fs, Durability::Immediate).unwrap();
        let d = reopened.collection("d").unwrap();
        for id in &acked {
            assert!(d.get(*id).unwrap().is_some(), "round {round}: {id} lost");
        }
        reopened.close().unwrap();
    }
}
