//! `flowcore runs delete RUN…` and `flowcore runs prune --older-than 30d [--state S …]`:
//! flow runs removed from the store with everything under them, in one transaction (see
//! `Store::delete_runs`), and how many went.

use flowcore::store::{Deleted, Prune};
use flowcore::{Store, Timestamp};

use crate::Failure;
use crate::args::{RunsDelete, RunsPrune};
use crate::format::{self, plural};
use crate::open;

/// `flowcore runs delete RUN…`
pub fn delete(store: &Store, args: &RunsDelete) -> Result<String, Failure> {
    let ids = args
        .runs
        .iter()
        .map(|run| open::find_run(store, run))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = store.delete_runs(&ids)?;
    if args.output.json {
        return Ok(serde_json::to_string_pretty(&deleted)? + "\n");
    }
    Ok(format!("Deleted {}.\n", counts(deleted)))
}

/// `flowcore runs prune --older-than D [--state S …]`
pub fn prune(store: &Store, args: &RunsPrune) -> Result<String, Failure> {
    let older_than = i64::try_from(args.older_than.as_micros()).unwrap_or(i64::MAX);
    let before =
        Timestamp::from_micros(Timestamp::wall_now().as_micros().saturating_sub(older_than));
    let deleted = store.prune(&Prune::created_before(before).in_states(args.states.clone()))?;
    if args.output.json {
        return Ok(serde_json::to_string_pretty(&deleted)? + "\n");
    }
    let which = if args.states.is_empty() {
        "that ended".to_owned()
    } else {
        let states: Vec<&str> = args.states.iter().map(|s| s.as_str()).collect();
        format!("that ended {}", states.join(" or "))
    };
    let before = format::date_time(before);
    if deleted.flow_runs == 0 {
        return Ok(format!(
            "No flow run created before {before} {which}: nothing deleted.\n"
        ));
    }
    Ok(format!(
        "Deleted {}: the flow runs created before {before} {which}.\n",
        counts(deleted)
    ))
}

/// `3 flow runs and 12 task runs, with their states and log lines`.
fn counts(deleted: Deleted) -> String {
    format!(
        "{} and {}, with their states and log lines",
        plural(deleted.flow_runs, "flow run", "flow runs"),
        plural(deleted.task_runs, "task run", "task runs")
    )
}
