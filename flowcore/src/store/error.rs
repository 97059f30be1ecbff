//! What can go wrong with a run store, said so that the user knows what to do.

use std::path::PathBuf;

/// An error opening, reading or writing a run store. Every variant about a file names it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but was not made by flowcore. It is left untouched.
    #[error(
        "{path} is not a flowcore run store ({reason}); flowcore leaves it untouched: point FLOWCORE_HOME or --store at another file"
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
    /// A run request whose parameters do not fit the deployment.
    #[error("{0}")]
    BadParameter(String),
    /// Another live process already serves a deployment of this name.
    #[error(
        "deployment '{name}' is already served by process {pid} on {host}; stop that process first, or give this deployment another name"
    )]
    AlreadyServed {
        /// The deployment.
        name: String,
        /// The process serving it.
        pid: u32,
        /// Its host.
        host: String,
    },
    /// The store's writer thread stopped; nothing more can be written.
    #[error("the run store's writer stopped")]
    WriterStopped,
}

impl StoreError {
    /// Maps a SQLite error on the file at `path` to the error a user can act on.
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
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
                StoreError::Open {
                    path,
                    detail: e.to_string(),
                }
            }
            _ => StoreError::Database {
                path,
                detail: e.to_string(),
            },
        }
    }
}
