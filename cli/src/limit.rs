//! `flowcore limit ls | set | rm`: concurrency limits by tag, held in the store for every
//! process that shares it.

use flowcore::Store;
use flowcore::terminal::escape_controls;

use crate::Failure;
use crate::args::{LimitRm, LimitSet, Output};
use crate::table::{Cell, Column, Table};

/// `flowcore limit ls`
pub fn ls(store: &Store, output: &Output) -> Result<String, Failure> {
    let limits = store.limits()?;
    if output.json {
        return Ok(serde_json::to_string_pretty(&limits)? + "\n");
    }
    if limits.is_empty() {
        return Ok("No limits: set one with `flowcore limit set TAG MAX`.\n".to_owned());
    }
    let mut table = Table::new(vec![
        Column::left("Tag"),
        Column::right("Limit"),
        Column::right("Running"),
    ]);
    for l in &limits {
        table.row(vec![
            Cell::plain(escape_controls(&l.tag)),
            Cell::plain(l.max.to_string()),
            Cell::plain(l.running.to_string()),
        ]);
    }
    Ok(table.render())
}

/// `flowcore limit set TAG MAX`
pub fn set(store: &Store, args: &LimitSet) -> Result<String, Failure> {
    store.set_limit(&args.tag, args.max)?;
    Ok(format!(
        "At most {} task run{} tagged '{}' at once, in every process using {}\n",
        args.max,
        if args.max == 1 { "" } else { "s" },
        escape_controls(&args.tag),
        store.describe()
    ))
}

/// `flowcore limit rm TAG`
pub fn rm(store: &Store, args: &LimitRm) -> Result<String, Failure> {
    if store.remove_limit(&args.tag)? {
        Ok(format!(
            "Lifted the limit of tag '{}'\n",
            escape_controls(&args.tag)
        ))
    } else {
        Err(Failure::new(format!(
            "no limit for tag '{}' in the run store {}",
            escape_controls(&args.tag),
            store.describe()
        )))
    }
}
