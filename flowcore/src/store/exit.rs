//! What the process's exit does for its stores: each store's writer commits what is still
//! queued, records the process as ended unless it leaves a run unfinished (so that the next
//! process has no dead process to look for, and a worker that stopped serving is not listed),
//! and, for SQLite, moves its write-ahead log into the file (a checkpoint), so that
//! `flowcore.db` alone holds every run. Without the checkpoint the newest commits stay in
//! `flowcore.db-wal` once the process is gone: safe (the next process to open the file reads
//! them), but a copy of the file alone misses them and reads "No flow runs yet". A process's
//! store lives in a static, which Rust never drops, so its writer thread never sees it close.
//!
//! "The process's exit" is C's `atexit`, on Unix ([`crate::exit`]): it runs when `main` returns
//! and when the program calls `std::process::exit` (as the interrupt handler does, after ending
//! its runs), not when the process is killed. A store dropped before then does the same as it
//! closes (its writer sees every handle gone).

use std::sync::{Mutex, MutexGuard, Weak};

/// A store with something to finish when the process exits.
pub(crate) trait AtExit: Send + Sync {
    /// Finishes it: called once, on the exiting thread, while the process's other threads
    /// (its writer's too) still run. It must not wait long.
    fn at_exit(&self);
}

/// The stores opened for writing in this process, while they live.
static STORES: Mutex<Vec<Weak<dyn AtExit>>> = Mutex::new(Vec::new());

fn stores() -> MutexGuard<'static, Vec<Weak<dyn AtExit>>> {
    STORES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Has `store` finished when the process exits, unless it is dropped first.
pub(crate) fn checkpoint_at_exit(store: Weak<dyn AtExit>) {
    crate::exit::arm();
    let mut stores = stores();
    stores.retain(|s| s.strong_count() > 0);
    stores.push(store);
}

/// Finishes every store that lives: the process is exiting.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn at_exit() {
    let live: Vec<_> = stores().iter().filter_map(Weak::upgrade).collect();
    for store in live {
        store.at_exit();
    }
}
