//! The background threads of a database opened on a directory: one syncs the WAL every
//! interval (`Durability::Periodic`), the other takes checkpoints and compacts when their
//! triggers fire.
//!
//! It holds only a weak reference to the engine, so dropping the last handle ends it. A failure
//! here has already poisoned the writer (every file write does), and the next commit reports
//! it; the thread then stops doing file work.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::engine::Engine;
use crate::options::Durability;
use crate::sync::{Arc, Mutex};

/// How often the triggers are checked.
const TICK: Duration = Duration::from_millis(50);

/// The longest wait before retrying failed maintenance.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Exponential backoff after failed maintenance: 100 ms, doubling up to `MAX_BACKOFF`.
#[derive(Debug, Default)]
struct Backoff {
    delay: Duration,
    until: Option<std::time::Instant>,
}

impl Backoff {
    fn waiting(&self) -> bool {
        self.until
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    fn record(&mut self, ok: bool) {
        if ok {
            *self = Backoff::default();
        } else {
            self.delay = (self.delay * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
            self.until = Some(std::time::Instant::now() + self.delay);
        }
    }
}

/// The background threads of one durable database: the periodic syncer (`Periodic` mode only,
/// so a long compaction never delays a sync) and the maintenance thread (checkpoints and
/// compaction).
#[derive(Debug, Default)]
pub(crate) struct Worker {
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Worker {
    /// Starts the threads for `engine`, which must have persistence.
    pub(crate) fn start(engine: &Arc<Engine>) {
        let Some(persist) = engine.persist.as_ref() else {
            return;
        };
        if let Durability::Periodic(interval) = persist.options.durability {
            spawn(engine, "snapbase-sync", interval, |engine, persist| {
                persist.wal.flush(true, &engine.oracle).is_ok()
            });
        }
        let mut backoff = Backoff::default();
        spawn(
            engine,
            "snapbase-maintenance",
            TICK,
            move |engine, persist| {
                if backoff.waiting() {
                    return true;
                }
                let checkpoint = if persist.checkpoint_due() {
                    persist.checkpoint(&engine.oracle).map(|_| ())
                } else {
                    Ok(())
                };
                let outcome = checkpoint.and_then(|()| {
                    if persist.compaction_due() {
                        persist.compact().map(|_| ())
                    } else {
                        Ok(())
                    }
                });
                // A failure that poisoned the writer ends the thread (the loop checks); any other
                // (a damaged run found by compaction, a transient read error) is retried later,
                // backing off, so that maintenance is never silently abandoned.
                backoff.record(outcome.is_ok());
                true
            },
        );
    }

    /// Wakes the threads and waits for them to end, except the calling thread itself.
    pub(crate) fn stop(&self) {
        let handles = std::mem::take(&mut *self.handles.lock());
        for handle in &handles {
            handle.thread().unpark();
        }
        for handle in handles {
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// Wakes the threads without waiting (the engine is being dropped).
    pub(crate) fn wake(&self) {
        for handle in self.handles.lock().iter() {
            handle.thread().unpark();
        }
    }
}

/// Spawns a thread running `round` every `tick` until the database closes or is dropped, or
/// `round` returns false (the writer is poisoned: the next commit reports it).
fn spawn(
    engine: &Arc<Engine>,
    name: &str,
    tick: Duration,
    mut round: impl FnMut(&Engine, &crate::persist::Persist) -> bool + Send + 'static,
) {
    let Some(persist) = engine.persist.as_ref() else {
        return;
    };
    let weak = Arc::downgrade(engine);
    let spawned = thread::Builder::new().name(name.into()).spawn(move || {
        // Rounds start every `tick`, not `tick` after the previous one ended, so the periodic
        // sync's interval does not stretch by the length of the sync itself.
        let mut pause = tick;
        loop {
            thread::park_timeout(pause);
            let Some(engine) = weak.upgrade() else { return };
            let Some(persist) = engine.persist.as_ref() else {
                return;
            };
            let started = std::time::Instant::now();
            if engine.is_closed() || persist.check_writable().is_err() || !round(&engine, persist) {
                return;
            }
            pause = tick.saturating_sub(started.elapsed());
        }
    });
    // Without these threads the database would silently lose `Periodic` durability and its
    // automatic checkpoints; report it through the poison rule instead.
    match spawned {
        Ok(handle) => persist.worker.handles.lock().push(handle),
        Err(e) => {
            persist.poison(crate::error::Error::io(
                format!("starting the background thread {name}"),
                &e,
            ));
        }
    }
}
