//! The one place that decides between std and loom synchronization.
//!
//! Everything else in the crate imports `Arc`, `Mutex`, atomics, the published-state cell
//! [`AtomicArc`] and the guard-free [`ConcurrentMap`] from here. Under `--cfg loom` they become
//! loom's types, so the model checker sees every synchronizing operation of the engine:
//! `DashMap` (whose shard locks loom cannot see, and which deadlocks under loom) becomes a loom
//! `RwLock<HashMap>`, and `ArcSwap` (invisible to loom) becomes a loom `RwLock<Arc<T>>`.
//!
//! The APIs hand out no guards: callers pass closures, so no caller can hold a shard lock across
//! another synchronizing operation by accident. Nothing here is `static`: all state hangs off
//! the `Database` handle.
#![allow(clippy::disallowed_types)]

use std::borrow::Borrow;
use std::hash::Hash;

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
    pub(crate) use std::sync::{Arc, Condvar as RawCondvar, Mutex as RawMutex, MutexGuard};
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar as RawCondvar, Mutex as RawMutex, MutexGuard};
}

pub(crate) use imp::{fence, Arc, AtomicBool, AtomicU64, MutexGuard, Ordering};

/// std's channels, for the thread that loads documents at open (`persist::loader`), which the
/// loom models never run.
#[cfg(not(loom))]
pub(crate) use std::sync::mpsc;

/// std's `Arc` even under loom, for immutable payloads (document bodies) that loom need not
/// track. Their frees are deferred through crossbeam-epoch, whose global collector outlives a
/// single loom execution in tier 1; a loom-tracked `Arc` freed there would be reported as leaked
/// by one execution and dropped outside the model by the next.
pub(crate) use std::sync::Arc as PayloadArc;

/// std's `AtomicU64` even under loom, for the one field of a version node that is published by
/// the chain's own (loom-modelled, in tier 2) Release/Acquire pair; see `mvcc::version`.
pub(crate) use std::sync::atomic::AtomicU64 as PayloadAtomicU64;

/// A mutex whose `lock` never reports poisoning.
///
/// No engine code runs user callbacks while holding one of these, and every critical section
/// either completes or changes nothing (see the commit path), so a panic elsewhere cannot leave
/// the protected state half-updated.
#[derive(Debug, Default)]
pub struct Mutex<T>(imp::RawMutex<T>);

impl<T> Mutex<T> {
    /// Creates a mutex holding `value`.
    pub fn new(value: T) -> Self {
        Self(imp::RawMutex::new(value))
    }

    /// Locks, recovering the guard if another thread panicked while holding it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// std's mutex even under loom, unpoisoned like [`Mutex`], for the GC's limbo of retired
/// versions: functions deferred through crossbeam-epoch fill it, possibly outside the loom
/// execution that created it (see `PayloadArc`).
#[derive(Debug, Default)]
pub struct PayloadMutex<T>(std::sync::Mutex<T>);

impl<T> PayloadMutex<T> {
    /// Locks, recovering the guard if another thread panicked while holding it.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks if no other thread holds the lock, recovering the guard like `lock`.
    pub fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// A condition variable for [`Mutex`].
#[derive(Debug, Default)]
pub struct Condvar(imp::RawCondvar);

impl Condvar {
    /// Creates a condition variable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases `guard`, waits for a notification (or a spurious wake-up), and relocks.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// Thread parking and yielding: std's, or loom's under loom, so a model sees a committer park,
/// yield and wake.
pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, yield_now, Thread};

    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, yield_now, Thread};
}

/// Measures elapsed time for waits bounded by a time budget (group commit's yields and
/// gathers).
///
/// Under loom, where an execution must not depend on the wall clock, every `elapsed` call
/// reads `Stopwatch::LOOM_TICK` later than the one before: a loop bounded by a budget of `n`
/// ticks then runs the same number of times in every execution, and a model can reach both the
/// "ended in time" and the "budget ran out" paths.
#[derive(Debug)]
pub struct Stopwatch {
    #[cfg(not(loom))]
    started: std::time::Instant,
    #[cfg(loom)]
    calls: std::cell::Cell<u32>,
}

impl Stopwatch {
    /// How far the clock moves per `elapsed` call under loom.
    #[cfg(loom)]
    pub const LOOM_TICK: std::time::Duration = std::time::Duration::from_micros(100);

    /// Starts measuring now.
    pub fn start() -> Self {
        Self {
            #[cfg(not(loom))]
            started: std::time::Instant::now(),
            #[cfg(loom)]
            calls: std::cell::Cell::new(0),
        }
    }

    /// Time since `start`.
    pub fn elapsed(&self) -> std::time::Duration {
        #[cfg(not(loom))]
        return self.started.elapsed();
        #[cfg(loom)]
        {
            let calls = self.calls.get() + 1;
            self.calls.set(calls);
            Self::LOOM_TICK * calls
        }
    }
}

/// A cell publishing an immutable `Arc<T>` that readers load without locking.
#[derive(Debug)]
pub struct AtomicArc<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwap<T>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<Arc<T>>,
}

impl<T> AtomicArc<T> {
    /// Creates the cell with an initial value.
    pub fn new(value: Arc<T>) -> Self {
        #[cfg(not(loom))]
        return Self {
            inner: arc_swap::ArcSwap::new(value),
        };
        #[cfg(loom)]
        return Self {
            inner: loom::sync::RwLock::new(value),
        };
    }

    /// Returns the current value, keeping it alive for as long as the caller holds it.
    pub fn load_full(&self) -> Arc<T> {
        #[cfg(not(loom))]
        return self.inner.load_full();
        #[cfg(loom)]
        return Arc::clone(
            &self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Runs `f` on the current value without touching its reference count (the hot read path).
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(loom))]
        return f(&self.inner.load());
        #[cfg(loom)]
        return f(&self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Publishes a new value. Release: a reader that loads it sees everything written before.
    pub fn store(&self, value: Arc<T>) {
        #[cfg(not(loom))]
        self.inner.store(value);
        #[cfg(loom)]
        {
            *self
                .inner
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
        }
    }
}

/// A concurrent hash map without guards: `DashMap` normally, a loom `RwLock<HashMap>` under loom.
#[derive(Debug)]
pub struct ConcurrentMap<K: Eq + Hash, V> {
    #[cfg(not(loom))]
    inner: dashmap::DashMap<K, V>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<std::collections::HashMap<K, V, LoomHasher>>,
}

/// A fixed-seed hasher: loom replays executions and requires every one to be deterministic,
/// which a randomly seeded map's iteration order is not.
#[cfg(loom)]
type LoomHasher = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Shards of the document map. More shards than DashMap's default keep the time a scan or a GC
/// pass holds one shard's read lock (and so delays a committer inserting a new chain into that
/// shard) short even for millions of documents.
#[cfg(not(loom))]
const SHARDS: usize = 128;

impl<K: Eq + Hash, V> Default for ConcurrentMap<K, V> {
    fn default() -> Self {
        #[cfg(not(loom))]
        return Self {
            inner: dashmap::DashMap::with_shard_amount(SHARDS),
        };
        #[cfg(loom)]
        return Self {
            inner: loom::sync::RwLock::new(std::collections::HashMap::default()),
        };
    }
}

impl<K: Eq + Hash, V> ConcurrentMap<K, V> {
    /// Runs `f` on the value under `key`, if any.
    pub fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        #[cfg(not(loom))]
        return self.inner.get(key).map(|entry| f(entry.value()));
        #[cfg(loom)]
        return self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .map(f);
    }

    /// Runs `f` on the value under `key`, inserting `make()` first if there is none.
    pub fn read_or_insert<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> R {
        #[cfg(not(loom))]
        {
            if let Some(entry) = self.inner.get(&key) {
                return f(entry.value());
            }
            let entry = self.inner.entry(key).or_insert_with(make);
            f(entry.value())
        }
        #[cfg(loom)]
        {
            let mut map = self
                .inner
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(map.entry(key).or_insert_with(make))
        }
    }

    /// Removes the entry under `key` if `pred` holds for it, returning the removed value so the
    /// caller drops it outside the map's lock.
    pub fn remove_if(&self, key: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        #[cfg(not(loom))]
        return self.inner.remove_if(key, |_, v| pred(v)).map(|(_, v)| v);
        #[cfg(loom)]
        {
            let mut map = self
                .inner
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.get(key).is_some_and(pred) {
                map.remove(key)
            } else {
                None
            }
        }
    }

    /// Number of entries. Each shard is read-locked in turn, so under concurrent inserts and
    /// removals the count is only approximate.
    pub fn len(&self) -> usize {
        #[cfg(not(loom))]
        return self.inner.len();
        #[cfg(loom)]
        return self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
    }

    /// Visits every entry. Each shard is read-locked only while its own entries are visited.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        #[cfg(not(loom))]
        for entry in &self.inner {
            f(entry.key(), entry.value());
        }
        #[cfg(loom)]
        for (k, v) in self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            f(k, v);
        }
    }
}

/// A cheap per-thread number used to spread threads over registry slots; 0 under loom, where
/// std thread-locals are shared by every model thread.
pub fn thread_hint() -> usize {
    #[cfg(not(loom))]
    {
        thread_local!(static HINT: u8 = const { 0 });
        let addr = HINT.with(|h| std::ptr::from_ref(h) as usize) as u64;
        // Fibonacci hashing spreads the (aligned, clustered) TLS addresses over the slots.
        usize::try_from((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40).unwrap_or(0)
    }
    #[cfg(loom)]
    0
}

/// Microseconds since the Unix epoch; a constant 0 under loom, whose executions must be
/// deterministic (ids then come from the generator's counter alone).
pub fn clock_micros() -> u64 {
    #[cfg(not(loom))]
    return std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    #[cfg(loom)]
    0
}

/// Backs off before retry number `attempt` of a conflicting transaction.
pub fn backoff(attempt: u32) {
    #[cfg(not(loom))]
    {
        if attempt < 3 {
            std::thread::yield_now();
        } else {
            let micros = 1u64 << attempt.min(10);
            // Jitter from the clock keeps retrying threads from staying in lock-step.
            let jitter = u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
            ) % micros.max(1);
            std::thread::sleep(std::time::Duration::from_micros(micros + jitter));
        }
    }
    #[cfg(loom)]
    {
        let _ = attempt;
        loom::thread::yield_now();
    }
}
