//! What can go wrong with a run store, said so that the user knows what to do.

use std::path::PathBuf;

/// Where to look instead of `store`: another file, or another database.
fn another_store(store: &std::path::Path) -> &'static str {
    if crate::store::Store::is_postgres_location(store) {
        "point FLOWCORE_STORE or --store at another database"
    } else {
        "point FLOWCORE_HOME or --store at another file"
    }
}

/// An error opening, reading or writing a run store. Every variant about a file names it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but was not made by flowcore. It is left untouched.
    #[error(
        "{path} is not a flowcore run store ({reason}); flowcore leaves it untouched: {}",
        another_store(.path)
    )]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The file was written by a newer flowcore, whose schema this build does not know.
    #[error(
        "{path} was written by a newer flowcore (schema version {found}; this build knows up to {known}); upgrade flowcore to read it"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// SQLite reports the file as damaged. It is left untouched.
    #[error(
        "{path} is damaged ({detail}); flowcore leaves it untouched: restore it from a backup or move it aside"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// No place for the default store: neither `FLOWCORE_HOME` nor `HOME` is set.
    #[error("cannot find a place for the run store: set FLOWCORE_HOME (or HOME) to a directory")]
    NoHome,
    /// The store's directory or file could not be created or opened.
    #[error("cannot open {path}: {detail}")]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's or SQLite's words.
        detail: String,
    },
    /// Another error from the database.
    #[error("run store {path}: {detail}")]
    Database {
        /// The file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// The database stayed locked by other processes longer than the busy timeout; the writer
    /// retries, so this only reaches a caller of a one-off operation.
    #[error("run store {path} is locked by another process; try again")]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// `Store::install` after this process had already started using a store.
    #[error(
        "this process already uses a run store ({current}); install the store before the first flow or task run"
    )]
    AlreadyInstalled {
        /// Where the store in use keeps its runs.
        current: String,
    },
    /// `Store::install` of a store opened for reading.
    #[error(
        "{store} was opened for reading (Store::open_existing) and cannot record runs; install a store opened with Store::sqlite"
    )]
    OpenedForReading {
        /// Where the store keeps its runs.
        store: String,
    },
    /// No flow run has this name or id.
    #[error("no flow run named or with id {run:?} in the run store {store}")]
    UnknownRun {
        /// The name or id asked for.
        run: String,
        /// Where the store keeps its runs.
        store: String,
    },
    /// [`Store::open_existing`](crate::Store::open_existing) found no file.
    #[error("no run store at {path}; run a flow first, or point --store / FLOWCORE_HOME at one")]
    NoStore {
        /// Where it looked.
        path: PathBuf,
    },
    /// Input given to a run that waits for none.
    #[error("flow run '{name}' takes no input: {reason}")]
    NotPaused {
        /// The flow run's name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A run that cannot be cancelled from outside.
    #[error("cannot cancel flow run '{name}': {reason}")]
    CannotCancel {
        /// The flow run's name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A run that cannot be resumed.
    #[error("cannot resume flow run '{name}': {reason}")]
    CannotResume {
        /// The flow run's name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// No deployment has this name.
    #[error("no deployment named {name:?} in the run store {store}; {known}")]
    UnknownDeployment {
        /// The name asked for.
        name: String,
        /// Where the store keeps its runs.
        store: String,
        /// The deployments it has, as a hint: "deployments: monitor, images" or "no process
        /// has served a deployment with this store yet".
        known: String,
    },
    /// Another process took this one for dead (its heartbeat had stopped, for longer than a
    /// worker's lease) and took over its runs: what this process writes now is refused, so
    /// that it changes nothing the new owners wrote.
    #[error(
        "the run store {store} refuses this process's writes: another process took it for dead at {at} (its heartbeats stopped reaching the store for longer than the lease) and took over its runs"
    )]
    Fenced {
        /// The store, a database's URL without its password.
        store: String,
        /// When it was taken for dead, as RFC 3339.
        at: String,
    },
    /// A flow run to delete has a run under it still going, in a process that is alive:
    /// nothing was deleted.
    #[error(
        "cannot delete: {run} is {state}, in process {pid} on {host}, which is alive; let it end (or stop that process) first. Nothing was deleted"
    )]
    RunGoing {
        /// The run going: `flow run 'olive-grebe'`, or `task run of 'extract'`.
        run: String,
        /// Its state.
        state: crate::state::StateKind,
        /// The process running it.
        pid: u32,
        /// Its host.
        host: String,
    },
    /// A run request whose parameters do not fit the deployment.
    #[error("{0}")]
    BadParameter(String),
    /// The store's writer thread stopped; nothing more can be written.
    #[error("the run store's writer stopped")]
    WriterStopped,
    /// The database server could not be reached, or the connection to it was lost (it
    /// restarted, the network is down). The writer waits for it, up to its write timeout.
    #[error("cannot reach the run store {store}: {detail}")]
    Unreachable {
        /// The database's URL, without its password.
        store: String,
        /// The driver's words.
        detail: String,
    },
    /// The disk (or file system) holding the store has no room left.
    #[error("the disk holding {path} is full")]
    Full {
        /// The file.
        path: PathBuf,
    },
    /// The file (or the file system it is on) may be read but not written: reading the runs
    /// works, recording or changing them does not.
    #[error(
        "cannot write to {path}: it is read-only (file permissions or a read-only file system); reading it works"
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by an older flowcore; reading it needs its schema upgraded, which
    /// only a program that writes (a flow run, `flowcore store upgrade`) does.
    #[error(
        "{path} was written by an older flowcore (schema version {found}; this build reads {known}); upgrade it with `flowcore store upgrade`, or run a flow with it"
    )]
    OlderSchema {
        /// The file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The version this build reads.
        known: i64,
    },
    /// The store has not been able to commit anything for longer than its write timeout
    /// ([`Store::write_timeout`](crate::Store::write_timeout)). Runs go on; what they record
    /// waits in memory, and is committed if the store recovers before the process ends.
    #[error(
        "run store {store} has committed nothing for {seconds}s ({cause}); runs go on, and their records wait in memory until it recovers"
    )]
    Unavailable {
        /// Where the store keeps its runs.
        store: String,
        /// How long it has been failing, in seconds.
        seconds: u64,
        /// The latest error.
        cause: Box<StoreError>,
    },
}

impl StoreError {
    /// What went wrong in a few words, for a run's summary: `"disk full"`, `"locked by
    /// another process"`, or the whole message when there is no shorter one.
    pub fn reason(&self) -> String {
        match self {
            StoreError::Unavailable { cause, .. } => cause.reason(),
            StoreError::Full { .. } => "disk full".to_owned(),
            StoreError::Busy { .. } => "locked by another process".to_owned(),
            StoreError::Unreachable { .. } => "the database is unreachable".to_owned(),
            StoreError::Fenced { .. } => "taken for dead by another process".to_owned(),
            StoreError::ReadOnly { .. } => "read-only".to_owned(),
            StoreError::Corrupt { .. } => "the store is damaged".to_owned(),
            other => other.to_string(),
        }
    }
}

impl StoreError {
    /// Maps a SQLite error on the file at `path` to the error a user can act on.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(path: &std::path::Path, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore {
                path,
                reason: "it is not a SQLite database".to_owned(),
            },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { path },
            Some(ErrorCode::DiskFull) => StoreError::Full { path },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => StoreError::Open {
                path,
                detail: e.to_string(),
            },
            _ => StoreError::Database {
                path,
                detail: e.to_string(),
            },
        }
    }
}
