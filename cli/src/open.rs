//! Finding the run store and opening it, without ever creating one.

use std::path::{Path, PathBuf};

use flowcore::{Store, StoreError};

use crate::Failure;

/// The store the command is about: `--store`, or the default `$FLOWCORE_HOME/flowcore.db`.
/// Made absolute, so that what is printed says where it is whatever the working directory.
pub fn store_path(given: Option<&Path>) -> Result<PathBuf, Failure> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => Store::default_path()?,
    };
    // `absolute` fails only without a working directory; the path as given still works.
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// Opens the store at `path`, which marks Crashed the unfinished runs of processes that died.
/// A missing file is an error, not a new store: a mistyped `--store` must not leave an empty
/// store behind and list nothing, as if it were right.
pub fn open(path: &Path) -> Result<Store, Failure> {
    Ok(Store::open_existing(path)?)
}

/// The flow run named `run` (the newest of that name) or with that id.
pub fn find_run(store: &Store, run: &str) -> Result<flowcore::Uuid, Failure> {
    Ok(store.find_flow_run(run)?)
}

/// The error for a run the store does not have.
pub fn unknown_run(store: &Store, run: &str) -> Failure {
    StoreError::UnknownRun {
        run: run.to_owned(),
        store: store.describe(),
    }
    .into()
}
