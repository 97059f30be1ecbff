//! What happens to this process's runs when it is interrupted (Ctrl-C, SIGINT) or asked to stop
//! (SIGTERM): they end `Cancelled` in the store before the process exits, so that none is left
//! `Running` for a process that is gone.
//!
//! A handler is put in place at the first run of a process whose store outlives it (SQLite),
//! unless the program said not to with [`handle_interrupts`](crate::runtime::handle_interrupts)
//! before (a program with its own graceful shutdown). On the signal it waits up to five seconds
//! for what the runs sent to be committed, ends every unfinished run of this process
//! `Cancelled` ("the process received SIGINT") in one transaction, and exits with 130 (SIGINT)
//! or 143 (SIGTERM), as the shell would report for the signal. A second signal meanwhile exits
//! at once; the next opener of the store then marks what is left `Crashed`. While
//! [`serve`](crate::serve) runs, it handles the signals itself (a grace period, then each run
//! cancelled), and this handler stands aside.
//!
//! Hooks do not run for these runs, and the futures of the runs are not dropped: the process
//! ends instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::store::Store;

/// Whether a handler should be put in place at the first run.
static WANTED: AtomicBool = AtomicBool::new(true);

/// Whether the handler is in place (or could not be): set once, at the first run.
static ARMED: AtomicBool = AtomicBool::new(false);

/// How many `serve` calls are handling the signals themselves.
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// How long the handler waits for the store to commit what runs sent before it ends them.
#[cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sets whether flowcore handles SIGINT and SIGTERM; see [`crate::runtime::handle_interrupts`].
pub(crate) fn set_wanted(on: bool) -> bool {
    WANTED.store(on, Ordering::SeqCst);
    !ARMED.load(Ordering::SeqCst)
}

/// Puts the handler in place, once, for a run that records to `store`: one relaxed load after
/// the first run.
pub(crate) fn arm(store: &'static Store) {
    if ARMED.load(Ordering::Relaxed) {
        return;
    }
    let wanted = !ARMED.swap(true, Ordering::SeqCst) && WANTED.load(Ordering::SeqCst);
    #[cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]
    if wanted && store.persists() {
        listen(store);
    }
    #[cfg(not(all(unix, any(feature = "sqlite", feature = "postgres"))))]
    let _ = (wanted, store);
}

/// While the guard lives, `serve` handles the signals and this handler stands aside.
pub(crate) struct Serving(());

impl Serving {
    pub(crate) fn start() -> Serving {
        SERVING.fetch_add(1, Ordering::SeqCst);
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]
fn listen(store: &'static Store) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!(
                "flowcore: cannot listen for Ctrl-C ({e}); runs interrupted by it are marked Crashed by the next program that opens the store"
            );
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("flowcore-signals".to_owned())
        .spawn(move || {
            let mut ending = false;
            for signal in signals.forever() {
                if SERVING.load(Ordering::SeqCst) > 0 {
                    continue;
                }
                let code = 128 + signal;
                if ending {
                    std::process::exit(code);
                }
                ending = true;
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                // Ended on a thread of its own, so that a second signal still exits at once.
                let _ = std::thread::Builder::new()
                    .name("flowcore-interrupted".to_owned())
                    .spawn(move || {
                        end_runs(store, name);
                        std::process::exit(code);
                    });
            }
        });
    if let Err(e) = spawned {
        eprintln!("flowcore: cannot listen for Ctrl-C ({e})");
    }
}

/// Commits what the runs sent, then ends every unfinished run of this process `Cancelled`.
#[cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]
fn end_runs(store: &Store, signal: &str) {
    eprintln!("flowcore: received {signal}: ending this process's unfinished runs as Cancelled");
    if let Err(e) = store.flush_blocking(FLUSH_WAIT) {
        eprintln!("flowcore: {e}");
    }
    match store.end_process_runs(&format!("the process received {signal}")) {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "flowcore: {n} run{} of this process ended Cancelled",
            if n == 1 { "" } else { "s" }
        ),
        Err(e) => eprintln!(
            "flowcore: could not end this process's runs ({e}); the next program that opens the store marks them Crashed"
        ),
    }
}
