//! Group commit: one write and one sync for every commit waiting, whatever the log.
//!
//! Commits enter in timestamp order: the commit path calls [`GroupCommit::enqueue`] while it
//! holds the commit lock, so the queue, and therefore the log, is in commit order. Whoever then
//! finds no flush in progress becomes the *leader*: it takes everything queued, hands it to the
//! log as **one** group (`wal::batch`), syncs once, and (in `Immediate` mode) publishes the last
//! timestamp of the group, which makes every commit of the group visible at once. Committers
//! that arrive while a leader is syncing wait, and the next leader takes them all in one group,
//! after a short wait for the rest of its group (`GroupCommit::gather`). With 16 busy
//! committers a sync carried 15 or 16 of them on the test VM. Waiting committers yield the CPU
//! rather than park for as long as a flush usually takes (`GroupCommit::yield_for_flush`), so
//! the end of a flush costs no wake-up per commit.
//!
//! The log is a [`GroupLog`]: `storage::segment_log` in a database (see `persist::wal`), an
//! in-memory one in the loom models, which is why this file builds under loom and touches no
//! file itself.
//!
//! Any I/O error poisons the WAL: the group's commits fail, nothing after them is published,
//! and every later commit fails with `Error::Poisoned`. The sync is never retried.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::mvcc::Timestamp;
use crate::options::Durability;
use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, Stopwatch};
use crate::txn::oracle::Oracle;
use crate::wal::batch::push_record;

/// The log under a [`GroupCommit`].
pub trait GroupLog {
    /// Appends `group` (whole commit records in `wal::batch`'s format, possibly none) and, if
    /// `sync`, makes it durable; with `sync` and an empty group, syncs anything appended
    /// before. Adds the bytes the log grew by to `written` as it goes, also when it then fails.
    /// The log is responsible for recovering a crash during the call: `segment_log` appends at
    /// most one frame before each sync, and truncates a torn last frame at open.
    fn write_group(&mut self, group: &[u8], sync: bool, written: &mut u64) -> Result<()>;

    /// Bytes in the log's files.
    fn disk_bytes(&self) -> u64;
}

/// Commits waiting to be written, and the writer's progress.
#[derive(Debug, Default)]
struct Queue {
    /// `[u32 LE length][commit record]` for every commit not yet handed to the log.
    batch: Vec<u8>,
    /// Timestamp of the last commit in `batch`.
    batch_last: Timestamp,
    /// Commits in `batch`.
    batch_commits: u64,
    /// Commits the last committer-led flush carried.
    last_group: u64,
    /// Commits that were already queued when the last flush ended: they waited through it.
    waited_through: u64,
    /// Timestamp of the last commit on stable storage (`Immediate`, `Periodic`) or written to
    /// the OS (`None`).
    done: Timestamp,
    /// A leader is writing; committers yield, then park (see `waiters`), others wait on
    /// `GroupCommit::cond`.
    flushing: bool,
    /// Records were written without a sync since the last sync (`None` mode).
    unsynced: bool,
    /// Why the WAL is poisoned, once it is.
    poison: Option<String>,
    /// Committers parked in `wait_durable`, with the timestamp each waits for. A flush wakes
    /// exactly those it made durable, plus the oldest other one to lead the next flush if
    /// commits are queued: one wake-up per commit, instead of every waiter at every flush.
    waiters: Vec<(Timestamp, Thread)>,
}

/// The WAL writer of an open database: the commit queue and the group-commit protocol over
/// log `L`.
#[derive(Debug)]
pub struct GroupCommit<L> {
    durability: Durability,
    queue: Mutex<Queue>,
    /// Signalled (with `queue` held) whenever a flush ends.
    cond: Condvar,
    /// The log itself. Taken only by a leader (with `queue.flushing` set) and by checkpoints.
    log: Mutex<L>,
    /// Set once, with `Queue::poison`, by whoever hits an I/O error (SeqCst); read by the commit
    /// path before it takes a timestamp (Acquire), so it rarely needs the queue lock to refuse.
    poisoned: AtomicBool,
    /// Bytes in the WAL segments on disk, pending appends excluded. Written by flushes and
    /// checkpoints, read by `stats` (Relaxed: a statistic).
    bytes: AtomicU64,
    /// Flushes finished so far. Incremented by `finish` with the queue locked (Release); read
    /// by committers yield-waiting in `wait_durable` without the lock (Acquire), who relock and
    /// look at the queue once it changes. The lock, not this counter, orders the queue's state.
    flushes: AtomicU64,
    /// `Queue::done`, readable without the lock. Written by `finish` with the queue locked, after
    /// the oracle publishes (Release); read by committers whose yield-wait saw a flush end
    /// (Acquire), who return at once if it covers their commit, without taking the lock that
    /// the next group's committers are queueing under. Acquire pairs with the Release so the
    /// commit is visible to its committer when it returns.
    durable: AtomicU64,
    /// A moving average of how long a leader's write and sync take, in nanoseconds: how long a
    /// committer yields before it parks. Written by leaders, read by waiters (Relaxed: a hint).
    flush_nanos: AtomicU64,
    /// `Queue::batch_commits`, readable without the lock by a leader gathering its group.
    /// Written with the queue locked, read by the leader (Relaxed: a hint; the leader takes
    /// the batch itself under the lock).
    queued: AtomicU64,
    /// Batches taken by leaders so far. Incremented by `take_batch` with the queue locked; read
    /// by gatherers without the lock (Relaxed: a hint), who stop gathering once another leader
    /// has taken the batch they were gathering for.
    taken: AtomicU64,
}

/// The longest a committer yields for a running flush before it parks.
const MAX_YIELD: Duration = Duration::from_millis(1);

impl<L: GroupLog> GroupCommit<L> {
    /// Wraps an opened (and replayed) log whose last record carries timestamp `last`.
    pub fn new(durability: Durability, log: L, bytes: u64, last: Timestamp) -> Self {
        Self {
            durability,
            queue: Mutex::new(Queue {
                done: last,
                batch_last: last,
                ..Queue::default()
            }),
            cond: Condvar::new(),
            log: Mutex::new(log),
            poisoned: AtomicBool::new(false),
            bytes: AtomicU64::new(bytes),
            flushes: AtomicU64::new(0),
            durable: AtomicU64::new(last.0),
            flush_nanos: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    /// The durability mode commits wait for.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Fails with `Error::Poisoned` once any write or sync has failed.
    pub fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let cause = self.queue.lock().poison.clone().unwrap_or_default();
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    /// Bytes in the log's files, groups not yet written excluded.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Queues commit `ts`'s encoded record. Must be called with the commit lock held, in
    /// timestamp order.
    pub fn enqueue(&self, ts: Timestamp, record: &[u8]) {
        let mut q = self.queue.lock();
        push_record(&mut q.batch, record);
        q.batch_last = ts;
        q.batch_commits += 1;
        self.queued.store(q.batch_commits, Ordering::Relaxed);
    }

    /// `Immediate` and `None` modes, after `enqueue` and after releasing the commit lock:
    /// returns once commit `ts` is on stable storage (`None`: written to the OS) and published,
    /// leading a flush if none is running.
    /// Fails if the flush carrying it failed, or the WAL was already poisoned.
    pub fn wait_durable(&self, ts: Timestamp, oracle: &Oracle) -> Result<()> {
        let mut q = self.queue.lock();
        // Whether it has waited for the rest of its group, before leading.
        let mut gathered = false;
        loop {
            if q.done >= ts {
                return Ok(());
            }
            if let Some(cause) = &q.poison {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            if q.flushing {
                let seen = self.flushes.load(Ordering::Relaxed);
                drop(q);
                let ended = self.yield_for_flush(seen);
                if ended && self.durable.load(Ordering::Acquire) >= ts.0 {
                    return Ok(());
                }
                q = self.queue.lock();
                if ended || self.flushes.load(Ordering::Relaxed) != seen {
                    continue;
                }
                // The same flush is still running (`flushing` is cleared only with the
                // counter's increment): park until it wakes us.
                q.waiters.push((ts, thread::current()));
                drop(q);
                // A wake-up between the unlock and here is kept as the thread's token, so
                // none is lost; a spurious one just loops.
                thread::park();
                q = self.queue.lock();
                continue;
            }
            let sync = self.durability != Durability::None;
            if sync && !gathered && q.last_group >= 2 {
                gathered = true;
                let want = q.last_group + q.waited_through;
                if q.batch_commits < want {
                    let taken = self.taken.load(Ordering::Relaxed);
                    drop(q);
                    self.gather(want, taken);
                    // Anything may have happened meanwhile (another leader, a poison): look again.
                    q = self.queue.lock();
                    continue;
                }
            }
            q.unsynced |= !sync;
            q.last_group = q.batch_commits;
            let (batch, last) = self.take_batch(&mut q);
            drop(q);
            let started = Stopwatch::start();
            let result = self.write(&batch, sync);
            self.note_flush_time(started.elapsed());
            q = self.finish(result.as_ref().err(), last, Some(oracle), batch);
            // This commit was in the batch just written: it gets the real error.
            result?;
        }
    }

    /// Yields the CPU until the flush that had finished `seen` flushes ends, for about twice
    /// a flush's usual time (at most [`MAX_YIELD`]); true if it ended.
    ///
    /// Parking costs a wake-up per committer at the end of every flush, and a wake-up is a
    /// cross-CPU interrupt (a VM exit under virtualization) that, with many committers, costs
    /// more CPU than the commit itself. A yielding committer sees the flush end on its next
    /// turn instead. Only slow flushes (a disk whose sync takes milliseconds) fall back to
    /// parking, where yielding would just burn a core. RocksDB's write thread waits the same
    /// way (`enable_write_thread_adaptive_yield`).
    fn yield_for_flush(&self, seen: u64) -> bool {
        let usual = Duration::from_nanos(self.flush_nanos.load(Ordering::Relaxed));
        let budget = (usual * 2).min(MAX_YIELD);
        let started = Stopwatch::start();
        loop {
            if self.flushes.load(Ordering::Acquire) != seen {
                return true;
            }
            if started.elapsed() >= budget {
                return false;
            }
            thread::yield_now();
        }
    }

    /// A leader-to-be's wait for the rest of its group: until `want` commits are queued, for
    /// at most a flush's usual time, or until another leader takes the batch (`taken` no longer
    /// reads `taken_then`, read with the queue locked).
    ///
    /// Without it, N busy committers settle into groups of N/2: a flush ends, the committers
    /// that waited through it lead the next one at once, and those it just released arrive a
    /// moment too late and wait a whole flush for the one after. `want` is the commits the last
    /// flush carried plus those that waited through it: a committer has one commit in flight
    /// at a time, so that many are queued once everyone the flush released is back. Only a
    /// leader whose last group held two or more commits waits: a lone committer never does.
    /// PostgreSQL's `commit_delay` is the same idea, as a fixed sleep.
    ///
    /// Why a whole flush: waiting longer than a flush takes would cost more than the flush it
    /// tries to save. On the 2-vCPU test VM, with the WAL zero-filled ahead, scratch builds that
    /// differed only in this bound gave 16 committers a median of 8.4x one committer with a
    /// quarter of a flush and 9.1x with a whole one (16 runs each of `cargo bench --bench
    /// durability -- --only 2` at various `--levels`), with groups of 15-16 commits instead of
    /// 11-12. With 64 committers, who cannot all come back within a flush, the quarter did
    /// better: 16.8-19.4x against 15.0-17.0x (6 runs each).
    ///
    /// No flush is marked as running meanwhile, so others may gather too, or lead, or
    /// checkpoint; the caller looks at the queue again afterwards. Every gatherer stops when
    /// one of them takes the batch, rather than yield out its time beside the flush.
    fn gather(&self, want: u64, taken_then: u64) {
        let budget = Duration::from_nanos(self.flush_nanos.load(Ordering::Relaxed));
        let started = Stopwatch::start();
        while self.queued.load(Ordering::Relaxed) < want
            && self.taken.load(Ordering::Relaxed) == taken_then
            && started.elapsed() < budget
        {
            thread::yield_now();
        }
    }

    /// Folds one leader's write-and-sync time into the moving average (weight 1/8).
    fn note_flush_time(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.flush_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.flush_nanos.store(new, Ordering::Relaxed);
    }

    /// Writes (and, if `sync`, syncs) whatever is queued, after any running flush. Used by the
    /// background flusher (`Periodic`, `None`), by checkpoints and by close.
    pub fn flush(&self, sync: bool, oracle: &Oracle) -> Result<()> {
        self.exclusive(sync, oracle, |_| Ok(()))
    }

    /// Runs `f` on the log after writing and syncing everything queued, with no flush running
    /// while it does (checkpoints rotate and trim segments through it). An error from `f`
    /// poisons the WAL like a failed write.
    pub fn with_log<R>(&self, oracle: &Oracle, f: impl FnOnce(&mut L) -> Result<R>) -> Result<R> {
        self.exclusive(true, oracle, |log| {
            let out = f(log)?;
            self.bytes.store(log.disk_bytes(), Ordering::Relaxed);
            Ok(out)
        })
    }

    fn exclusive<R>(
        &self,
        sync: bool,
        oracle: &Oracle,
        f: impl FnOnce(&mut L) -> Result<R>,
    ) -> Result<R> {
        let mut q = self.queue.lock();
        while q.flushing {
            q = self.cond.wait(q);
        }
        if let Some(cause) = &q.poison {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let sync = sync && (q.unsynced || !q.batch.is_empty());
        q.unsynced = !sync && (q.unsynced || !q.batch.is_empty());
        let (batch, last) = self.take_batch(&mut q);
        drop(q);
        let result = self
            .write(&batch, sync)
            .and_then(|()| f(&mut self.log.lock()));
        drop(self.finish(result.as_ref().err(), last, Some(oracle), batch));
        result
    }

    /// Ends a flush: records progress or the poison, publishes (`Immediate`), wakes waiters.
    fn finish(
        &self,
        error: Option<&Error>,
        last: Timestamp,
        oracle: Option<&Oracle>,
        mut spent: Vec<u8>,
    ) -> MutexGuard<'_, Queue> {
        let mut q = self.queue.lock();
        match error {
            None => {
                if let Some(oracle) = oracle {
                    // In timestamp order: one leader at a time publishes, and batches are taken
                    // in commit order.
                    oracle.publish_durable(last);
                }
                q.done = q.done.max(last);
                self.durable.store(q.done.0, Ordering::Release);
                if q.batch.is_empty() {
                    // Reuse the allocation for the next batch.
                    spent.clear();
                    q.batch = spent;
                }
            }
            Some(e) => {
                q.poison.get_or_insert_with(|| e.to_string());
                self.poisoned.store(true, Ordering::SeqCst);
            }
        }
        self.end_flush(&mut q);
        q
    }

    /// Marks the running flush as ended and wakes whoever waits for that.
    fn end_flush(&self, q: &mut Queue) {
        q.waited_through = q.batch_commits;
        q.flushing = false;
        self.flushes.fetch_add(1, Ordering::Release);
        wake_waiters(q);
        self.cond.notify_all();
    }

    /// Hands `batch` to the log as one group and, if `sync`, syncs it.
    fn write(&self, batch: &[u8], sync: bool) -> Result<()> {
        let mut log = self.log.lock();
        let mut written = 0;
        let result = log.write_group(batch, sync, &mut written);
        self.bytes.fetch_add(written, Ordering::Relaxed);
        result
    }

    /// Takes the queued batch and marks a flush as running.
    fn take_batch(&self, q: &mut Queue) -> (Vec<u8>, Timestamp) {
        q.flushing = true;
        self.taken.fetch_add(1, Ordering::Relaxed);
        q.batch_commits = 0;
        self.queued.store(0, Ordering::Relaxed);
        (std::mem::take(&mut q.batch), q.batch_last)
    }

    /// Poisons the WAL from outside a flush (a failed checkpoint or compaction step).
    pub fn poison(&self, cause: &Error) {
        let mut q = self.queue.lock();
        q.poison.get_or_insert_with(|| cause.to_string());
        self.poisoned.store(true, Ordering::SeqCst);
        wake_waiters(&mut q);
        self.cond.notify_all();
    }
}

/// Wakes the parked committers whose commits are now durable (all of them once poisoned), and,
/// if commits are queued, the oldest remaining one to lead the next flush.
fn wake_waiters(q: &mut Queue) {
    let (done, poisoned) = (q.done, q.poison.is_some());
    q.waiters.retain(|(ts, thread)| {
        let finished = poisoned || *ts <= done;
        if finished {
            thread.unpark();
        }
        !finished
    });
    if !q.batch.is_empty() {
        if let Some(oldest) = (0..q.waiters.len()).min_by_key(|&i| q.waiters[i].0) {
            q.waiters.swap_remove(oldest).1.unpark();
        }
    }
}
