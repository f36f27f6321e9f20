//! The snapshot registry: the GC watermark never passes a snapshot that registered, even when
//! registration races a GC pass.

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use snapbase::__loom::{Oracle, SnapshotRegistry};

/// One commit is published at start (timestamp 1 holds "version 1"). A GC thread publishes
/// commit 2, computes the watermark and, if it reached 2, "prunes" version 1. A reader registers
/// concurrently; if it registered at timestamp 1 it must still find version 1.
fn registration_vs_watermark(slots: usize) {
    loom::model(move || {
        let oracle = Arc::new(Oracle::new());
        oracle.begin_commit().publish();
        let registry = Arc::new(SnapshotRegistry::with_slots(slots));
        let v1_present = Arc::new(AtomicBool::new(true));
        let gc = {
            let (oracle, registry, v1) = (oracle.clone(), registry.clone(), v1_present.clone());
            thread::spawn(move || {
                oracle.begin_commit().publish();
                let w = registry.watermark(oracle.visible());
                if w.get() >= 2 {
                    v1.store(false, Ordering::Relaxed);
                }
                w
            })
        };
        let reg = registry.register(|| oracle.visible());
        if reg.timestamp().get() == 1 {
            assert!(
                v1_present.load(Ordering::Relaxed),
                "GC pruned a version a snapshot needs"
            );
        }
        let w = gc.join().unwrap();
        assert!(w <= reg.timestamp() || w.get() <= 1);
        registry.unregister(reg);
        assert_eq!(registry.open_count(), 0);
        assert_eq!(registry.watermark(oracle.visible()).get(), 2);
    });
}

#[test]
fn registration_racing_gc_watermark() {
    registration_vs_watermark(2);
}

#[test]
fn overflow_registration_racing_gc_watermark() {
    registration_vs_watermark(0);
}

#[test]
fn unregister_lets_the_watermark_advance() {
    loom::model(|| {
        let oracle = Arc::new(Oracle::new());
        let registry = Arc::new(SnapshotRegistry::new());
        oracle.begin_commit().publish();
        let reg = registry.register(|| oracle.visible());
        let t = {
            let registry = registry.clone();
            thread::spawn(move || registry.unregister(reg))
        };
        oracle.begin_commit().publish();
        let w = registry.watermark(oracle.visible()).get();
        assert!(w == 1 || w == 2);
        t.join().unwrap();
        assert_eq!(registry.watermark(oracle.visible()).get(), 2);
    });
}
