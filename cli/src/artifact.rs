//! `flowcore artifact ls | show`: the artifacts runs made, latest by key.

use flowcore::artifact::{Artifact, ArtifactKind};
use flowcore::terminal::escape_controls;
use flowcore::{Store, Uuid};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{ArtifactShow, Output};
use crate::format;
use crate::table::{Cell, Column, Table};

/// `flowcore artifact ls`: the latest artifact of each key.
pub fn ls(store: &Store, output: &Output) -> Result<String, Failure> {
    let latest = store.latest_artifacts()?;
    if output.json {
        return Ok(serde_json::to_string_pretty(&latest)? + "\n");
    }
    if latest.is_empty() {
        return Ok("No artifacts yet.\n".to_owned());
    }
    let mut table = Table::new(vec![
        Column::left("Key"),
        Column::left("Kind"),
        Column::left("Flow run"),
        Column::left("Created"),
    ]);
    for artifact in &latest {
        table.row(vec![
            Cell::plain(&artifact.key),
            Cell::plain(artifact.kind.as_str()),
            Cell::plain(run_name(store, artifact.flow_run_id)?),
            Cell::plain(format::date_time(artifact.created_at)),
        ]);
    }
    Ok(table.render())
}

/// `flowcore artifact show KEY`: the latest artifact of the key, as text.
pub fn show(store: &Store, args: &ArtifactShow) -> Result<String, Failure> {
    let history = store.artifact_history(&args.key)?;
    let Some(latest) = history.first() else {
        return Err(Failure(format!(
            "no artifact with key {:?}; `flowcore artifact ls` lists the keys",
            args.key
        )));
    };
    if args.output.json {
        let value = json!({ "latest": latest, "earlier": history.len() - 1 });
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    let mut out = format!(
        "Artifact '{}' ({}), from flow run '{}' at {}\n\n",
        escape_controls(&latest.key),
        latest.kind.as_str(),
        escape_controls(&run_name(store, latest.flow_run_id)?),
        format::date_time(latest.created_at)
    );
    out.push_str(&body_text(latest));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if history.len() > 1 {
        out.push_str(&format!(
            "\n{} earlier with this key.\n",
            format::plural(history.len() - 1, "artifact", "artifacts")
        ));
    }
    Ok(out)
}

/// An artifact's content for a terminal: markdown and links as written, a table as columns.
/// Control characters are escaped: the text comes from user code.
pub fn body_text(artifact: &Artifact) -> String {
    match artifact.kind {
        ArtifactKind::Table => table_text(artifact),
        _ => escape_controls(&artifact.body).into_owned(),
    }
}

/// A table artifact's rows as columns.
fn table_text(artifact: &Artifact) -> String {
    let Some((columns, rows)) = artifact.table() else {
        return String::new();
    };
    let cell = |v: &Value| -> String {
        let text = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        escape_controls(&format::first_line(&text)).into_owned()
    };
    let mut grid: Vec<Vec<String>> = vec![
        columns
            .iter()
            .map(|c| escape_controls(c).into_owned())
            .collect(),
    ];
    grid.extend(rows.iter().map(|row| row.iter().map(cell).collect()));
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| grid.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &grid {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(text, &w)| format!("{text}{}", " ".repeat(w - text.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn run_name(store: &Store, run: Option<Uuid>) -> Result<String, Failure> {
    Ok(match run {
        None => "none".to_owned(),
        Some(id) => store
            .flow_run_summary(id)?
            .map_or_else(|| id.to_string(), |s| s.name),
    })
}
