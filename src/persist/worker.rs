//! The background thread of a database opened on a directory: syncs the WAL every interval
//! (`Durability::Periodic`), and takes checkpoints and compacts when their triggers fire.
//!
//! It holds only a weak reference to the engine, so dropping the last handle ends it. A failure
//! here has already poisoned the writer (every file write does), and the next commit reports
//! it; the thread then stops doing file work.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::engine::Engine;
use crate::options::Durability;
use crate::sync::{Arc, Mutex};

/// How often the triggers are checked when no periodic sync sets a shorter interval.
const TICK: Duration = Duration::from_millis(50);

/// The background thread of one durable database.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts the thread for `engine`, which must have persistence.
    pub(crate) fn start(engine: &Arc<Engine>) {
        let Some(persist) = engine.persist.as_ref() else {
            return;
        };
        let tick = match persist.options.durability {
            Durability::Periodic(d) => d.min(TICK),
            _ => TICK,
        };
        let weak = Arc::downgrade(engine);
        let spawned = thread::Builder::new()
            .name("snapbase-persist".into())
            .spawn(move || loop {
                thread::park_timeout(tick);
                let Some(engine) = weak.upgrade() else { return };
                if engine.is_closed() {
                    return;
                }
                if !run_once(&engine) {
                    return;
                }
            });
        // Without the thread the database still works: commits are durable in `Immediate`
        // mode, and `checkpoint`/`compact` can be called by hand. Periodic mode would not sync,
        // so report it through the poison rather than silently lose durability.
        match spawned {
            Ok(handle) => *persist.worker.handle.lock() = Some(handle),
            Err(e) => {
                persist.poison(crate::error::Error::io(
                    "starting the background thread",
                    &e,
                ));
            }
        }
    }

    /// Wakes the thread and waits for it to end, unless called from it.
    pub(crate) fn stop(&self) {
        let handle = self.handle.lock().take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// Wakes the thread without waiting (the engine is being dropped).
    pub(crate) fn wake(&self) {
        if let Some(handle) = self.handle.lock().as_ref() {
            handle.thread().unpark();
        }
    }
}

/// One round of background work. Returns false once the writer is poisoned.
fn run_once(engine: &Engine) -> bool {
    let Some(persist) = engine.persist.as_ref() else {
        return false;
    };
    if persist.check_writable().is_err() {
        return false;
    }
    if let Durability::Periodic(_) = persist.options.durability {
        if persist.wal.flush(true, &engine.oracle).is_err() {
            return false;
        }
    }
    if persist.checkpoint_due() && persist.checkpoint(&engine.oracle).is_err() {
        return false;
    }
    if persist.compaction_due() && persist.compact().is_err() {
        return false;
    }
    true
}
