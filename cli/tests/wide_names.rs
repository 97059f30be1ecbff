//! Names that take two columns a character on screen (a task named `データ取得`, a flow named
//! `日次集計`) line up in every table: the `flowcore` command's (`runs ls`, `runs show`) and the
//! runtime's end-of-run summary (`runs summary` prints it as the flow logged it). Each table's
//! column after the wide name must start at the same column on screen in every row.

use std::path::Path;
use std::process::Command;

use flowcore::{Store, flow, task};

#[task(name = "データ取得")]
async fn fetch() -> u32 {
    20
}

#[task]
async fn load(rows: u32) -> u32 {
    rows + 1
}

#[flow(name = "日次集計")]
async fn wide() -> u32 {
    let rows = fetch().await;
    load(rows).await
}

#[flow(name = "daily")]
async fn narrow() -> u32 {
    load(1).await
}

/// Columns on screen, counted here without the code under test: the only wide characters in
/// these tables are the names' kana and kanji (U+3000 and up), two columns each.
fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| if c as u32 >= 0x3000 { 2 } else { 1 })
        .sum()
}

/// The screen column at which `word` starts in `line`.
fn column_of(line: &str, word: &str) -> usize {
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    columns(&line[..at])
}

/// Asserts that in each of `lines` (a heading, then rows) the heading's `heading` column and
/// each row's `cell` start at the same screen column.
fn lined_up(lines: &[&str], heading: &str, cell: &str) {
    let expected = column_of(lines[0], heading);
    for line in &lines[1..] {
        assert_eq!(
            column_of(line, cell),
            expected,
            "{cell:?} is not under {heading:?}:\n{}",
            lines.join("\n")
        );
    }
}

fn flowcore(db: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .arg("--store")
        .arg(db)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn wide_names_line_up_in_the_cli_tables_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flowcore.db");
    let store = Store::sqlite(&db).unwrap();
    let (_, wide_run) = store.scope(wide().with_run()).await;
    store.scope(narrow().with_run()).await;
    store.flush().await.unwrap();
    let fetch_run = wide_run.task_runs[0].name().to_string();
    assert!(fetch_run.starts_with("データ取得-"), "{fetch_run}");

    // `runs ls`: the State column, after the Flow column with 日次集計 in it.
    let ls = flowcore(&db, &["runs", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 3, "{ls}");
    assert!(lines[2].contains("日次集計"), "{ls}");
    lined_up(&lines, "State", "Completed");

    // `runs show`: its task runs, データ取得-… above load-….
    let show = flowcore(&db, &["runs", "show", &wide_run.name]);
    let tasks: Vec<&str> = show
        .lines()
        .skip_while(|l| !l.starts_with("Task runs"))
        .skip(1)
        .take(3)
        .collect();
    assert!(tasks[1].starts_with(&fetch_run), "{show}");
    lined_up(&tasks, "State", "Completed");

    // The summary the flow logged, from the runtime's own table.
    let summary = flowcore(&db, &["runs", "summary", &wide_run.name]);
    let rows: Vec<&str> = summary
        .lines()
        .skip_while(|l| !l.starts_with("Task run "))
        .take(3)
        .collect();
    assert!(rows[1].starts_with(&fetch_run), "{summary}");
    lined_up(&rows, "State", "Completed");
    // The same table as the record's own summary.
    assert!(
        wide_run.summary().to_string().contains(rows[1]),
        "{summary}\n{}",
        wide_run.summary()
    );
}
