//! What flowcore finishes when the process exits: first each store's queue committed, the
//! process recorded as ended and a SQLite store's log moved into its file
//! ([`crate::store::exit`]), then the console logs' writers write out what they hold
//! ([`crate::logging::writer`]), last so that a line the stores log meanwhile is not lost.
//!
//! "The process exits" is C's `atexit`, on Unix: it runs when `main` returns and when the
//! program calls `std::process::exit` (as the interrupt handler does, after ending its runs),
//! not when the process is killed. The other threads still run meanwhile, the writers' too.
//! Elsewhere nothing is finished: there the console logs are written as they come.

/// Has [`at_exit`] run when the process exits: once, whoever asks first.
pub(crate) fn arm() {
    #[cfg(unix)]
    {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            // SAFETY: `at_exit` is an `extern "C" fn()`, as `atexit` takes, and never unwinds
            // (it catches any panic). A refusal (the C library's table of handlers full) only
            // leaves a store's log beside its file and loses the lines not yet written, as if
            // the process had been killed.
            let _ = unsafe { libc::atexit(at_exit) };
        });
    }
}

#[cfg(unix)]
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        crate::store::exit::at_exit();
        crate::logging::writer::at_exit();
    });
}
