//! `flowcore cache ls | clear`: the cached task results in the store.

use flowcore::store::CacheEntry;
use flowcore::terminal::escape_controls;
use flowcore::{Store, Timestamp};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{CacheClear, Output};
use crate::format;
use crate::table::{Cell, Column, Table};

/// `flowcore cache ls`
pub fn ls(store: &Store, output: &Output) -> Result<String, Failure> {
    let entries = store.cache_entries()?;
    // Expiry is decided on the wall clock, as the store does between processes.
    let now = Timestamp::wall_now();
    let expired = |e: &CacheEntry| e.expires_at <= now;
    if output.json {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut value = serde_json::to_value(e)?;
                if let Value::Object(fields) = &mut value {
                    fields.insert("expired".to_owned(), json!(expired(e)));
                }
                Ok(value)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        return Ok(serde_json::to_string_pretty(&list)? + "\n");
    }
    if entries.is_empty() {
        return Ok("No cached results.\n".to_owned());
    }
    let mut table = Table::new(vec![
        Column::left("Task"),
        Column::left("Key"),
        Column::left("Stored at"),
        Column::left("Expires at"),
        Column::right("Size"),
    ]);
    for entry in &entries {
        table.row(vec![
            Cell::plain(&entry.task),
            Cell::plain(&entry.key),
            Cell::plain(format::date_time(entry.created_at)),
            Cell::plain(if expired(entry) {
                "expired".to_owned()
            } else {
                format::date_time(entry.expires_at)
            }),
            Cell::plain(format::size(entry.size as u64)),
        ]);
    }
    Ok(table.render())
}

/// `flowcore cache clear [TASK]`
pub fn clear(store: &Store, args: &CacheClear) -> Result<String, Failure> {
    let task = args.task.as_deref();
    let removed = store.clear_cache(task)?;
    if args.output.json {
        let value = json!({ "removed": removed, "task": task });
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    let what = format::plural(removed, "cached result", "cached results");
    let mut text = match task {
        Some(task) => format!("Removed {what} of task '{}'", escape_controls(task)),
        None => format!("Removed {what}"),
    };
    // Nothing removed for a task is most likely a misspelt name: say which tasks do have
    // results.
    if removed == 0
        && let Some(task) = task
    {
        let mut tasks: Vec<String> = store.cache_entries()?.into_iter().map(|e| e.task).collect();
        tasks.sort();
        tasks.dedup();
        if tasks.is_empty() {
            text.push_str("; the cache is empty");
        } else if !tasks.iter().any(|t| t == task) {
            text.push_str(&format!(
                "; the cache holds results of: {}",
                escape_controls(&tasks.join(", "))
            ));
        }
    }
    text.push('\n');
    Ok(text)
}
