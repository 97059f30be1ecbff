//! `flowcore runs ls | show | summary`: flow runs as the store has them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use flowcore::store::{FlowRunSummary, LogLine, RunFilter};
use flowcore::terminal::{LineFeeds, escape_controls, escape_controls_with};
use flowcore::{FlowRunRecord, StateKind, Store, Timestamp, Uuid};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{RunArg, RunCancel, RunResume, RunsLs};
use crate::format;
use crate::open;
use crate::style::{Colour, Style};
use crate::table::{Cell, Column, Table};

/// `flowcore runs ls`
pub fn ls(store: &Store, args: &RunsLs, style: Style) -> Result<String, Failure> {
    let filter = RunFilter {
        flow: args.flow.clone(),
        state: args.state,
        tag: args.tag.clone(),
        limit: usize::try_from(args.limit).unwrap_or(usize::MAX),
        ..RunFilter::default()
    };
    let runs = store.flow_runs(&filter)?;
    if args.output.json {
        let list: Vec<Value> = runs.iter().map(summary_json).collect::<Result<_, _>>()?;
        return Ok(serde_json::to_string_pretty(&list)? + "\n");
    }
    if runs.is_empty() {
        return Ok(nothing_found(&filter));
    }
    let mut table = Table::new(run_columns());
    for (run, lines) in as_tree(&runs) {
        let name = match run.parent_id {
            // A subflow run whose parent is not listed (filtered out, or past the limit).
            Some(parent) if lines.is_empty() => {
                let parent = run
                    .parent_name
                    .clone()
                    .unwrap_or_else(|| parent.to_string());
                format!("↳ {} (subflow of {parent})", run.name)
            }
            _ => format!("{lines}{}", run.name),
        };
        table.row(run_row(
            name,
            &run.flow,
            run.state,
            run.started_at.unwrap_or(run.created_at),
            run.duration(),
            &run.task_runs,
            style,
        ));
    }
    Ok(table.render())
}

/// `flowcore runs resume RUN --input JSON`: gives the input, then waits a few seconds for
/// the run's process to take it or refuse it.
pub fn resume(store: &Store, args: &RunResume) -> Result<String, Failure> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".to_owned());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let by = format!("flowcore runs resume ({user}@{host})");
    let id = store.give_input(&args.run, &args.input, &by)?;
    let name = store
        .flow_run_summary(id)?
        .map_or_else(|| args.run.clone(), |s| s.name);
    let name = escape_controls(&name).into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let request = store.input_request(&id.to_string())?;
        match request {
            Some(r) if r.answered_at.is_some() => {
                return Ok(format!("Flow run '{name}' took the input and goes on.\n"));
            }
            Some(r) if r.input.is_none() && r.refused.is_some() => {
                return Err(Failure(format!(
                    "flow run '{name}' refused the input and stays paused: {}",
                    r.refused.unwrap_or_default()
                )));
            }
            _ if std::time::Instant::now() >= deadline => {
                return Ok(format!(
                    "Gave the input to flow run '{name}'; its process has not taken it yet (it takes it when it next looks).\n"
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `flowcore runs cancel`
pub fn cancel(store: &Store, args: &RunCancel) -> Result<String, Failure> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".to_owned());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let by = format!("flowcore runs cancel ({user}@{host})");
    let outcome = store.cancel_run(&args.run, &by)?;
    let id = open::find_run(store, &args.run)?;
    let name = store
        .flow_run_summary(id)?
        .map_or_else(|| args.run.clone(), |s| s.name);
    if args.output.json {
        let value = json!({ "id": id, "name": name, "outcome": outcome, "by": by });
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    let name = escape_controls(&name);
    Ok(match outcome {
        flowcore::CancelOutcome::Cancelling => format!(
            "Cancelling flow run '{name}': the process running it drops it within about a second, and it ends Cancelled.\n"
        ),
        _ => format!("Cancelled flow run '{name}': no process was running it.\n"),
    })
}

/// What `runs ls` says when no run matches, so that an empty answer is not mistaken for a
/// broken command.
fn nothing_found(filter: &RunFilter) -> String {
    let mut which = Vec::new();
    if let Some(flow) = &filter.flow {
        which.push(format!("of flow '{}'", escape_controls(flow)));
    }
    if let Some(state) = filter.state {
        which.push(format!("in state {state}"));
    }
    if let Some(tag) = &filter.tag {
        which.push(format!("tagged '{}'", escape_controls(tag)));
    }
    if which.is_empty() {
        "No flow runs yet.\n".to_owned()
    } else {
        format!("No flow runs {}.\n", which.join(" "))
    }
}

/// The runs in listing order, each subflow run right under the run that called it (in the
/// order they were called), with the tree lines to put before its name (`├ `, `│ └ `). A
/// subflow run whose parent is not in the list stays where it is, without tree lines.
fn as_tree(runs: &[FlowRunSummary]) -> Vec<(&FlowRunSummary, String)> {
    let listed: HashSet<Uuid> = runs.iter().map(|r| r.id).collect();
    let mut children: HashMap<Uuid, Vec<&FlowRunSummary>> = HashMap::new();
    for run in runs {
        if let Some(parent) = run.parent_id.filter(|p| listed.contains(p)) {
            children.entry(parent).or_default().push(run);
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|r| r.created_at);
    }
    fn walk<'a>(
        run: &'a FlowRunSummary,
        lines: String,
        indent: &str,
        children: &HashMap<Uuid, Vec<&'a FlowRunSummary>>,
        out: &mut Vec<(&'a FlowRunSummary, String)>,
    ) {
        out.push((run, lines));
        let kids = children.get(&run.id).map_or(&[][..], Vec::as_slice);
        for (i, child) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let lines = format!("{indent}{}", if last { "└ " } else { "├ " });
            let deeper = format!("{indent}{}", if last { "  " } else { "│ " });
            walk(child, lines, &deeper, children, out);
        }
    }
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        if !run.parent_id.is_some_and(|p| listed.contains(&p)) {
            walk(run, String::new(), "", &children, &mut out);
        }
    }
    out
}

/// The columns of a list of flow runs, in `runs ls` and in the subflow runs of `runs show`.
fn run_columns() -> Vec<Column> {
    vec![
        Column::left("Name"),
        Column::left("Flow"),
        Column::left("State"),
        Column::left("Start"),
        Column::right("Duration"),
        Column::left("Task runs"),
    ]
}

fn run_row(
    name: String,
    flow: &str,
    state: StateKind,
    start: Timestamp,
    duration: Option<Duration>,
    counts: &BTreeMap<StateKind, usize>,
    style: Style,
) -> Vec<Cell> {
    let (counts, width) = format::state_counts(counts, style);
    vec![
        Cell::plain(name),
        Cell::plain(flow),
        Cell::state(state, style),
        Cell::plain(format::date_time(start)),
        Cell::plain(duration.map(format::duration).unwrap_or_default()),
        Cell::styled(counts, width),
    ]
}

/// A line of `runs ls --json`: the summary as the store gives it, with its duration.
pub fn summary_json(run: &FlowRunSummary) -> Result<Value, Failure> {
    let mut value = serde_json::to_value(run)?;
    if let Value::Object(fields) = &mut value {
        fields.insert(
            "duration_secs".to_owned(),
            json!(run.duration().map(|d| d.as_secs_f64())),
        );
    }
    Ok(value)
}

/// The flow run `run` names, whole: for `runs show`, `runs summary` and `runs graph`.
pub fn load(store: &Store, run: &str) -> Result<FlowRunRecord, Failure> {
    let id = open::find_run(store, run)?;
    // Found a moment ago; gone only if another process removed it in between.
    store
        .flow_run(id)?
        .ok_or_else(|| open::unknown_run(store, run))
}

/// `flowcore runs show`
pub fn show(store: &Store, args: &RunArg, style: Style) -> Result<String, Failure> {
    let record = load(store, &args.run)?;
    let parameters = store.parameters(record.id)?;
    let deployment = store
        .flow_run_summary(record.id)?
        .and_then(|summary| summary.deployment);
    let logs = store.logs(record.id)?;
    let parent = match record.parent_id {
        Some(id) => Some((id, store.flow_run_summary(id)?.map(|p| p.name))),
        None => None,
    };
    if args.output.json {
        let value = show_json(&record, parameters, deployment, &logs, parent)?;
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }

    let mut out = String::new();
    let state = record.state();
    let start = record.history.started_at();
    // The day the run began: history and log times show the date only when it differs.
    let day = record.history.first().map_or(state.at, |s| s.at);
    // Names, errors and parameters come from user code: each is escaped where it goes in,
    // since the state's colour codes share the line.
    let _ = writeln!(out, "Flow run '{}'", escape_controls(&record.name));
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<11} {value}");
    };
    field("Id", record.id.to_string());
    field("Flow", escape_controls(&record.flow).into_owned());
    let state_text = match record.error() {
        Some(error) => format!(
            "{}: {}",
            style.state(state.kind),
            escape_controls(&format::first_line(error))
        ),
        None => style.state(state.kind),
    };
    field("State", state_text);
    field(
        "Parent",
        match &parent {
            None => "none".to_owned(),
            Some((id, Some(name))) => format!("{} ({id})", escape_controls(name)),
            Some((id, None)) => format!("{id} (no longer in the store)"),
        },
    );
    if let Some(deployment) = deployment {
        field("Deployment", escape_controls(&deployment).into_owned());
    }
    if !record.tags.is_empty() {
        field(
            "Tags",
            escape_controls(&record.tags.join(", ")).into_owned(),
        );
    }
    field(
        "Parameters",
        escape_controls(&parameters_text(parameters.as_ref())).into_owned(),
    );
    field(
        "Start",
        start
            .map(format::date_time)
            .unwrap_or_else(|| "never started".to_owned()),
    );
    field(
        "End",
        record
            .history
            .ended_at()
            .map(format::date_time)
            .unwrap_or_else(|| format!("not yet: {}", state.kind)),
    );
    field(
        "Duration",
        record.duration().map(format::duration).unwrap_or_default(),
    );
    field("Attempts", record.attempts.to_string());

    out.push_str("\nState history\n");
    let mut history = Table::new(vec![
        Column::left("Time"),
        Column::left("State"),
        Column::left("Message").optional(),
    ]);
    for s in record.history.iter() {
        history.row(vec![
            Cell::plain(format::time_of_day(s.at, day)),
            Cell::state(s.kind, style),
            Cell::plain(s.message()),
        ]);
    }
    out.push_str(&history.render());

    let artifacts = store.artifacts_of(record.id)?;
    if !artifacts.is_empty() {
        out.push_str("\nArtifacts\n");
        let mut table = Table::new(vec![
            Column::left("Key"),
            Column::left("Kind"),
            Column::left("Made by"),
        ]);
        let names: HashMap<Uuid, String> = record
            .task_runs
            .iter()
            .map(|t| (t.id, t.name().to_string()))
            .collect();
        for a in &artifacts {
            let by = a
                .task_run_id
                .and_then(|t| names.get(&t).cloned())
                .unwrap_or_else(|| "the flow run".to_owned());
            table.row(vec![
                Cell::plain(&a.key),
                Cell::plain(a.kind.as_str()),
                Cell::plain(by),
            ]);
        }
        out.push_str(&table.render());
    }

    out.push_str("\nTask runs\n");
    if record.task_runs.is_empty() {
        out.push_str("none\n");
    } else {
        let mut tasks = Table::new(vec![
            Column::left("Name"),
            Column::left("State"),
            Column::right("Attempts"),
            Column::right("Duration"),
            Column::left("Cache").optional(),
            Column::left("Error").optional(),
        ]);
        for task in &record.task_runs {
            tasks.row(vec![
                Cell::plain(task.name().to_string()),
                Cell::state(task.state().kind, style),
                Cell::plain(task.attempts.to_string()),
                Cell::plain(task.duration().map(format::duration).unwrap_or_default()),
                Cell::plain(task.cache.as_str()),
                Cell::plain(task.error().unwrap_or_default()),
            ]);
        }
        out.push_str(&tasks.render());
        let (counts, _) = format::state_counts(&record.task_run_counts(), style);
        let _ = writeln!(
            out,
            "{}: {counts}",
            format::plural(record.task_runs.len(), "task run", "task runs")
        );
    }

    if !record.subflow_runs.is_empty() {
        out.push_str("\nSubflow runs\n");
        let mut subflows = Table::new(run_columns());
        for sub in &record.subflow_runs {
            subflows.row(run_row(
                sub.name.clone(),
                &sub.flow,
                sub.state().kind,
                sub.history.started_at().unwrap_or(sub.state().at),
                sub.duration(),
                &sub.task_run_counts(),
                style,
            ));
        }
        out.push_str(&subflows.render());
    }

    let errors = errors(&record);
    if !errors.is_empty() {
        out.push_str("\nErrors\n");
        for (label, error) in errors {
            let _ = writeln!(out, "{}: {}", escape_controls(&label), indent_rest(error));
        }
    }

    out.push_str("\nLogs\n");
    if logs.is_empty() {
        out.push_str(
            "none (log lines are kept when the program logs through flowcore's logging layer)\n",
        );
    } else {
        let labels = run_labels(&record);
        for line in &logs {
            out.push_str(&log_line(line, &labels, day, style));
        }
    }
    Ok(out)
}

/// `flowcore runs summary`: the table the flow logged when it finished.
pub fn summary(store: &Store, args: &RunArg) -> Result<String, Failure> {
    let record = load(store, &args.run)?;
    let summary = record.summary();
    if args.output.json {
        let value = json!({
            "id": record.id,
            "name": record.name,
            "flow": record.flow,
            "state": record.state().kind,
            "headline": summary.headline(),
            "task_runs": record.task_run_counts(),
            "duration_secs": record.duration().map(|d| d.as_secs_f64()),
        });
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    Ok(format!("{summary}\n"))
}

/// `runs show --json`: the record with, at each level, the fields a reader would otherwise
/// derive from the history.
/// `runs show --json`, also the dashboard's `/api/runs/<id>`: the record with its parameters,
/// deployment, parent's name and log lines.
pub fn show_json(
    record: &FlowRunRecord,
    parameters: Option<Value>,
    deployment: Option<String>,
    logs: &[flowcore::store::LogLine],
    parent: Option<(flowcore::Uuid, Option<String>)>,
) -> Result<Value, Failure> {
    let mut value = record_json(record)?;
    if let Value::Object(fields) = &mut value {
        fields.insert(
            "parent_name".to_owned(),
            json!(parent.and_then(|(_, name)| name)),
        );
        fields.insert("parameters".to_owned(), json!(parameters));
        fields.insert("deployment".to_owned(), json!(deployment));
        fields.insert("logs".to_owned(), serde_json::to_value(logs)?);
    }
    Ok(value)
}

fn record_json(record: &FlowRunRecord) -> Result<Value, Failure> {
    let mut value = serde_json::to_value(record)?;
    if let Value::Object(fields) = &mut value {
        fields.insert("state".to_owned(), json!(record.state().kind));
        fields.insert("error".to_owned(), json!(record.error()));
        fields.insert("started_at".to_owned(), json!(record.history.started_at()));
        fields.insert("ended_at".to_owned(), json!(record.history.ended_at()));
        fields.insert(
            "duration_secs".to_owned(),
            json!(record.duration().map(|d| d.as_secs_f64())),
        );
        let subflows: Vec<Value> = record
            .subflow_runs
            .iter()
            .map(record_json)
            .collect::<Result<_, _>>()?;
        fields.insert("subflow_runs".to_owned(), Value::Array(subflows));
    }
    Ok(value)
}

/// `name="world", n=3`: parameters as they were passed, JSON values after each name.
fn parameters_text(parameters: Option<&Value>) -> String {
    match parameters {
        None => "not recorded (not serializable)".to_owned(),
        Some(Value::Object(fields)) if fields.is_empty() => "none".to_owned(),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// Every error of the run: its own, its task runs', its subflow runs'.
fn errors(record: &FlowRunRecord) -> Vec<(String, &str)> {
    let mut errors = Vec::new();
    if let Some(error) = record.error() {
        errors.push((format!("Flow run '{}'", record.name), error));
    }
    for task in &record.task_runs {
        if let Some(error) = task.error() {
            errors.push((format!("Task run '{}'", task.name()), error));
        }
    }
    for sub in &record.subflow_runs {
        if let Some(error) = sub.error() {
            errors.push((format!("Subflow run '{}'", sub.name), error));
        }
    }
    errors
}

/// A multi-line text with its later lines indented, so that they read as part of one entry,
/// and its control characters escaped.
fn indent_rest(text: &str) -> String {
    text.lines()
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// `Flow run 'x'` / `Task run 'y-3f1'` for each run whose log lines `store.logs` returns.
fn run_labels(record: &FlowRunRecord) -> HashMap<Uuid, String> {
    let mut labels = HashMap::from([(record.id, format!("Flow run '{}'", record.name))]);
    for task in &record.task_runs {
        labels.insert(task.id, format!("Task run '{}'", task.name()));
    }
    labels
}

/// `18:02:00.123 | INFO    | Task run 'extract-a8e' - message`: as flowcore's console
/// logs printed it, control characters escaped and a multi-line message's later lines
/// indented.
fn log_line(
    line: &LogLine,
    labels: &HashMap<Uuid, String>,
    day: Timestamp,
    style: Style,
) -> String {
    let colour = match line.level.as_str() {
        "ERROR" => Some(Colour::Red),
        "WARN" => Some(Colour::Yellow),
        "INFO" => Some(Colour::Teal),
        "DEBUG" => Some(Colour::Blue),
        _ => Some(Colour::Grey),
    };
    let level = style.paint(&format!("{:<7}", line.level), colour);
    let label = labels
        .get(&line.run_id)
        .cloned()
        .unwrap_or_else(|| format!("Run {}", line.run_id));
    format!(
        "{} | {level} | {} - {}\n",
        format::time_of_day(line.at, day),
        escape_controls(&label),
        escape_controls_with(&line.message, LineFeeds::Indent)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_read_as_name_value_pairs() {
        assert_eq!(
            parameters_text(Some(&json!({"name": "world"}))),
            r#"name="world""#
        );
        let two = parameters_text(Some(&json!({"name": "world", "n": 3})));
        assert!(
            two == r#"n=3, name="world""# || two == r#"name="world", n=3"#,
            "{two}"
        );
        assert_eq!(parameters_text(Some(&json!({}))), "none");
        assert_eq!(parameters_text(None), "not recorded (not serializable)");
    }

    #[test]
    fn an_empty_listing_says_what_was_asked() {
        let filter = RunFilter {
            flow: Some("etl".to_owned()),
            state: Some(StateKind::Failed),
            limit: 20,
            ..RunFilter::default()
        };
        assert_eq!(
            nothing_found(&filter),
            "No flow runs of flow 'etl' in state Failed.\n"
        );
        assert_eq!(nothing_found(&RunFilter::default()), "No flow runs yet.\n");
    }
}
