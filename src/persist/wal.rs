//! The WAL writer: group commit over `storage::segment_log`.
//!
//! Commits enter in timestamp order: the commit path calls [`Wal::enqueue`] while it holds the
//! commit lock, so the queue, and therefore the log, is in commit order. Whoever then finds no
//! flush in progress becomes the *leader*: it takes everything queued, appends it as **one**
//! frame, syncs once, and (in `Immediate` mode) publishes the last timestamp of the batch, which
//! makes every commit of the batch visible at once. Committers that arrive while a leader is
//! syncing wait, and the next leader takes them all in one frame. With 16 concurrent
//! committers a sync therefore carries about 16 commits.
//!
//! One frame per sync is what makes every crash recoverable: `segment_log` may lose or tear
//! only the frame appended since the last successful sync, which it truncates as a torn tail.
//! A frame holds whole commit records (`[u32 LE length][record]` repeated), so a commit is
//! recovered whole or not at all.
//!
//! Any I/O error poisons the WAL: the batch's commits fail, nothing after them is published,
//! and every later commit fails with `Error::Poisoned`. The sync is never retried.

use std::thread::{self, Thread};

use crate::error::{Error, Result};
use crate::mvcc::Timestamp;
use crate::options::Durability;
use crate::storage::frame::MAX_FRAME_LEN;
use crate::storage::segment_log::{frame_len, LogError, SegmentLog};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use crate::txn::oracle::Oracle;

/// Commits waiting to be written, and the writer's progress.
#[derive(Debug, Default)]
struct Queue {
    /// `[u32 LE length][commit record]` for every commit not yet handed to the log.
    batch: Vec<u8>,
    /// Timestamp of the last commit in `batch`.
    batch_last: Timestamp,
    /// Timestamp of the last commit on stable storage (`Immediate`, `Periodic`) or written to
    /// the OS (`None`).
    done: Timestamp,
    /// A leader is writing; committers park (see `waiters`), others wait on `Wal::cond`.
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

/// The WAL of an open database.
#[derive(Debug)]
pub(crate) struct Wal {
    durability: Durability,
    queue: Mutex<Queue>,
    /// Signalled (with `queue` held) whenever a flush ends.
    cond: Condvar,
    /// The log itself. Taken only by a leader (with `queue.flushing` set) and by checkpoints.
    log: Mutex<SegmentLog>,
    /// Set once, with `Queue::poison`, by whoever hits an I/O error (SeqCst); read by the commit
    /// path before it takes a timestamp (Acquire), so it rarely needs the queue lock to refuse.
    poisoned: AtomicBool,
    /// Bytes in the WAL segments on disk, pending appends excluded. Written by flushes and
    /// checkpoints, read by `stats` (Relaxed: a statistic).
    bytes: AtomicU64,
}

impl Wal {
    /// Wraps an opened (and replayed) log whose last record carries timestamp `last`.
    pub(crate) fn new(
        durability: Durability,
        log: SegmentLog,
        bytes: u64,
        last: Timestamp,
    ) -> Self {
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
        }
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// Fails with `Error::Poisoned` once any write or sync has failed.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let cause = self.queue.lock().poison.clone().unwrap_or_default();
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Queues commit `ts`'s encoded record. Must be called with the commit lock held, in
    /// timestamp order.
    pub(crate) fn enqueue(&self, ts: Timestamp, record: &[u8]) {
        let mut q = self.queue.lock();
        let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
        q.batch.extend_from_slice(&len.to_le_bytes());
        q.batch.extend_from_slice(record);
        q.batch_last = ts;
    }

    /// `Immediate` and `None` modes, after `enqueue` and after releasing the commit lock:
    /// returns once commit `ts` is on stable storage (`None`: written to the OS) and published,
    /// leading a flush if none is running.
    /// Fails if the flush carrying it failed, or the WAL was already poisoned.
    pub(crate) fn wait_durable(&self, ts: Timestamp, oracle: &Oracle) -> Result<()> {
        let mut q = self.queue.lock();
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
                q.waiters.push((ts, thread::current()));
                drop(q);
                // A wake-up between the unlock and here is kept as the thread's token, so
                // none is lost; a spurious one just loops.
                thread::park();
                q = self.queue.lock();
                continue;
            }
            let sync = self.durability != Durability::None;
            q.unsynced |= !sync;
            let (batch, last) = take_batch(&mut q);
            drop(q);
            let result = self.write(&batch, sync);
            q = self.finish(result.as_ref().err(), last, Some(oracle), batch);
            // This commit was in the batch just written: it gets the real error.
            result?;
        }
    }

    /// Writes (and, if `sync`, syncs) whatever is queued, after any running flush. Used by the
    /// background flusher (`Periodic`, `None`), by checkpoints and by close.
    pub(crate) fn flush(&self, sync: bool, oracle: &Oracle) -> Result<()> {
        self.exclusive(sync, oracle, |_| Ok(()))
    }

    /// Runs `f` on the log after writing and syncing everything queued, with no flush running
    /// while it does (checkpoints rotate and trim segments through it). An error from `f`
    /// poisons the WAL like a failed write.
    pub(crate) fn with_log<R>(
        &self,
        oracle: &Oracle,
        f: impl FnOnce(&mut SegmentLog) -> Result<R>,
    ) -> Result<R> {
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
        f: impl FnOnce(&mut SegmentLog) -> Result<R>,
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
        let (batch, last) = take_batch(&mut q);
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
        q.flushing = false;
        match error {
            None => {
                if let Some(oracle) = oracle {
                    // In timestamp order: one leader at a time publishes, and batches are taken
                    // in commit order.
                    oracle.publish_durable(last);
                }
                q.done = q.done.max(last);
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
        wake_waiters(&mut q);
        self.cond.notify_all();
        q
    }

    /// Appends `batch` as one frame and syncs it. A batch larger than a frame is split at
    /// record boundaries into frames that are each synced before the next is appended, so at
    /// most one frame is ever un-synced (see `storage::segment_log`).
    fn write(&self, batch: &[u8], sync: bool) -> Result<()> {
        let mut log = self.log.lock();
        for chunk in frame_chunks(batch) {
            log.append(chunk).map_err(log_error)?;
            self.bytes
                .fetch_add(frame_len(chunk.len()), Ordering::Relaxed);
            if sync {
                log.sync().map_err(log_error)?;
            }
        }
        if sync && batch.is_empty() {
            log.sync().map_err(log_error)?;
        }
        Ok(())
    }

    /// Poisons the WAL from outside a flush (a failed checkpoint or compaction step).
    pub(crate) fn poison(&self, cause: &Error) {
        let mut q = self.queue.lock();
        q.poison.get_or_insert_with(|| cause.to_string());
        self.poisoned.store(true, Ordering::SeqCst);
        wake_waiters(&mut q);
        self.cond.notify_all();
    }
}

/// Converts a log error into the crate's error.
pub(crate) fn log_error(e: LogError) -> Error {
    match e {
        LogError::Corrupt {
            path,
            offset,
            reason,
        } => Error::Corrupt {
            path,
            offset: Some(offset),
            reason: reason.to_owned(),
        },
        LogError::PayloadTooLarge { len, max } => Error::DocumentTooLarge {
            size: len,
            max: max as usize,
        },
        LogError::Io { op, path, source } => Error::io(format!("{op} {}", path.display()), &source),
        LogError::Poisoned => Error::Poisoned {
            cause: "an earlier write to the log failed".to_owned(),
        },
    }
}

/// Splits a WAL frame's payload into its commit records.
pub(crate) fn split_batch(payload: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut records = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err("a commit record's length is cut short");
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err("a commit record is longer than its frame");
        }
        let (record, tail) = tail.split_at(len);
        records.push(record);
        rest = tail;
    }
    Ok(records)
}

/// Takes the queued batch and marks a flush as running.
fn take_batch(q: &mut Queue) -> (Vec<u8>, Timestamp) {
    q.flushing = true;
    (std::mem::take(&mut q.batch), q.batch_last)
}

/// The largest encoded commit record a WAL frame can carry (with its length prefix).
pub(crate) const MAX_RECORD_LEN: usize = MAX_FRAME_LEN as usize - 4;

/// Splits a batch into runs of whole records, each at most a frame's payload.
fn frame_chunks(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let max = MAX_FRAME_LEN as usize;
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        while end < rest.len() {
            let Some(len) = rest.get(end..end + 4) else {
                break;
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let next = end + 4 + len;
            // `enqueue` keeps every record under the maximum, so a chunk always takes one.
            if next > max && end > 0 {
                break;
            }
            end = next.min(rest.len());
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
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
