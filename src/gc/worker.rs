//! The background GC thread of one database: a pass every interval, when one is wanted.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::Freeing;
use crate::engine::Engine;
use crate::sync::{Arc, Mutex};

/// The background GC thread of one database.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts the thread. It holds only a weak reference, so dropping the last database
    /// handle ends it.
    pub(crate) fn start(engine: &Arc<Engine>, interval: Duration) {
        let weak = Arc::downgrade(engine);
        let spawned = thread::Builder::new()
            .name("snapbase-gc".into())
            .spawn(move || loop {
                thread::park_timeout(interval);
                let Some(engine) = weak.upgrade() else { return };
                if engine.is_closed() {
                    return;
                }
                if engine.gc_wanted() {
                    engine.gc_pass(Freeing::Committers);
                }
            });
        // Without a thread the database still works; `gc()` reclaims on demand.
        if let Ok(handle) = spawned {
            *engine.gc_worker.handle.lock() = Some(handle);
        }
    }

    /// Wakes the thread so it notices the database closed, and waits for it unless called
    /// from the thread itself.
    pub(crate) fn stop(&self) {
        let handle = self.handle.lock().take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }

    /// Wakes the thread without waiting (used when the engine is dropped).
    pub(crate) fn wake(&self) {
        if let Some(handle) = self.handle.lock().as_ref() {
            handle.thread().unpark();
        }
    }
}
