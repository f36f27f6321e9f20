//! The oracle: commit timestamps are distinct and increasing, and a reader that acquires a
//! published timestamp sees everything the committer wrote before publishing.

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use snapbase::__loom::Oracle;

#[test]
fn reader_never_sees_a_timestamp_ahead_of_its_data() {
    loom::model(|| {
        let oracle = Arc::new(Oracle::new());
        // Stands in for the versions a commit links before publishing: data[ts] is written
        // (Relaxed) before ts is published.
        let data = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let writer = {
            let (oracle, data) = (oracle.clone(), data.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    let slot = oracle.begin_commit();
                    let ts = slot.ts().get();
                    data[usize::try_from(ts).unwrap()].store(ts * 10, Ordering::Relaxed);
                    slot.publish();
                }
            })
        };
        let seen = oracle.visible().get();
        for ts in 1..=seen {
            assert_eq!(
                data[usize::try_from(ts).unwrap()].load(Ordering::Relaxed),
                ts * 10
            );
        }
        writer.join().unwrap();
        assert_eq!(oracle.visible().get(), 2);
    });
}

#[test]
fn concurrent_committers_get_distinct_increasing_timestamps() {
    loom::model(|| {
        let oracle = Arc::new(Oracle::new());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let oracle = oracle.clone();
                thread::spawn(move || {
                    let slot = oracle.begin_commit();
                    let ts = slot.ts();
                    slot.publish();
                    ts.get()
                })
            })
            .collect();
        let mut got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(oracle.visible().get(), 2);
    });
}
