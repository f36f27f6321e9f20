//! Group commit (`wal::group`) over an in-memory log: a commit returns only once its record is
//! durable and published, every record reaches the log exactly once and in timestamp order,
//! a failed sync fails every commit it carried and every commit after it, and no committer
//! waits forever (loom reports a parked thread that nobody wakes as a deadlock).

use loom::sync::{Arc, Mutex};
use loom::thread;
use snapbase::__loom::{sync_error, GroupCommit, GroupLog, Oracle};
use snapbase::{Durability, Error, Result, Timestamp};

/// A log whose records are 8-byte timestamps. What a sync made durable is shared with the test
/// through `durable`, so a committer can check it the moment its commit returns.
#[derive(Debug)]
struct MemLog {
    /// Appended since the last sync.
    pending: Vec<u64>,
    /// Written, synced or not, in log order.
    written: Arc<Mutex<Vec<u64>>>,
    /// Synced, in log order.
    durable: Arc<Mutex<Vec<u64>>>,
    /// Fail the first sync (and lose what it was syncing).
    fail_first_sync: bool,
    syncs: usize,
}

impl GroupLog for MemLog {
    fn write_group(&mut self, group: &[u8], sync: bool, written: &mut u64) -> Result<()> {
        let mut rest = group;
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            assert_eq!(u32::from_le_bytes(*len), 8, "a record is one timestamp");
            let (record, tail) = tail.split_first_chunk::<8>().unwrap();
            let ts = u64::from_le_bytes(*record);
            self.pending.push(ts);
            self.written.lock().unwrap().push(ts);
            rest = tail;
        }
        assert!(rest.is_empty(), "a group holds whole records");
        *written += group.len() as u64;
        if sync {
            self.syncs += 1;
            if self.fail_first_sync && self.syncs == 1 {
                self.pending.clear();
                return Err(sync_error());
            }
            self.durable.lock().unwrap().append(&mut self.pending);
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}

#[derive(Clone)]
struct Setup {
    durability: Durability,
    oracle: Arc<Oracle>,
    wal: Arc<GroupCommit<MemLog>>,
    written: Arc<Mutex<Vec<u64>>>,
    durable: Arc<Mutex<Vec<u64>>>,
}

fn setup(fail_first_sync: bool) -> Setup {
    setup_with(Durability::Immediate, fail_first_sync)
}

fn setup_with(durability: Durability, fail_first_sync: bool) -> Setup {
    let written = Arc::new(Mutex::new(Vec::new()));
    let durable = Arc::new(Mutex::new(Vec::new()));
    let log = MemLog {
        pending: Vec::new(),
        written: written.clone(),
        durable: durable.clone(),
        fail_first_sync,
        syncs: 0,
    };
    Setup {
        durability,
        oracle: Arc::new(Oracle::new()),
        wal: Arc::new(GroupCommit::new(durability, log, 0, Timestamp::ZERO)),
        written,
        durable,
    }
}

/// The commit path's durable half, as `persist::Persist::commit` runs it: take a timestamp,
/// queue the record under the commit lock, end the commit unpublished, wait until it is durable.
/// On success, checks that the commit is on the log (synced, unless the mode is `None`) and
/// visible before returning.
fn commit(s: &Setup) -> Result<u64> {
    let slot = s.oracle.begin_commit();
    let ts = slot.ts();
    s.wal.enqueue(ts, &ts.get().to_le_bytes());
    slot.install_unpublished();
    s.wal.wait_durable(ts, &s.oracle)?;
    let on_log = match s.durability {
        Durability::None => &s.written,
        _ => &s.durable,
    };
    assert!(
        on_log.lock().unwrap().contains(&ts.get()),
        "commit {} returned before its record was on the log ({:?})",
        ts.get(),
        s.durability
    );
    assert!(
        s.oracle.visible() >= ts,
        "commit {} returned before it was published",
        ts.get()
    );
    assert_visible_is_durable(s);
    Ok(ts.get())
}

/// Readers may see only durable commits: everything up to the published timestamp is on the
/// log.
fn assert_visible_is_durable(s: &Setup) {
    if s.durability == Durability::None {
        return;
    }
    let visible = s.oracle.visible().get();
    let durable = s.durable.lock().unwrap();
    assert!(
        (1..=visible).all(|ts| durable.contains(&ts)),
        "commit {visible} is visible but only {durable:?} are durable"
    );
}

/// The log holds exactly `durable`, in that order, and the last of it is the visible commit.
fn assert_ends_with(s: &Setup, durable: &[u64]) {
    assert_eq!(*s.durable.lock().unwrap(), durable);
    assert_eq!(
        s.oracle.visible().get(),
        durable.last().copied().unwrap_or(0)
    );
}

fn spawn_committer(s: &Setup, commits: usize) -> thread::JoinHandle<Vec<Result<u64>>> {
    let s = s.clone();
    thread::spawn(move || (0..commits).map(|_| commit(&s)).collect())
}

#[test]
fn group_commit_acknowledges_only_durable_published_commits_exactly_once_in_order() {
    loom::model(|| {
        let s = setup(false);
        let other = spawn_committer(&s, 1);
        let mine = commit(&s).unwrap();
        let theirs = other.join().unwrap().pop().unwrap().unwrap();
        let mut both = [mine, theirs];
        both.sort_unstable();
        assert_eq!(both, [1, 2]);
        assert_ends_with(&s, &[1, 2]);
    });
}

/// Two commits each: the second round's leader gathers (its last group may have held two
/// commits) and waiters park and are woken by the flush that made them durable.
#[test]
fn group_commit_second_rounds_gather_and_wake_without_losing_anyone() {
    loom::model(|| {
        let s = setup(false);
        let other = spawn_committer(&s, 2);
        let mine: Vec<u64> = (0..2).map(|_| commit(&s).unwrap()).collect();
        let theirs: Vec<u64> = other
            .join()
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(mine[0] < mine[1] && theirs[0] < theirs[1]);
        assert_ends_with(&s, &[1, 2, 3, 4]);
    });
}

/// A flush from outside the commit path (the background flusher, a checkpoint, close) racing a
/// committer: the record is written once, and the flush returns only after everything queued
/// before it is durable.
#[test]
fn group_commit_outside_flush_and_committer_write_each_record_once() {
    loom::model(|| {
        let s = setup(false);
        let other = spawn_committer(&s, 1);
        s.wal
            .with_log(&s.oracle, |log| {
                assert!(log.pending.is_empty(), "the flush synced what it wrote");
                Ok(())
            })
            .unwrap();
        assert_visible_is_durable(&s);
        let ts = other.join().unwrap().pop().unwrap().unwrap();
        assert_eq!(ts, 1);
        assert_ends_with(&s, &[1]);
    });
}

/// The first sync fails: every commit fails (the ones it carried with the I/O error or as
/// poisoned, any later one as poisoned), none becomes durable or visible, and the WAL refuses
/// further writes until reopened.
#[test]
fn group_commit_failed_sync_fails_every_commit_and_poisons() {
    loom::model(|| {
        let s = setup(true);
        let other = spawn_committer(&s, 1);
        let mine = commit(&s);
        let theirs = other.join().unwrap().pop().unwrap();
        for outcome in [&mine, &theirs] {
            assert!(
                matches!(outcome, Err(Error::Io { .. } | Error::Poisoned { .. })),
                "{outcome:?}"
            );
        }
        assert!(
            [&mine, &theirs]
                .iter()
                .any(|o| matches!(o, Err(Error::Io { .. }))),
            "the leader of the failed sync reports the I/O error itself: {mine:?} {theirs:?}"
        );
        assert_ends_with(&s, &[]);
        assert!(matches!(
            s.wal.check_writable(),
            Err(Error::Poisoned { .. })
        ));
    });
}

/// `Durability::None`: a commit returns once its record is written (not synced) and
/// published, and a flush with sync afterwards (what `close` runs) makes everything durable.
#[test]
fn group_commit_unsynced_mode_writes_before_returning_and_a_synced_flush_keeps_it() {
    loom::model(|| {
        let s = setup_with(Durability::None, false);
        let other = spawn_committer(&s, 1);
        let mine = commit(&s).unwrap();
        let theirs = other.join().unwrap().pop().unwrap().unwrap();
        assert_ne!(mine, theirs);
        s.wal.flush(true, &s.oracle).unwrap();
        assert_ends_with(&s, &[1, 2]);
    });
}
