//! `flowcore store path`: where the run store is; `flowcore store upgrade`: bring a store of
//! an older flowcore to this one's schema.

use std::path::Path;

use flowcore::terminal::escape_controls;
use flowcore::{Store, StoreError};

use crate::Failure;
use crate::args::Output;
use crate::format;
use crate::open::Location;

/// `flowcore store path`. It does not open the store, so it works, and creates nothing,
/// when there is none yet. A database's URL is printed without its password.
pub fn path(location: &Location, output: &Output) -> Result<String, Failure> {
    let Some(path) = location.file() else {
        let url = location.describe();
        if output.json {
            let json = serde_json::json!({ "path": url, "kind": "postgres" });
            return Ok(serde_json::to_string_pretty(&json)? + "\n");
        }
        return Ok(format!(
            "{}\na PostgreSQL database\n",
            escape_controls(&url)
        ));
    };
    let exists = path.exists();
    if output.json {
        let json = serde_json::json!({ "path": path, "kind": "sqlite", "exists": exists });
        return Ok(serde_json::to_string_pretty(&json)? + "\n");
    }
    let status = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            // In WAL mode the newest commits sit in the -wal file beside it until a
            // checkpoint: the store's size is both.
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            let wal = std::fs::metadata(wal).map_or(0, |m| m.len());
            format!("exists, {}", format::size(meta.len() + wal))
        }
        Ok(_) => "exists, but is not a file".to_owned(),
        Err(_) => "does not exist yet: the first flow run creates it".to_owned(),
    };
    // The path is the user's own, but may hold anything a file name can.
    let path = path.display().to_string();
    Ok(format!("{}\n{status}\n", escape_controls(&path)))
}

/// `flowcore store upgrade`: the one command that changes a store's schema, as every program
/// that runs flows does when it opens one. A missing file stays missing, an empty database
/// empty.
pub fn upgrade(location: &Location) -> Result<String, Failure> {
    match location {
        Location::File(path) => upgrade_file(path)?,
        Location::Postgres(url) => match Store::open_existing(url) {
            Ok(_) => {}
            Err(StoreError::OlderSchema { .. }) => {
                Store::open(url)?;
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(format!(
        "{} is ready for this flowcore; its runs are kept\n",
        escape_controls(&location.describe())
    ))
}

fn upgrade_file(path: &Path) -> Result<(), Failure> {
    if !path.try_exists().unwrap_or(true) {
        return Err(StoreError::NoStore {
            path: path.to_path_buf(),
        }
        .into());
    }
    Store::open(path)?;
    Ok(())
}
