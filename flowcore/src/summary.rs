//! The table a flow run logs when it finishes, and how it writes durations.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use crate::record::{CacheStatus, FlowRunRecord, TaskRunRecord};
use crate::state::StateKind;
use crate::terminal::{display_width, escape_controls};

/// Rows shown before the table is cut short; the record keeps every run.
const MAX_ROWS: usize = 100;

/// A flow run's summary, rendered by `Display`, names and errors with their control
/// characters escaped (see [`crate::terminal`]), each task run on one line:
///
/// ```text
/// Flow run 'enchanted-peacock' for flow 'etl': Completed — 1 task run failed and was handled
/// Task run       State      Attempts  Duration  Cache  Error
/// extract-a8e    Completed         1    12.0ms  miss
/// load-77c       Failed            3     2.31s         disk full
/// 2 task runs: 1 Completed, 1 Failed · total 2.41s
/// ```
pub struct Summary<'a> {
    run: &'a FlowRunRecord,
}

impl<'a> Summary<'a> {
    pub(crate) fn new(run: &'a FlowRunRecord) -> Self {
        Summary { run }
    }

    /// The first line's verdict: `"Completed"`, `"Completed — 1 task run failed and was
    /// handled"`, `"Failed: disk full"`, and `" · not recorded: disk full"` after it when the
    /// run store does not hold the run ([`FlowRunRecord::not_recorded`]). The state's message
    /// as it is: `Display` escapes it.
    pub fn headline(&self) -> String {
        let state = self.run.state();
        let failed = self
            .run
            .task_runs
            .iter()
            .filter(|r| r.state().is_failed())
            .count();
        let verdict = self.verdict(state, failed);
        match &self.run.not_recorded {
            Some(why) => format!("{verdict} · not recorded: {why}"),
            None => verdict,
        }
    }

    fn verdict(&self, state: &crate::state::State, failed: usize) -> String {
        match state.kind {
            StateKind::Completed if failed == 1 => {
                "Completed — 1 task run failed and was handled".to_owned()
            }
            StateKind::Completed if failed > 1 => {
                format!("Completed — {failed} task runs failed and were handled")
            }
            kind => match &state.message {
                Some(message) if kind.is_failed() || kind == StateKind::Cancelled => {
                    format!("{kind}: {message}")
                }
                _ => kind.to_string(),
            },
        }
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run;
        writeln!(
            f,
            "Flow run '{}' for flow '{}': {}",
            escape_controls(&run.name),
            escape_controls(&run.flow),
            escape_controls(&self.headline())
        )?;

        let header = [
            "Task run", "State", "Attempts", "Duration", "Cache", "Error",
        ];
        let rows = rows(run);
        if !rows.is_empty() {
            // The Cache and Error columns only when some run has something to show in them.
            let shown: Vec<usize> = (0..header.len())
                .filter(|&c| c < 4 || rows.iter().any(|(row, _)| !row[c].is_empty()))
                .collect();
            // In columns on screen: a name in kanji is twice as wide as its characters.
            let mut widths = header.map(display_width);
            for (row, _) in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(display_width(cell));
                }
            }
            write_row(f, &widths, &header.map(str::to_owned), &shown)?;
            for (row, _) in &rows {
                write_row(f, &widths, row, &shown)?;
            }
            let shown_runs: usize = rows.iter().map(|r| r.1).sum();
            if run.task_runs.len() > shown_runs {
                writeln!(
                    f,
                    "… and {} more task runs",
                    run.task_runs.len() - shown_runs
                )?;
            }
        }
        for sub in &run.subflow_runs {
            writeln!(
                f,
                "Subflow run '{}' for flow '{}': {}",
                escape_controls(&sub.name),
                escape_controls(&sub.flow),
                escape_controls(&sub.summary().headline())
            )?;
        }

        let counts = state_counts(&run.task_run_counts());
        let n = run.task_runs.len();
        let plural = if n == 1 { "" } else { "s" };
        let total = run.duration().map(format_duration).unwrap_or_default();
        if counts.is_empty() {
            write!(f, "0 task runs · total {total}")
        } else {
            write!(f, "{n} task run{plural}: {counts} · total {total}")
        }
    }
}

/// The table's rows (at most [`MAX_ROWS`]), each with how many task runs it stands for. The
/// runs of one task started by `map` are folded into one row, where the first of them was:
/// `transform ×1000`, `998 Completed, 2 Failed`, their attempts in all, the longest duration,
/// cache hits, and the first error.
fn rows(run: &FlowRunRecord) -> Vec<([String; 6], usize)> {
    let mut rows: Vec<([String; 6], usize)> = Vec::new();
    // For each mapped task, its row's index.
    let mut folded: HashMap<&str, usize> = HashMap::new();
    let mut members: Vec<Vec<&TaskRunRecord>> = Vec::new();
    for r in &run.task_runs {
        if r.map_index.is_some() {
            if let Some(&i) = folded.get(&*r.task) {
                members[i].push(r);
                continue;
            }
            if rows.len() < MAX_ROWS {
                folded.insert(&r.task, rows.len());
                members.push(vec![r]);
                rows.push((Default::default(), 0));
            }
            continue;
        }
        if rows.len() < MAX_ROWS {
            members.push(vec![r]);
            rows.push((Default::default(), 0));
        }
    }
    for ((row, count), runs) in rows.iter_mut().zip(&members) {
        *count = runs.len();
        *row = match runs.as_slice() {
            [r] if r.map_index.is_none() => [
                r.name().to_string(),
                r.state().kind.to_string(),
                r.attempts.to_string(),
                r.duration().map(format_duration).unwrap_or_default(),
                r.cache.as_str().to_owned(),
                r.error().unwrap_or_default().to_owned(),
            ],
            runs => fold(runs),
        };
        // Names and errors are user code's: escaped, line feeds too, so that each row is one
        // line and the widths are those of the text printed.
        for cell in row.iter_mut() {
            if let Cow::Owned(escaped) = escape_controls(cell) {
                *cell = escaped;
            }
        }
    }
    rows
}

/// Counts by state as the summary and the graph write them: `998 Completed, 2 Failed`.
pub(crate) fn state_counts(counts: &BTreeMap<StateKind, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.join(", ")
}

fn fold(runs: &[&TaskRunRecord]) -> [String; 6] {
    let mut states: BTreeMap<StateKind, usize> = BTreeMap::new();
    let mut hits = 0;
    for r in runs {
        *states.entry(r.state().kind).or_default() += 1;
        hits += usize::from(r.cache == CacheStatus::Hit);
    }
    let states = state_counts(&states);
    let mut errors = runs.iter().filter_map(|r| r.error());
    let error = match (errors.next(), errors.count()) {
        (Some(first), 0) => first.to_owned(),
        (Some(first), more) => format!("{first} (and {more} more)"),
        (None, _) => String::new(),
    };
    [
        format!("{} ×{}", runs[0].task, runs.len()),
        states,
        runs.iter()
            .map(|r| u64::from(r.attempts))
            .sum::<u64>()
            .to_string(),
        runs.iter()
            .filter_map(|r| r.duration())
            .max()
            .map(format_duration)
            .unwrap_or_default(),
        if hits > 0 {
            format!("{hits} hit")
        } else {
            String::new()
        },
        error,
    ]
}

/// The `shown` columns; numbers right-aligned, text left-aligned, two spaces between. Padded
/// by hand: `format!`'s width counts characters, not the columns they take.
fn write_row(
    f: &mut fmt::Formatter<'_>,
    widths: &[usize; 6],
    cells: &[String; 6],
    shown: &[usize],
) -> fmt::Result {
    let mut line = String::new();
    for &i in shown {
        let cell = &cells[i];
        if i > 0 {
            line.push_str("  ");
        }
        let pad = " ".repeat(widths[i].saturating_sub(display_width(cell)));
        if i == 2 || i == 3 {
            line.push_str(&pad);
            line.push_str(cell);
        } else {
            line.push_str(cell);
            line.push_str(&pad);
        }
    }
    writeln!(f, "{}", line.trim_end())
}

/// A duration as summaries print it: `850µs`, `12.3ms`, `2.41s`, `3m 20s`, `2h 5m 0s`,
/// `1d 1h 1m 1s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(flowcore::summary::format_duration(Duration::from_millis(2_414)), "2.41s");
/// ```
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else if d < Duration::from_secs(60) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        let (days, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
        match (days, h) {
            (0, 0) => format!("{m}m {s}s"),
            (0, _) => format!("{h}h {m}m {s}s"),
            _ => format!("{days}d {h}h {m}m {s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(format_duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(format_duration(Duration::from_millis(2_414)), "2.41s");
        assert_eq!(format_duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(format_duration(Duration::from_secs(7_500)), "2h 5m 0s");
        assert_eq!(format_duration(Duration::from_secs(90_061)), "1d 1h 1m 1s");
    }
}
