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
    /// What a flow run gathered for its summary instead of its task runs' records (see
    /// [`Table`]); `None`: made from the record's task runs.
    table: Option<&'a Table>,
}

impl<'a> Summary<'a> {
    pub(crate) fn new(run: &'a FlowRunRecord) -> Self {
        Summary { run, table: None }
    }

    /// The summary of a flow run that gathered `table` rather than its task runs' records.
    pub(crate) fn of_table(run: &'a FlowRunRecord, table: &'a Table) -> Self {
        Summary {
            run,
            table: Some(table),
        }
    }

    /// The first line's verdict: `"Completed"`, `"Completed — 1 task run failed and was
    /// handled"`, `"Failed: disk full"`, and `" · not recorded: disk full"` after it when the
    /// run store does not hold the run ([`FlowRunRecord::not_recorded`]). The state's message
    /// as it is: `Display` escapes it.
    pub fn headline(&self) -> String {
        let failed = match self.table {
            Some(table) => table.failed(),
            None => self
                .run
                .task_runs
                .iter()
                .filter(|r| r.state().is_failed())
                .count(),
        };
        headline(self.run, failed)
    }
}

fn headline(run: &FlowRunRecord, failed: usize) -> String {
    let verdict = verdict(run.state(), failed);
    match &run.not_recorded {
        Some(why) => format!("{verdict} · not recorded: {why}"),
        None => verdict,
    }
}

fn verdict(state: &crate::state::State, failed: usize) -> String {
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

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run;
        let made;
        let table = match self.table {
            Some(table) => table,
            None => {
                made = Table::of(run);
                &made
            }
        };
        writeln!(
            f,
            "Flow run '{}' for flow '{}': {}",
            escape_controls(&run.name),
            escape_controls(&run.flow),
            escape_controls(&headline(run, table.failed()))
        )?;

        let header = [
            "Task run", "State", "Attempts", "Duration", "Cache", "Error",
        ];
        let rows = table.rows();
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
            if table.task_runs > shown_runs {
                writeln!(f, "… and {} more task runs", table.task_runs - shown_runs)?;
            }
        }
        for sub in &table.subflows {
            writeln!(
                f,
                "Subflow run '{}' for flow '{}': {}",
                escape_controls(&sub.name),
                escape_controls(&sub.flow),
                escape_controls(&sub.headline)
            )?;
        }

        let counts = state_counts(&table.counts());
        let n = table.task_runs;
        let plural = if n == 1 { "" } else { "s" };
        let total = run.duration().map(format_duration).unwrap_or_default();
        if counts.is_empty() {
            write!(f, "0 task runs · total {total}")
        } else {
            write!(f, "{n} task run{plural}: {counts} · total {total}")
        }
    }
}

/// What a flow run's summary shows of its task runs and subflow runs, gathered one run at a
/// time as each ends: counts by state, the first [`MAX_ROWS`] rows, and each subflow run's
/// headline. A flow run whose record no one reads but whose summary is logged keeps this
/// instead of every task run's record: a few kilobytes however many task runs it has.
#[derive(Debug, Default)]
pub(crate) struct Table {
    task_runs: usize,
    /// Task runs by final state, in the order the states were first seen.
    by_state: Vec<(StateKind, usize)>,
    rows: Vec<Row>,
    /// For each mapped task, its row's index.
    folded: HashMap<Cow<'static, str>, usize>,
    subflows: Vec<SubflowLine>,
}

#[derive(Debug)]
enum Row {
    /// A task run's own row, its cells as written then.
    One([String; 6]),
    /// The runs of one task started by `map`, folded into one row.
    Mapped(Fold),
}

/// The runs of a mapped task: `transform ×1000`, `998 Completed, 2 Failed`, their attempts in
/// all, the longest duration, cache hits, and the first error (with how many more there were).
#[derive(Debug)]
struct Fold {
    task: Cow<'static, str>,
    runs: usize,
    states: BTreeMap<StateKind, usize>,
    attempts: u64,
    longest: Option<Duration>,
    hits: usize,
    first_error: Option<String>,
    more_errors: usize,
}

#[derive(Debug)]
struct SubflowLine {
    name: String,
    flow: String,
    headline: String,
}

impl Table {
    /// The table of a finished flow run's record.
    fn of(run: &FlowRunRecord) -> Self {
        let mut table = Table::default();
        for task_run in &run.task_runs {
            table.add(task_run);
        }
        for sub in &run.subflow_runs {
            table.add_subflow(sub, &sub.summary().headline());
        }
        table
    }

    /// Takes in a finished task run.
    pub(crate) fn add(&mut self, r: &TaskRunRecord) {
        self.task_runs += 1;
        let kind = r.state().kind;
        match self.by_state.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.by_state.push((kind, 1)),
        }
        if r.map_index.is_some() {
            let row = match self.folded.get(&r.task) {
                Some(&i) => i,
                None if self.rows.len() < MAX_ROWS => {
                    self.folded.insert(r.task.clone(), self.rows.len());
                    self.rows.push(Row::Mapped(Fold::new(r.task.clone())));
                    self.rows.len() - 1
                }
                None => return,
            };
            if let Row::Mapped(fold) = &mut self.rows[row] {
                fold.add(r);
            }
        } else if self.rows.len() < MAX_ROWS {
            self.rows.push(Row::One([
                r.name().to_string(),
                kind.to_string(),
                r.attempts.to_string(),
                r.duration().map(format_duration).unwrap_or_default(),
                r.cache.as_str().to_owned(),
                r.error().unwrap_or_default().to_owned(),
            ]));
        }
    }

    /// Takes in a finished subflow run's line, `headline` its [`Summary::headline`].
    pub(crate) fn add_subflow(&mut self, run: &FlowRunRecord, headline: &str) {
        self.subflows.push(SubflowLine {
            name: run.name.clone(),
            flow: run.flow.to_string(),
            headline: headline.to_owned(),
        });
    }

    /// Task runs that ended Failed or TimedOut.
    fn failed(&self) -> usize {
        self.by_state
            .iter()
            .filter(|(k, _)| k.is_failed())
            .map(|(_, n)| n)
            .sum()
    }

    fn counts(&self) -> BTreeMap<StateKind, usize> {
        self.by_state.iter().copied().collect()
    }

    /// The rows as printed, each with how many task runs it stands for. Names and errors are
    /// user code's: escaped, line feeds too, so that each row is one line and the widths are
    /// those of the text printed.
    fn rows(&self) -> Vec<([String; 6], usize)> {
        self.rows
            .iter()
            .map(|row| {
                let (mut cells, runs) = match row {
                    Row::One(cells) => (cells.clone(), 1),
                    Row::Mapped(fold) => (fold.cells(), fold.runs),
                };
                for cell in cells.iter_mut() {
                    if let Cow::Owned(escaped) = escape_controls(cell) {
                        *cell = escaped;
                    }
                }
                (cells, runs)
            })
            .collect()
    }
}

impl Fold {
    fn new(task: Cow<'static, str>) -> Self {
        Fold {
            task,
            runs: 0,
            states: BTreeMap::new(),
            attempts: 0,
            longest: None,
            hits: 0,
            first_error: None,
            more_errors: 0,
        }
    }

    fn add(&mut self, r: &TaskRunRecord) {
        self.runs += 1;
        *self.states.entry(r.state().kind).or_default() += 1;
        self.attempts += u64::from(r.attempts);
        self.longest = self.longest.max(r.duration());
        self.hits += usize::from(r.cache == CacheStatus::Hit);
        if let Some(error) = r.error() {
            match self.first_error {
                None => self.first_error = Some(error.to_owned()),
                Some(_) => self.more_errors += 1,
            }
        }
    }

    fn cells(&self) -> [String; 6] {
        let error = match (&self.first_error, self.more_errors) {
            (Some(first), 0) => first.clone(),
            (Some(first), more) => format!("{first} (and {more} more)"),
            (None, _) => String::new(),
        };
        [
            format!("{} ×{}", self.task, self.runs),
            state_counts(&self.states),
            self.attempts.to_string(),
            self.longest.map(format_duration).unwrap_or_default(),
            if self.hits > 0 {
                format!("{} hit", self.hits)
            } else {
                String::new()
            },
            error,
        ]
    }
}

/// Counts by state as the summary and the graph write them: `998 Completed, 2 Failed`.
pub(crate) fn state_counts(counts: &BTreeMap<StateKind, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.join(", ")
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
