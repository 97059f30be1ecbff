//! `flowcore deployment ls | run`: the deployments in the store, and runs requested by hand.
//! Pausing and resuming is `pause.rs`'s.

use std::io::Write as _;
use std::time::Duration;

use flowcore::terminal::escape_controls;
use flowcore::{StateKind, Store, Uuid};

use crate::Failure;
use crate::args::{DeploymentRun, Output};
use crate::format;
use crate::style::Style;
use crate::table::{Cell, Column, Table};

/// How often `--watch` reads the run's states.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// `flowcore deployment ls`
pub fn ls(store: &Store, output: &Output, style: Style) -> Result<String, Failure> {
    let deployments = store.deployments()?;
    if output.json {
        return Ok(serde_json::to_string_pretty(&deployments)? + "\n");
    }
    if deployments.is_empty() {
        return Ok(
            "No deployments: a program serves them with flowcore::serve([Deployment::new(…)]).\n"
                .to_owned(),
        );
    }
    let mut table = Table::new(vec![
        Column::left("Deployment"),
        Column::left("Flow"),
        Column::left("Schedule"),
        Column::left("Next run"),
        Column::left("Last run"),
        Column::left("Last state"),
        Column::left("Served by"),
    ]);
    for d in &deployments {
        let last = d.last_runs.first();
        table.row(vec![
            Cell::plain(&d.name),
            Cell::plain(&d.flow),
            Cell::plain(d.schedule.as_deref().unwrap_or("when requested")),
            Cell::plain(next_run(d)),
            Cell::plain(last.map(|r| r.name.as_str()).unwrap_or("")),
            match last {
                Some(run) => Cell::state(run.state, style),
                None => Cell::plain(""),
            },
            Cell::plain(served_by(d)),
        ]);
    }
    Ok(table.render())
}

/// When its schedule runs next, or `paused`: a paused schedule starts no run, whatever time
/// comes next.
fn next_run(d: &flowcore::store::DeploymentInfo) -> String {
    if d.paused_at.is_some() {
        return "paused".to_owned();
    }
    d.next_run_at.map(format::date_time).unwrap_or_default()
}

/// Who serves a deployment: its one worker, or how many and which.
fn served_by(d: &flowcore::store::DeploymentInfo) -> String {
    let name =
        |p: &flowcore::store::ServedBy| format!("pid {} on {}", p.pid, escape_controls(&p.host));
    match (d.workers.as_slice(), &d.served_by) {
        ([], None) => "not served".to_owned(),
        ([], Some(p)) | ([p], _) => name(p),
        (all, _) => format!(
            "{} workers: {}",
            all.len(),
            all.iter().map(name).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `flowcore worker ls`
pub fn workers(store: &Store, output: &Output) -> Result<String, Failure> {
    let workers = store.workers()?;
    if output.json {
        return Ok(serde_json::to_string_pretty(&workers)? + "\n");
    }
    if workers.is_empty() {
        return Ok(
            "No workers: no live process serves a deployment or a background task with this store.\n"
                .to_owned(),
        );
    }
    let mut table = Table::new(vec![
        Column::left("Worker"),
        Column::left("Host"),
        Column::right("Pid"),
        Column::left("Started"),
        Column::left("Last heartbeat"),
        Column::right("Runs held"),
        Column::left("Deployments"),
        Column::left("Tasks"),
    ]);
    for w in &workers {
        let deployments: Vec<String> = w
            .deployments
            .iter()
            .map(|d| escape_controls(d).into_owned())
            .collect();
        let tasks: Vec<String> = w
            .tasks
            .iter()
            .map(|t| escape_controls(t).into_owned())
            .collect();
        table.row(vec![
            Cell::plain(w.id.to_string()),
            Cell::plain(escape_controls(&w.host)),
            Cell::plain(w.pid.to_string()),
            Cell::plain(format::date_time(w.started_at)),
            Cell::plain(format::date_time(w.heartbeat_at)),
            // Flow runs of its deployments and delayed runs of its tasks.
            Cell::plain((w.runs_held + w.task_runs_held).to_string()),
            Cell::plain(deployments.join(", ")),
            Cell::plain(tasks.join(", ")),
        ]);
    }
    Ok(table.render())
}

/// `flowcore deployment run NAME [--param k=v …] [--watch]`
pub fn run(store: &Store, args: &DeploymentRun, style: Style) -> Result<String, Failure> {
    let requested = store.request_run(&args.name, &args.params)?;
    let mut text = format!(
        "Created flow run '{}' of deployment '{}' (id {})\n",
        escape_controls(&requested.name),
        escape_controls(&requested.deployment),
        requested.id
    );
    let served = store
        .deployments()?
        .into_iter()
        .find(|d| d.name == requested.deployment)
        .and_then(|d| d.served_by);
    if served.is_none() {
        text.push_str(&format!(
            "No process serves '{}' now: the run stays Scheduled until one does.\n",
            escape_controls(&requested.deployment)
        ));
    }
    if !args.watch {
        return Ok(text);
    }
    // Printed now: the watch may be long, and the name is what the reader needs first.
    print_now(&text)?;
    watch(store, requested.id, &requested.name, style)
}

/// Prints each new state of the run until it ends; fails unless it completed. A run whose
/// process died reads as Crashed (the store shows it so to a reader), so this never waits on a
/// dead process.
fn watch(store: &Store, id: Uuid, name: &str, style: Style) -> Result<String, Failure> {
    let mut shown = 0;
    loop {
        let run = store
            .flow_run(id)?
            .ok_or_else(|| Failure::new(format!("flow run '{name}' was removed from the store")))?;
        for state in run.history.iter().skip(shown) {
            let message = state
                .message
                .as_deref()
                .map(|m| format!("  {}", escape_controls(m)))
                .unwrap_or_default();
            print_now(&format!(
                "{}  {}{message}\n",
                format::date_time(state.at),
                style.state(state.kind)
            ))?;
        }
        shown = run.history.len();
        let last = run.state();
        if last.is_final() {
            let summary = format!(
                "Flow run '{}' finished in state {}",
                escape_controls(name),
                style.state(last.kind)
            );
            return match last.kind {
                StateKind::Completed | StateKind::Cached => Ok(summary + "\n"),
                _ => Err(Failure::new(format!(
                    "flow run '{name}' ended {}{}",
                    last.kind,
                    last.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ))),
            };
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

pub fn print_now(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(format!("cannot write the output: {e}")))
}
