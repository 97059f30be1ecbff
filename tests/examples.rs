//! Runs the example programs and checks what they print, as a user running
//! `cargo run --example <name>` would read it.
//!
//! `cargo test` builds the examples before it runs the tests; with a target filter such as
//! `cargo test --test examples` it does not, so build them first with `cargo build --examples`.
//! Each example starts its own server on 127.0.0.1 and needs no network beyond it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Longest any example may run; the slowest (monitor) takes about a second here.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// `target/debug/examples/<name>`: the test binary is `target/debug/deps/examples-<hash>`.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let target_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = target_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "the example binary {} is missing: run `cargo build --examples` first \
                 (plain `cargo test` builds the examples, `cargo test --test examples` does not)",
                path.display()
            )
        });
    // `cargo test --test examples` would otherwise test an old build without a word.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        root.join("examples").join(format!("{name}.rs")),
        root.join("flowcore"),
        root.join("flowmacros"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    if let Some(newer) = sources.iter().find_map(|s| newer_than(s, built)) {
        panic!(
            "the example binary {} is older than {}: run `cargo build --examples` first \
             (plain `cargo test` builds the examples, `cargo test --test examples` does not)",
            path.display(),
            newer.display()
        );
    }
    path
}

/// A file at or under `path` modified after `time` (`.rs` and `.toml` files only, in
/// directories).
fn newer_than(path: &Path, time: SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs" || e == "toml"))
            .find_map(|p| newer_than(&p, time));
    }
    meta.modified()
        .ok()
        .filter(|&modified| modified > time)
        .map(|_| path.to_owned())
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Panics with everything the example printed unless it exited successfully.
    fn assert_success(&self, name: &str) {
        assert!(
            self.status.success(),
            "example {name} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// Panics unless some line of stdout contains every one of `parts`.
    fn assert_line(&self, parts: &[&str]) {
        assert!(
            self.stdout
                .lines()
                .any(|line| parts.iter().all(|p| line.contains(p))),
            "no line of stdout contains all of {parts:?}\n--- stdout ---\n{}",
            self.stdout
        );
    }

    fn lines_with(&self, part: &str) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.contains(part)).collect()
    }
}

/// Runs an example with `args`, without colours, and waits at most [`TIME_LIMIT`].
fn run_example(name: &str, args: &[&str]) -> Output {
    let mut child = Command::new(example_binary(name))
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));

    // Read both pipes on their own threads so that a full pipe never blocks the child.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });

    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the example") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap().unwrap_or_default();
            panic!("example {name} ran longer than {TIME_LIMIT:?}; it printed:\n{stdout}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap().expect("stdout is UTF-8"),
        stderr: err.join().unwrap().expect("stderr is UTF-8"),
    }
}

#[test]
fn hello_prints_the_greeting_and_the_runs_states() {
    let out = run_example("hello", &[]);
    out.assert_success("hello");
    out.assert_line(&["Hello, world!"]);
    out.assert_line(&[
        "INFO",
        "Flow run '",
        "Beginning flow run",
        "for flow 'hello'",
    ]);
    out.assert_line(&["Task run 'say_hello-", "Finished in state Completed()"]);
    out.assert_line(&["Flow run '", "Finished in state Completed()"]);
    out.assert_line(&["for flow 'hello': Completed"]);
    assert!(
        !out.stdout.contains('\x1b'),
        "NO_COLOR=1 leaves no ANSI codes"
    );
}

#[test]
fn etl_loads_ten_rows_and_the_second_run_takes_extract_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("complaints.db");
    let db_arg = db.to_str().expect("the temp path is UTF-8");
    let out = run_example("etl", &[db_arg]);
    out.assert_success("etl");

    out.assert_line(&["SQLite database: ", db_arg]);
    let extract_ends = out.lines_with("Task run 'extract-");
    let extract_ends: Vec<_> = extract_ends
        .iter()
        .filter(|l| l.contains("Finished in state"))
        .collect();
    assert_eq!(
        extract_ends.len(),
        2,
        "extract runs once per flow run:\n{}",
        out.stdout
    );
    assert!(
        extract_ends[0].contains("Finished in state Completed()"),
        "{}",
        extract_ends[0]
    );
    assert!(
        extract_ends[1].contains("Finished in state Cached("),
        "{}",
        extract_ends[1]
    );
    out.assert_line(&["extract-", "Cached", "0", "hit"]);
    out.assert_line(&["extract in the second run: Cached"]);
    for task in ["transform", "create_table", "load"] {
        let done = out
            .lines_with(&format!("Task run '{task}-"))
            .into_iter()
            .filter(|l| l.contains("Finished in state Completed()"))
            .count();
        assert_eq!(done, 2, "{task} completes in both runs:\n{}", out.stdout);
    }
    assert_eq!(
        out.lines_with("for flow 'etl': Completed").len(),
        2,
        "{}",
        out.stdout
    );
    out.assert_line(&["The complaints server received 1 request"]);
    out.assert_line(&[db_arg, "holds 10 rows"]);
    assert!(!out.stdout.contains("Failed!"), "{}", out.stdout);

    // The database is there for the user to inspect, with one row per complaint.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT complaint_id) FROM complaints",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 10);
    drop(conn);

    // Run again: INSERT OR REPLACE keeps 10 rows, not 20.
    let again = run_example("etl", &[db_arg]);
    again.assert_success("etl");
    again.assert_line(&[db_arg, "holds 10 rows"]);
}

#[test]
fn retries_fails_twice_then_completes_on_the_third_attempt() {
    let out = run_example("retries", &[]);
    out.assert_success("retries");
    out.assert_line(&[
        "WARN",
        "Task run 'fetch_quote-",
        "Attempt 1/4 failed: ",
        "503",
        "Retrying in 500ms",
    ]);
    out.assert_line(&["Attempt 2/4 failed: ", "Retrying in 500ms"]);
    assert!(
        out.lines_with("Attempt 3/4 failed").is_empty(),
        "{}",
        out.stdout
    );
    out.assert_line(&["Task run 'fetch_quote-", "Finished in state Completed()"]);
    out.assert_line(&["Flow run '", "Finished in state Completed()"]);
    // The summary row: name, state, attempts.
    out.assert_line(&["fetch_quote-", "Completed", " 3 "]);
    out.assert_line(&["after 3 attempts"]);
}

#[test]
fn monitor_records_failed_checks_and_still_completes() {
    let out = run_example("monitor", &["--interval", "100ms"]);
    out.assert_success("monitor");
    let failed = out
        .lines_with("Task run 'check_status-")
        .into_iter()
        .filter(|l| l.contains("Finished in state Failed('status code 503')"))
        .count();
    assert_eq!(failed, 2, "{}", out.stdout);
    out.assert_line(&["Task run 'check_status-", "Finished in state Completed()"]);
    out.assert_line(&["Flow run '", "Finished in state Completed()"]);
    out.assert_line(&["for flow 'monitor': Completed — 2 task runs failed and were handled"]);
    // Summary rows of the failed checks carry the message.
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("check_status-")
                && l.contains("Failed")
                && l.ends_with("status code 503"))
            .count(),
        2,
        "{}",
        out.stdout
    );
}
