//! Finding the run store and opening it, without ever creating one.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use flowcore::{Store, StoreError};

use crate::Failure;

/// The store a command is about: a SQLite file, or a PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    /// Its URL as given, password included: it is needed to connect, and never printed.
    Postgres(OsString),
}

impl Location {
    /// `--store`, else `FLOWCORE_STORE`, else the default `$FLOWCORE_HOME/flowcore.db`. A path
    /// is made absolute, so that what is printed says where it is whatever the working
    /// directory.
    pub fn find(given: Option<&OsStr>) -> Result<Location, Failure> {
        let target = match given {
            Some(target) => target.to_owned(),
            None => Store::default_location()?,
        };
        if Store::is_postgres_location(&target) {
            return Ok(Location::Postgres(target));
        }
        let path = PathBuf::from(target);
        // `absolute` fails only without a working directory; the path as given still works.
        Ok(Location::File(std::path::absolute(&path).unwrap_or(path)))
    }

    /// What it is called in what a command prints: never with a password.
    pub fn describe(&self) -> String {
        Store::describe_location(self.target())
    }

    /// What [`Store::open`] takes.
    pub fn target(&self) -> &OsStr {
        match self {
            Location::File(path) => path.as_os_str(),
            Location::Postgres(url) => url,
        }
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

/// Opens the store for reading; a reader marks nothing Crashed, it shows the runs of processes
/// that died as Crashed. A missing file is an error, not a new store: a mistyped `--store` must
/// not leave an empty store behind and list nothing, as if it were right; an empty database is
/// refused the same way.
pub fn open(location: &Location) -> Result<Store, Failure> {
    Ok(Store::open_existing(location.target())?)
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
