//! Runs the example programs and checks what they print, as a user running
//! `cargo run --example <name>` would read it.
//!
//! `cargo test` builds the examples before it runs the tests; with a target filter such as
//! `cargo test --test examples` it does not, so build them first with `cargo build --examples`.
//! Each example starts its own server on 127.0.0.1 (or uses the test's) and needs no network
//! beyond it. Every run gets `FLOWCORE_HOME` set to a temporary directory of its test, so the
//! examples' runs and cached results never land in, or come from, the repository's store. The
//! ETL example's cache test also runs with `FLOWCORE_STORE` naming a PostgreSQL database.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[macro_use]
mod support;

use flowcore::Store;
use support::backends::{Kind, TestStore};
use support::example_binary;

store_tests!(etl_run_twice_takes_extract_from_the_cache_the_second_time);

/// Longest any example may run; the slowest takes about a second here.
const TIME_LIMIT: Duration = Duration::from_secs(60);

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

/// A temporary `FLOWCORE_HOME`: the run store of the example runs given it.
fn flowcore_home() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Runs an example with `args` and `FLOWCORE_HOME=home`, without colours, and waits at most
/// [`TIME_LIMIT`].
fn run_example(name: &str, args: &[&str], home: &Path) -> Output {
    run_example_on(name, args, home, None)
}

/// [`run_example`], recording to `store` (`FLOWCORE_STORE`: a path or a URL) when given.
fn run_example_on(name: &str, args: &[&str], home: &Path, store: Option<&OsStr>) -> Output {
    let mut command = Command::new(example_binary(name));
    if let Some(store) = store {
        command.env("FLOWCORE_STORE", store);
    }
    let mut child = command
        .args(args)
        .env("FLOWCORE_HOME", home)
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
    let home = flowcore_home();
    let out = run_example("hello", &[], home.path());
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
fn thumbnails_hands_its_images_to_two_worker_processes_and_gathers_them_in_order() {
    let home = flowcore_home();
    let out = run_example("thumbnails", &["--images", "20"], home.path());
    out.assert_success("thumbnails");
    let made: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("photo-"))
        .collect();
    assert_eq!(made.len(), 20, "{}", out.stdout);
    for (i, line) in made.iter().enumerate() {
        assert!(
            line.starts_with(&format!(
                "photo-{:03}.jpg at 128px: 1664 bytes, by worker pid ",
                i + 1
            )),
            "in order: {line}"
        );
        let pid: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert_ne!(pid, std::process::id());
    }
    out.assert_line(&["20 thumbnails made by "]);
    // Each image is one delayed task run, Completed once, in the store the example used.
    let store = Store::open_existing(home.path().join("flowcore.db")).unwrap();
    let runs = store
        .flow_runs(&flowcore::store::RunFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 1);
    let run = store.flow_run(runs[0].id).unwrap().unwrap();
    assert_eq!(run.task_runs.len(), 20);
    for t in &run.task_runs {
        assert_eq!(
            t.history.kinds(),
            [
                flowcore::StateKind::Scheduled,
                flowcore::StateKind::Pending,
                flowcore::StateKind::Running,
                flowcore::StateKind::Completed
            ]
        );
    }
}

/// The state `task` finished in, from the "Task run '<task>-…' - Finished in state …" log lines.
fn finished_states<'a>(out: &'a Output, task: &str) -> Vec<&'a str> {
    out.lines_with(&format!("Task run '{task}-"))
        .into_iter()
        .filter_map(|l| l.split_once("Finished in state ").map(|(_, state)| state))
        .collect()
}

/// Starts a complaints service like the etl example's own on a free port of 127.0.0.1, in the
/// background, serving 10 complaints of its own. Returns its URL and how many requests it
/// has received.
fn start_counting_server() -> (String, Arc<AtomicUsize>) {
    let complaints: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({
                "complaint_id": 9_000_000 + i,
                "date_received": format!("2024-03-{:02}", i + 1),
                "product": "Debt collection",
                "sub_product": if i % 2 == 0 { Some("Medical debt") } else { None },
                "issue": "Attempts to collect debt not owed",
                "sub_issue": null,
                "company": format!("Company {i}"),
                "state": "TX",
                "zip_code": "75201",
                "submitted_via": "Web",
                "company_response": "Closed with explanation",
                "timely": true,
            })
        })
        .collect();
    let body = serde_json::to_string(&complaints).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/complaints",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/complaints", listener.local_addr().unwrap());
    // The server lives as long as the test binary, on its own thread and runtime.
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, requests)
}

fn count_complaints(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(DISTINCT complaint_id) FROM complaints",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Two processes, one run store (the default file, or a PostgreSQL database): the second
/// takes `extract` from the cache the first stored.
async fn etl_run_twice_takes_extract_from_the_cache_the_second_time(ts: &TestStore) {
    let on_postgres = ts.kind() == Kind::Postgres;
    let (url, requests) = start_counting_server();
    let home = flowcore_home();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("complaints.db");
    let db_arg = db.to_str().expect("the temp path is UTF-8");
    let args = ["--source", url.as_str(), db_arg];

    let store = on_postgres.then(|| ts.target());
    let first = run_example_on("etl", &args, home.path(), store);
    first.assert_success("etl");
    first.assert_line(&["SQLite database: ", db_arg]);
    first.assert_line(&["Complaints service: ", &url]);
    assert!(
        !first.stdout.contains("started by this program"),
        "with --source the example starts no service:\n{}",
        first.stdout
    );
    let store_line = match store {
        Some(url) => Store::describe_location(url),
        None => home.path().join("flowcore.db").display().to_string(),
    };
    first.assert_line(&["Run store: ", &store_line]);
    assert_eq!(finished_states(&first, "extract"), ["Completed()"]);
    for task in ["transform", "create_table", "load"] {
        assert_eq!(finished_states(&first, task), ["Completed()"], "{task}");
    }
    first.assert_line(&["for flow 'etl': Completed"]);
    first.assert_line(&["extract ended in state Completed()", "cached for a day"]);
    first.assert_line(&[db_arg, "holds 10 rows"]);
    first.assert_line(&["table artifact 'loaded-complaints'"]);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    // `load` kept the rows it loaded with its task run: ten rows of the columns of `Row`.
    let used = match store {
        Some(url) => Store::open(url),
        None => Store::open(home.path().join("flowcore.db")),
    };
    let loaded = used.unwrap().artifact_history("loaded-complaints").unwrap();
    assert_eq!(loaded.len(), 1);
    let (columns, rows) = loaded[0].table().expect("a table artifact");
    assert_eq!(
        columns,
        [
            "complaint_id",
            "date_received",
            "product",
            "issue",
            "company",
            "state"
        ]
    );
    assert_eq!(rows.len(), 10);
    assert!(loaded[0].task_run_id.is_some(), "kept with load's task run");

    // Another process, the same run store: extract's result comes from the cache.
    let second = run_example_on("etl", &args, home.path(), store);
    second.assert_success("etl");
    assert_eq!(
        finished_states(&second, "extract"),
        ["Cached('cache hit')"],
        "{}",
        second.stdout
    );
    second.assert_line(&["extract-", "Cached", "0", "hit"]);
    second.assert_line(&[
        "extract ended in state Cached",
        "the service was not called",
    ]);
    for task in ["transform", "create_table", "load"] {
        assert_eq!(finished_states(&second, task), ["Completed()"], "{task}");
    }
    second.assert_line(&["for flow 'etl': Completed"]);
    second.assert_line(&[db_arg, "holds 10 rows"]);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the second run did not call the service"
    );
    for out in [&first, &second] {
        assert!(!out.stdout.contains("Failed!"), "{}", out.stdout);
    }

    // INSERT OR REPLACE keeps 10 rows, not 20; the database is there to inspect.
    assert_eq!(count_complaints(&db), 10);
}

#[test]
fn etl_with_its_own_service_hits_the_cache_though_the_port_changes() {
    let home = flowcore_home();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("complaints.db");
    let db_arg = db.to_str().expect("the temp path is UTF-8");

    let first = run_example("etl", &[db_arg], home.path());
    first.assert_success("etl");
    first.assert_line(&[
        "Complaints service: http://127.0.0.1:",
        "started by this program",
    ]);
    assert_eq!(finished_states(&first, "extract"), ["Completed()"]);
    first.assert_line(&["The complaints service received 1 request"]);

    // A new service on another port: the cache key is the URL's path, so this is a hit.
    let second = run_example("etl", &[db_arg], home.path());
    second.assert_success("etl");
    let port = |out: &Output| {
        out.lines_with("Complaints service: ")
            .first()
            .map(|l| l.to_string())
            .unwrap_or_default()
    };
    assert_ne!(
        port(&first),
        port(&second),
        "each run starts its own service"
    );
    assert_eq!(finished_states(&second, "extract"), ["Cached('cache hit')"]);
    second.assert_line(&["The complaints service received 0 requests"]);
    second.assert_line(&[db_arg, "holds 10 rows"]);
    assert_eq!(count_complaints(&db), 10);
}

#[test]
fn retries_fails_twice_then_completes_on_the_third_attempt() {
    let home = flowcore_home();
    let out = run_example("retries", &[], home.path());
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
fn resume_continues_a_crashed_flow_run_without_redoing_its_completed_steps() {
    let home = flowcore_home();
    let crashed = run_example("resume", &["--crash-after", "2"], home.path());
    assert!(
        !crashed.status.success(),
        "the process aborts after step 2, but exited with {}\n{}",
        crashed.status,
        crashed.stdout
    );
    let name_of = |out: &Output| {
        out.lines_with("Flow run: ")
            .first()
            .and_then(|l| l.split_once("Flow run: "))
            .map(|(_, name)| name.trim().to_owned())
            .unwrap_or_else(|| panic!("no \"Flow run: NAME\" line:\n{}", out.stdout))
    };
    let name = name_of(&crashed);
    let first_line = crashed
        .stdout
        .lines()
        .position(|l| l.starts_with("Flow run: "));
    let step_line = crashed
        .stdout
        .lines()
        .position(|l| l.contains("step 1 running"));
    assert!(
        first_line < step_line,
        "the name comes before the steps:\n{}",
        crashed.stdout
    );
    let running = |out: &Output, n: u32| out.lines_with(&format!("step {n} running")).len();
    assert_eq!(
        [1, 2, 3, 4, 5].map(|n| running(&crashed, n)),
        [1, 1, 0, 0, 0],
        "{}",
        crashed.stdout
    );
    assert!(
        crashed.lines_with("Result:").is_empty(),
        "{}",
        crashed.stdout
    );

    let resumed = run_example("resume", &["--resume", &name], home.path());
    resumed.assert_success("resume");
    assert_eq!(name_of(&resumed), name, "the same flow run goes on");
    assert_eq!(
        [1, 2, 3, 4, 5].map(|n| running(&resumed, n)),
        [0, 0, 1, 1, 1],
        "{}",
        resumed.stdout
    );
    assert_eq!(
        finished_states(&resumed, "step")
            .iter()
            .filter(|s| s.starts_with("Cached('output reused from task run 'step-"))
            .count(),
        2,
        "{}",
        resumed.stdout
    );
    resumed.assert_line(&[&format!(
        "Flow run '{name}' for flow 'five steps': Completed"
    )]);
    resumed.assert_line(&["Result: 12345"]);
}

#[test]
fn visualize_draws_the_etl_graph_with_its_data_and_wait_for_edges() {
    let home = flowcore_home();
    let out_dir = home.path().join("graphs");
    let out = run_example("visualize", &[out_dir.to_str().unwrap()], home.path());
    out.assert_success("visualize");

    // Node ids follow the order the task runs finished, which varies: name the edges by task.
    let mermaid = std::fs::read_to_string(out_dir.join("etl.mmd")).unwrap();
    let mut task_of = std::collections::HashMap::new();
    for line in mermaid.lines().map(str::trim) {
        if let Some((id, label)) = line.split_once("[\"") {
            let task = label.trim_end_matches("\"]").rsplit_once('-').unwrap().0;
            task_of.insert(id.to_owned(), task.to_owned());
        }
    }
    let mut edges = Vec::new();
    for line in mermaid.lines().map(str::trim) {
        let parts: Vec<&str> = line.split(' ').collect();
        if let [from, arrow @ ("-->" | "-.->"), to] = parts[..] {
            edges.push(format!("{} {arrow} {}", task_of[from], task_of[to]));
        }
    }
    edges.sort();
    assert_eq!(
        edges,
        [
            "create_table -.-> load",
            "extract --> transform",
            "transform --> load"
        ],
        "{mermaid}"
    );
    assert!(mermaid.starts_with("---\ntitle: \"flow run '"), "{mermaid}");
    let dot = std::fs::read_to_string(out_dir.join("etl.dot")).unwrap();
    assert!(dot.starts_with("digraph {"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 3, "{dot}");
    out.assert_line(&["Wrote", "etl.dot"]);
    out.assert_line(&["Wrote", "etl.mmd"]);
}
