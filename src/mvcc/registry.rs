//! The registry of open snapshots, which gives garbage collection its low watermark.
//!
//! Load-bearing invariant: **the watermark returned by `watermark` never exceeds the timestamp of
//! a snapshot that is registered when `watermark` returns, or that registers afterwards.** GC
//! keeps, in every chain, the newest version at or below the watermark, so every registered
//! snapshot still finds its versions. The same scan also yields the registered timestamps
//! (`watermark_and_open`); a snapshot it misses registers at or above the visible timestamp the
//! pass started from, so GC may also drop versions superseded by then that no listed snapshot
//! sees.
//!
//! Registration is lock-free in the common case: a snapshot claims one of a fixed set of slots
//! (chosen by a per-thread hint) by a compare-and-swap from `FREE` to its timestamp; only when
//! every slot is taken does it fall back to a mutex-protected overflow multiset. Committers never
//! touch the registry, so readers and writers never wait for each other here.
//!
//! The race between a snapshot registering timestamp `t` and a GC pass computing its watermark is
//! closed Dekker-style with SeqCst fences. GC first publishes its candidate (`horizon` = the
//! visible timestamp it starts from), fences, then reads the slots. A registrant stores its slot,
//! fences, then reads `horizon`. With both fences, at least one side sees the other: either GC
//! sees the slot (so the watermark is `<= t`), or the registrant sees the new horizon. In that
//! case, if `t < horizon`, it re-reads the visible timestamp, which is `>= horizon`, and tries
//! again. A pass that started earlier may have computed a watermark above `t`; once the
//! registrant holds a timestamp `>= horizon`, that watermark cannot exceed its timestamp.

use std::collections::BTreeMap;

use super::Timestamp;
use crate::sync::{fence, AtomicU64, Mutex, Ordering};

/// Marks a free slot; also the neutral element of `min`.
const FREE: u64 = u64::MAX;

#[cfg(not(loom))]
const SLOTS: usize = 128;
/// Under loom, few slots keep the models small.
#[cfg(loom)]
const SLOTS: usize = 2;

/// One slot on its own cache line, so readers on different cores do not contend.
#[repr(align(64))]
#[derive(Debug)]
struct Slot(AtomicU64);

/// Open snapshots and the GC horizon.
#[derive(Debug)]
pub struct SnapshotRegistry {
    /// `FREE` or the timestamp of the snapshot holding the slot. Written by `register` (CAS,
    /// SeqCst), `retarget` (SeqCst) and `unregister` (Release); read by `watermark` (SeqCst after
    /// the fence) and `open_count`.
    slots: Box<[Slot]>,
    /// Timestamps of snapshots that found every slot taken, with multiplicity.
    overflow: Mutex<BTreeMap<u64, usize>>,
    /// The visible timestamp the latest GC pass started from. Written by `watermark` (`fetch_max`,
    /// SeqCst, then a SeqCst fence); read by `register` after its own fence.
    horizon: AtomicU64,
}

/// Proof of a registration; give it back to `unregister` exactly once.
#[derive(Debug)]
#[must_use = "a registration that is never unregistered pins old versions forever"]
pub struct Registration {
    ts: Timestamp,
    place: Place,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Slot(usize),
    Overflow,
}

impl Registration {
    /// The registered snapshot timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.ts
    }
}

impl Default for SnapshotRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::with_slots(SLOTS)
    }

    /// An empty registry with `slots` lock-free slots; registrations beyond them go to the
    /// mutex-protected overflow list (`with_slots(0)` sends every one there, for tests).
    pub fn with_slots(slots: usize) -> Self {
        Self {
            slots: (0..slots).map(|_| Slot(AtomicU64::new(FREE))).collect(),
            overflow: Mutex::new(BTreeMap::new()),
            horizon: AtomicU64::new(0),
        }
    }

    /// Registers a snapshot at the current visible timestamp, as given by `visible` (which must
    /// be monotonic). Never blocks on a committer or on GC.
    pub fn register(&self, visible: impl Fn() -> Timestamp) -> Registration {
        let ts = visible();
        let mut reg = self.claim(ts);
        loop {
            fence(Ordering::SeqCst);
            let horizon = self.horizon.load(Ordering::SeqCst);
            if reg.ts.0 >= horizon {
                return reg;
            }
            // A GC pass may have missed us and computed a watermark above `reg.ts`; move to a
            // timestamp that no such pass can exceed.
            self.retarget(&mut reg, visible());
        }
    }

    fn claim(&self, ts: Timestamp) -> Registration {
        debug_assert!(ts.0 != FREE);
        let start = crate::sync::thread_hint();
        let n = self.slots.len();
        for i in 0..n {
            let idx = (start + i) % n;
            if self.slots[idx]
                .0
                .compare_exchange(FREE, ts.0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Registration {
                    ts,
                    place: Place::Slot(idx),
                };
            }
        }
        *self.overflow.lock().entry(ts.0).or_insert(0) += 1;
        Registration {
            ts,
            place: Place::Overflow,
        }
    }

    fn retarget(&self, reg: &mut Registration, ts: Timestamp) {
        match reg.place {
            Place::Slot(idx) => self.slots[idx].0.store(ts.0, Ordering::SeqCst),
            Place::Overflow => {
                let mut overflow = self.overflow.lock();
                remove_one(&mut overflow, reg.ts.0);
                *overflow.entry(ts.0).or_insert(0) += 1;
            }
        }
        reg.ts = ts;
    }

    /// Ends a registration.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "consuming the token prevents a double release"
    )]
    pub fn unregister(&self, reg: Registration) {
        match reg.place {
            // Release: GC passes that see the slot free also see every read the snapshot made.
            Place::Slot(idx) => self.slots[idx].0.store(FREE, Ordering::Release),
            Place::Overflow => remove_one(&mut self.overflow.lock(), reg.ts.0),
        }
    }

    /// The low watermark for a GC pass starting at visible timestamp `visible`: the oldest
    /// registered snapshot, or `visible` if none is older. GC only.
    pub fn watermark(&self, visible: Timestamp) -> Timestamp {
        self.scan(visible, None)
    }

    /// [`SnapshotRegistry::watermark`], also filling `open` with the timestamps of the
    /// registered snapshots, sorted and without repeats. The same guarantee extends to them:
    /// every snapshot registered when this returns is among them, or registers at a timestamp
    /// at or above `visible`. So a version superseded at or before `visible`, whose visibility
    /// interval holds none of them, is needed by no snapshot now or later.
    pub fn watermark_and_open(&self, visible: Timestamp, open: &mut Vec<u64>) -> Timestamp {
        open.clear();
        let low = self.scan(visible, Some(&mut *open));
        open.sort_unstable();
        open.dedup();
        low
    }

    fn scan(&self, visible: Timestamp, mut open: Option<&mut Vec<u64>>) -> Timestamp {
        self.horizon.fetch_max(visible.0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut low = visible.0;
        for slot in &*self.slots {
            let ts = slot.0.load(Ordering::SeqCst);
            low = low.min(ts);
            if let Some(open) = open.as_deref_mut().filter(|_| ts != FREE) {
                open.push(ts);
            }
        }
        let overflow = self.overflow.lock();
        if let Some((&oldest, _)) = overflow.iter().next() {
            low = low.min(oldest);
        }
        if let Some(open) = open {
            open.extend(overflow.keys());
        }
        Timestamp(low)
    }

    /// Number of registered snapshots.
    pub fn open_count(&self) -> usize {
        let in_slots = self
            .slots
            .iter()
            .filter(|s| s.0.load(Ordering::Relaxed) != FREE)
            .count();
        in_slots + self.overflow.lock().values().sum::<usize>()
    }
}

fn remove_one(map: &mut BTreeMap<u64, usize>, ts: u64) {
    if let Some(n) = map.get_mut(&ts) {
        *n -= 1;
        if *n == 0 {
            map.remove(&ts);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn watermark_tracks_oldest_and_overflow() {
        let r = SnapshotRegistry::new();
        assert_eq!(r.watermark(Timestamp(5)), Timestamp(5));
        let regs: Vec<_> = (0..SLOTS + 10)
            .map(|i| r.register(|| Timestamp(10 + i as u64)))
            .collect();
        assert_eq!(r.open_count(), SLOTS + 10);
        assert_eq!(r.watermark(Timestamp(1000)), Timestamp(10));
        for reg in regs {
            r.unregister(reg);
        }
        assert_eq!(r.open_count(), 0);
        assert_eq!(r.watermark(Timestamp(1000)), Timestamp(1000));
    }

    #[test]
    fn registration_below_horizon_moves_up() {
        let r = SnapshotRegistry::new();
        let _ = r.watermark(Timestamp(50));
        // A registrant that read an old visible timestamp must not stay below the horizon.
        let calls = std::cell::Cell::new(0u64);
        let reg = r.register(|| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                Timestamp(10)
            } else {
                Timestamp(60)
            }
        });
        assert_eq!(reg.timestamp(), Timestamp(60));
        r.unregister(reg);
    }
}
