//! The `flowcore` command on a PostgreSQL run store, run as a real process: `runs show --json`
//! of one flow says the same on PostgreSQL as on SQLite, `runs ls` lists it, `store path`
//! names the database without its password, a database that is missing or refuses the login
//! is one line on stderr, and the dashboard serves the runs.
//!
//! Each test skips (saying why) where no PostgreSQL can be started, and fails then under
//! `FLOWCORE_POSTGRES_TEST=required`, as the harness does (tests/support/postgres.rs).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use flowcore::{FlowRunRecord, Store, flow, task};
use serde_json::{Value, json};
use support::Running;
use support::backends::TestStore;
use tracing_subscriber::layer::SubscriberExt as _;

/// The password the tests put in URLs, which nothing may print.
const PASSWORD: &str = "s3cret";

// ---------------------------------------------------------------------------------------
// The flow, with something of everything a run records.

/// Attempts of `flaky` so far: it fails its first attempt in each flow run, and the flow runs
/// once per store, one after the other.
static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 1, tags = ["http", "flaky"])]
async fn flaky(day: u32) -> Result<u32, String> {
    if FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("connection reset".to_owned());
    }
    tracing::info!("fetched day {day} on the second try");
    Ok(day * 10)
}

#[task(tags = ["http"])]
async fn broken(url: &str) -> Result<String, String> {
    Err(format!("status code 503 from {url}"))
}

#[task(cache_for = "1d")]
async fn expensive(x: u32) -> u32 {
    tracing::warn!("computing {x} the slow way");
    x * 6
}

#[task]
async fn double(x: u32) -> u32 {
    x * 2
}

#[flow(name = "pg-child")]
async fn child(x: u32) -> u32 {
    tracing::info!("child of {x}");
    double(x).await + double(x + 1).await
}

#[flow(name = "pg-everything")]
async fn everything(day: u32, source: String) -> u32 {
    tracing::info!("reading {source} for day {day}");
    let fetched = flaky(day).await.unwrap_or_default();
    // A failed task run the flow handles: the flow run still completes.
    let status = broken("http://status.invalid").await.unwrap_or_default();
    // The second call, with the same input, is a cache hit.
    let cached = expensive(7).await + expensive(7).await;
    let mapped: u32 = flowcore::map(1..=3, double).await.into_iter().sum();
    let sub = child(5).await;
    fetched + status.len() as u32 + cached + mapped + sub
}

/// What the flow returns: 30 + 0 + 84 + 12 + (10 + 12).
const EVERYTHING_OUT: u32 = 148;

/// One run of `everything` recorded in a store.
struct Recorded {
    ts: TestStore,
    run: FlowRunRecord,
}

/// The flow, run once into a SQLite store and once into a PostgreSQL one; `None` (having said
/// why) where PostgreSQL cannot be started. Made once for the test binary: the tests only read.
fn recorded() -> Option<&'static (Recorded, Recorded)> {
    static RECORDED: OnceLock<Option<(Recorded, Recorded)>> = OnceLock::new();
    let mut made_here = false;
    let recorded = RECORDED
        .get_or_init(|| {
            made_here = true;
            let pg = TestStore::postgres("cli_postgres")?;
            let sqlite = TestStore::sqlite();
            // Whatever escaped a scope would land here, and be missing from both stores,
            // rather than in the user's default store.
            Store::memory().install().unwrap();
            // Log lines reach the store in scope through flowcore's layer; none is printed.
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(flowcore::logging::layer_to(std::io::sink, false)),
            )
            .unwrap();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let record = |ts: TestStore| {
                FLAKY_ATTEMPTS.store(0, Ordering::SeqCst);
                let run = runtime.block_on(async {
                    let (out, run) = ts
                        .store()
                        .scope(everything(3, "warehouse".to_owned()).with_run())
                        .await;
                    assert_eq!(out, EVERYTHING_OUT);
                    ts.store().flush().await.unwrap();
                    run
                });
                Recorded { ts, run }
            };
            Some((record(sqlite), record(pg)))
        })
        .as_ref();
    if recorded.is_none() && !made_here {
        // The first caller was told why; each test that skips says so.
        support::Postgres::shared();
    }
    recorded
}

// ---------------------------------------------------------------------------------------
// Running the tool.

/// `flowcore ARGS…`, uncoloured, with `envs` and nothing else from the environment choosing
/// the store.
fn flowcore_with(args: &[&OsStr], envs: &[(&str, &OsStr)]) -> Output {
    let mut command = Command::new(support::flowcore_bin());
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("FLOWCORE_STORE")
        // A FLOWCORE_HOME where no store is: a test that forgets --store fails instead of
        // reading the user's store.
        .env(
            "FLOWCORE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-postgres-no-home"),
        )
        // A panic would print its backtrace, which the failure tests look for.
        .env("RUST_BACKTRACE", "1")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    support::run(&mut command)
}

/// `flowcore --store TARGET ARGS…`, which must succeed with nothing on stderr; its stdout.
fn flowcore_ok(target: &OsStr, args: &[&str]) -> String {
    let mut all = vec![OsStr::new("--store"), target];
    all.extend(args.iter().map(OsStr::new));
    let out = flowcore_with(&all, &[]);
    assert!(
        out.status.success(),
        "flowcore {args:?} failed: {}\n{}",
        out.status,
        support::show(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "flowcore {args:?} wrote to stderr"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `flowcore ARGS…`, which must fail with exit code 1, one line on stderr and nothing on
/// stdout, without a panic or a backtrace; that line, without its newline.
fn flowcore_fails(args: &[&str]) -> String {
    let all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = flowcore_with(&all, &[]);
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "flowcore {args:?}\n{}",
        support::show(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "flowcore {args:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(word), "{word}: {stderr}");
    }
    stderr.trim_end().to_owned()
}

fn show_json(target: &OsStr, run: &str) -> Value {
    let text = flowcore_ok(target, &["runs", "show", run, "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `runs ls`'s table with dates, times and durations replaced by `<date>`, `<time>` and
/// `<dur>`, and the spaces that align its columns collapsed to one.
fn normalize_table(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| {
                    if is_date(w) {
                        "<date>"
                    } else if is_time_of_day(w) {
                        "<time>"
                    } else if is_duration(w) {
                        "<dur>"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_date(w: &str) -> bool {
    w.len() == 10
        && w.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        })
}

fn is_time_of_day(w: &str) -> bool {
    (w.len() == 8 || w.len() == 12)
        && w.char_indices().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        })
}

fn is_duration(w: &str) -> bool {
    ["µs", "ms", "s", "m", "h"].iter().any(|unit| {
        w.strip_suffix(unit)
            .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
    })
}

// ---------------------------------------------------------------------------------------
// Comparing `runs show --json` across stores.

/// The keys whose values are times, and durations in seconds: they differ from run to run.
const TIME_KEYS: [&str; 5] = ["at", "started_at", "ended_at", "created_at", "expires_at"];
const DURATION_KEYS: [&str; 1] = ["duration_secs"];

/// `runs show --json` with what differs between two runs of the same flow made the same:
/// every UUID becomes `<id N>`, numbered in order of first appearance; times and durations
/// (by key, and durations inside text such as the summary's) placeholders, a null staying
/// null; flow run names (random words) `<flow run>`; task run names, their task's name and
/// the last digits of their id, `TASK-<hex>`. The spaces that align the summary's columns
/// are collapsed, as its widths follow the durations.
fn normalize_run(value: &Value) -> Value {
    let mut names = Vec::new();
    collect_names(value, &mut names);
    // Longest first: no name is then replaced inside a longer one.
    names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut ids = HashMap::new();
    normalize_value(value, None, &names, &mut ids)
}

/// Every run name in `value`, with what replaces it.
fn collect_names(value: &Value, names: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            let text = |key: &str| fields.get(key).and_then(Value::as_str);
            if let (Some(id), Some(name), Some(task)) = (text("id"), text("name"), text("task")) {
                // A task run's name is derived from its id, which is compared as such.
                assert_eq!(
                    name,
                    format!("{task}-{}", &id[id.len() - 3..]),
                    "the name of task run {id}"
                );
                names.push((name.to_owned(), format!("{task}-<hex>")));
            }
            if let (Some(name), Some(_flow)) = (text("name"), text("flow")) {
                names.push((name.to_owned(), "<flow run>".to_owned()));
            }
            if let Some(parent) = text("parent_name") {
                names.push((parent.to_owned(), "<flow run>".to_owned()));
            }
            fields.values().for_each(|v| collect_names(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

fn normalize_value(
    value: &Value,
    key: Option<&str>,
    names: &[(String, String)],
    ids: &mut HashMap<String, usize>,
) -> Value {
    match value {
        Value::Null => Value::Null,
        _ if key.is_some_and(|k| TIME_KEYS.contains(&k)) => json!("<time>"),
        _ if key.is_some_and(|k| DURATION_KEYS.contains(&k)) => json!("<secs>"),
        Value::String(text) => Value::String(normalize_text(text, names, ids)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| normalize_value(v, None, names, ids))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), normalize_value(v, Some(k), names, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn normalize_text(
    text: &str,
    names: &[(String, String)],
    ids: &mut HashMap<String, usize>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = find_uuid(rest) {
        out.push_str(&rest[..at]);
        let uuid = &rest[at..at + 36];
        let next = ids.len() + 1;
        let n = *ids.entry(uuid.to_owned()).or_insert(next);
        out.push_str(&format!("<id {n}>"));
        rest = &rest[at + 36..];
    }
    out.push_str(rest);
    for (name, placeholder) in names {
        out = out.replace(name.as_str(), placeholder);
    }
    if !out.contains(char::is_whitespace) {
        return out;
    }
    out.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| if is_duration(w) { "<dur>" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the first UUID (`8-4-4-4-12` lowercase hex digits) in `text` starts.
fn find_uuid(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(35)).find(|&start| {
        bytes[start..start + 36]
            .iter()
            .enumerate()
            .all(|(i, &b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            })
    })
}

/// `value` pretty-printed, for a failure message.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

/// Fails, showing the first line that differs, unless the two are equal.
fn assert_same(what: &str, sqlite: &Value, postgres: &Value) {
    if sqlite == postgres {
        return;
    }
    let (a, b) = (pretty(sqlite), pretty(postgres));
    let differs = a
        .lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map_or_else(
            || "one is longer".to_owned(),
            |(i, (x, y))| format!("line {}: SQLite {x:?}, PostgreSQL {y:?}", i + 1),
        );
    panic!("{what} differs ({differs})\n--- SQLite ---\n{a}\n--- PostgreSQL ---\n{b}");
}

/// The `kind`s of a run's `history`.
fn kinds(run: &Value) -> Vec<&str> {
    run["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history in {run}"))
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect()
}

/// What `runs show --json` of `everything` must say on either store, whatever the other says.
fn assert_facts(backend: &str, r: &Recorded, shown: &Value) {
    let run = &r.run;
    assert_eq!(shown["id"], run.id.to_string(), "{backend}");
    assert_eq!(shown["name"], run.name, "{backend}");
    assert_eq!(shown["flow"], "pg-everything", "{backend}");
    assert_eq!(shown["state"], "Completed", "{backend}");
    assert_eq!(shown["parent_id"], Value::Null, "{backend}");
    assert_eq!(
        shown["parameters"],
        json!({"day": 3, "source": "warehouse"}),
        "{backend}"
    );
    assert_eq!(
        kinds(shown),
        ["Pending", "Running", "Completed"],
        "{backend}"
    );

    let tasks = shown["task_runs"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["task"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "flaky",
            "broken",
            "expensive",
            "expensive",
            "double",
            "double",
            "double"
        ],
        "{backend}"
    );
    // The task runs the store holds are those the flow run's record had.
    let mut stored: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let mut recorded: Vec<String> = run.task_runs.iter().map(|t| t.id.to_string()).collect();
    stored.sort();
    recorded.sort();
    assert_eq!(stored, recorded, "{backend}");

    let flaky = &tasks[0];
    assert_eq!(
        kinds(flaky),
        ["Pending", "Running", "Retrying", "Running", "Completed"],
        "{backend}: {flaky}"
    );
    assert_eq!(
        flaky["history"][2]["message"], "attempt 1/2 failed: connection reset; retrying now",
        "{backend}"
    );
    assert_eq!(flaky["attempts"], 2, "{backend}");
    assert_eq!(flaky["tags"], json!(["http", "flaky"]), "{backend}");

    let broken = &tasks[1];
    assert_eq!(broken["state"], "Failed", "{backend}");
    assert_eq!(
        broken["error"], "status code 503 from http://status.invalid",
        "{backend}"
    );
    assert_eq!(broken["tags"], json!(["http"]), "{backend}");

    assert_eq!(tasks[2]["cache"], "miss", "{backend}");
    assert_eq!(tasks[2]["state"], "Completed", "{backend}");
    assert_eq!(tasks[3]["cache"], "hit", "{backend}");
    assert_eq!(tasks[3]["state"], "Cached", "{backend}");
    assert_eq!(tasks[3]["attempts"], 0, "{backend}");
    let indexes: Vec<&Value> = tasks[4..].iter().map(|t| &t["map_index"]).collect();
    assert_eq!(indexes, [&json!(0), &json!(1), &json!(2)], "{backend}");

    let subflows = shown["subflow_runs"].as_array().unwrap();
    assert_eq!(subflows.len(), 1, "{backend}");
    assert_eq!(subflows[0]["flow"], "pg-child", "{backend}");
    assert_eq!(subflows[0]["parent_id"], run.id.to_string(), "{backend}");
    assert_eq!(subflows[0]["state"], "Completed", "{backend}");
    assert_eq!(
        subflows[0]["task_runs"].as_array().unwrap().len(),
        2,
        "{backend}"
    );

    let logs = shown["logs"].as_array().unwrap();
    let logged = |level: &str, message: &str, run_id: &Value| {
        logs.iter()
            .any(|l| l["level"] == level && l["message"] == message && &l["run_id"] == run_id)
    };
    assert!(
        logged("INFO", "reading warehouse for day 3", &shown["id"]),
        "{backend}: {logs:?}"
    );
    assert!(
        logged("INFO", "fetched day 3 on the second try", &flaky["id"]),
        "{backend}: {logs:?}"
    );
    assert!(
        logged("WARN", "computing 7 the slow way", &tasks[2]["id"]),
        "{backend}: {logs:?}"
    );
    assert!(
        logged(
            "ERROR",
            "Finished in state Failed('status code 503 from http://status.invalid')",
            &broken["id"]
        ),
        "{backend}: {logs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// runs show, runs ls

#[test]
fn runs_show_json_is_the_same_on_postgres_as_on_sqlite_ids_and_times_aside() {
    let Some((sqlite, pg)) = recorded() else {
        return;
    };
    let shown = |r: &Recorded, run: &str| show_json(r.ts.target(), run);
    let sqlite_json = shown(sqlite, &sqlite.run.id.to_string());
    let pg_json = shown(pg, &pg.run.id.to_string());
    assert_facts("SQLite", sqlite, &sqlite_json);
    assert_facts("PostgreSQL", pg, &pg_json);
    assert_same(
        "runs show --json",
        &normalize_run(&sqlite_json),
        &normalize_run(&pg_json),
    );
    // By name as well as by id.
    assert_eq!(shown(pg, &pg.run.name), pg_json);

    // The subflow run, shown on its own: its parent's name, and its own log lines.
    let child = |r: &Recorded, parent: &Value| {
        let child = shown(r, parent["subflow_runs"][0]["id"].as_str().unwrap());
        assert_eq!(child["parent_name"], r.run.name);
        assert_eq!(child["parameters"], json!({"x": 5}));
        assert!(
            child["logs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["message"] == "child of 5"),
            "{child}"
        );
        child
    };
    assert_same(
        "runs show --json of the subflow run",
        &normalize_run(&child(sqlite, &sqlite_json)),
        &normalize_run(&child(pg, &pg_json)),
    );
}

#[test]
fn runs_ls_on_postgres_lists_the_flow_run_and_its_subflow_run_with_their_states() {
    let Some((_, pg)) = recorded() else {
        return;
    };
    let run = &pg.run;
    let child = &run.subflow_runs[0];
    let expected = format!(
        "Name Flow State Start Duration Task runs\n\
         {} pg-everything Completed <date> <time> <dur> 5 Completed, 1 Cached, 1 Failed\n\
         └ {} pg-child Completed <date> <time> <dur> 2 Completed",
        run.name, child.name
    );
    let ls = flowcore_ok(pg.ts.target(), &["runs", "ls"]);
    assert_eq!(normalize_table(&ls), expected, "{ls}");

    // FLOWCORE_STORE names the database as --store does.
    let out = flowcore_with(
        &[OsStr::new("runs"), OsStr::new("ls")],
        &[("FLOWCORE_STORE", pg.ts.target())],
    );
    assert!(out.status.success(), "{}", support::show(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ls);

    let list: Value =
        serde_json::from_str(&flowcore_ok(pg.ts.target(), &["runs", "ls", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let by_id = |id: flowcore::Uuid| {
        list.iter()
            .find(|r| r["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not in {list:?}"))
    };
    let parent = by_id(run.id);
    assert_eq!(parent["name"], run.name);
    assert_eq!(parent["state"], "Completed");
    assert_eq!(
        parent["task_runs"],
        json!({"Completed": 5, "Cached": 1, "Failed": 1})
    );
    assert!(parent["duration_secs"].is_f64(), "{parent}");
    let listed_child = by_id(child.id);
    assert_eq!(listed_child["state"], "Completed");
    assert_eq!(listed_child["parent_id"], run.id.to_string());

    // The filters are the database's WHERE clauses.
    let only_child = normalize_table(&flowcore_ok(
        pg.ts.target(),
        &["runs", "ls", "--flow", "pg-child", "--state", "completed"],
    ));
    assert_eq!(
        only_child,
        format!(
            "Name Flow State Start Duration Task runs\n\
             ↳ {} (subflow of {}) pg-child Completed <date> <time> <dur> 2 Completed",
            child.name, run.name
        )
    );
    assert_eq!(
        flowcore_ok(pg.ts.target(), &["runs", "ls", "--state", "Failed"]),
        "No flow runs in state Failed.\n"
    );
}

// ---------------------------------------------------------------------------------------
// store path, store upgrade

/// `url` (`postgres:///DB?host=SOCKET&user=postgres`, as the harness writes it) with `user`
/// and [`PASSWORD`] in its authority instead: `postgres://USER:PASSWORD@/DB?host=SOCKET`.
fn with_password(url: &str, user: &str) -> String {
    let rest = url
        .strip_prefix("postgres:///")
        .unwrap_or_else(|| panic!("not a harness URL: {url}"));
    let rest = rest
        .strip_suffix("&user=postgres")
        .unwrap_or_else(|| panic!("not a harness URL: {url}"));
    format!("postgres://{user}:{PASSWORD}@/{rest}")
}

#[test]
fn store_path_names_the_database_without_its_password() {
    // `store path` never connects: a database that no server serves is named all the same.
    let cases = [
        (
            format!("postgres://flow:{PASSWORD}@/flowcore_runs?host=/nonexistent/socket&user=flow"),
            "postgres://flow@/flowcore_runs?host=/nonexistent/socket&user=flow",
        ),
        (
            format!("postgresql://flow:{PASSWORD}@db.internal:5433/runs"),
            "postgresql://flow@db.internal:5433/runs",
        ),
        (
            format!("postgres:///runs?host=/nonexistent/socket&password={PASSWORD}&user=flow"),
            "postgres:///runs?host=/nonexistent/socket&user=flow",
        ),
    ];
    for (url, shown) in cases {
        let url = OsStr::new(&url);
        let text_expected = format!("{shown}\na PostgreSQL database\n");
        let json_expected = json!({ "path": shown, "kind": "postgres" });
        for by_env in [false, true] {
            let how = if by_env { "FLOWCORE_STORE" } else { "--store" };
            let run = |json: bool| {
                let mut args = Vec::new();
                let mut envs = Vec::new();
                if by_env {
                    envs.push(("FLOWCORE_STORE", url));
                } else {
                    args.extend([OsStr::new("--store"), url]);
                }
                args.extend([OsStr::new("store"), OsStr::new("path")]);
                if json {
                    args.push(OsStr::new("--json"));
                }
                let out = flowcore_with(&args, &envs);
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "store path with {how} {url:?}:\n{}",
                    support::show(&out)
                );
                String::from_utf8(out.stdout).unwrap()
            };
            let text = run(false);
            assert_eq!(text, text_expected, "with {how} {url:?}");
            let json_text = run(true);
            assert!(!json_text.contains(PASSWORD), "{json_text}");
            let json: Value = serde_json::from_str(&json_text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {json_text}"));
            assert_eq!(json, json_expected, "with {how} {url:?}");
        }
    }
}

#[test]
fn store_upgrade_of_a_current_database_says_it_is_ready_without_the_password() {
    let Some(db) = support::postgres_db("store_upgrade") else {
        return;
    };
    // A database with flowcore's tables, made as a flow's process makes it.
    drop(Store::postgres(db.url()).unwrap());
    let url = with_password(db.url(), "postgres");
    let shown = Store::describe_location(&url);
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert_eq!(
        flowcore_ok(OsStr::new(&url), &["store", "upgrade"]),
        format!("{shown} is ready for this flowcore; its runs are kept\n")
    );
    // It read the tables through that URL: the runs are there, none yet.
    assert_eq!(
        flowcore_ok(OsStr::new(&url), &["runs", "ls"]),
        "No flow runs yet.\n"
    );
}

// ---------------------------------------------------------------------------------------
// Bad targets

#[test]
fn a_missing_database_or_a_refused_login_is_one_line_without_the_password() {
    let Some(pg) = support::Postgres::shared() else {
        return;
    };
    let missing = pg.url("no_such_db");
    for args in [
        vec!["runs", "ls"],
        vec!["runs", "show", "x"],
        vec!["cache", "ls"],
        vec!["deployment", "ls"],
        vec!["dashboard", "--port", "0"],
    ] {
        let mut all = vec!["--store", missing.as_str()];
        all.extend(args);
        assert_eq!(
            flowcore_fails(&all),
            format!(
                "flowcore: cannot open {missing}: database \"no_such_db\" does not exist; \
                 create it first (createdb)"
            ),
            "flowcore {all:?}"
        );
    }

    // An unknown user, with a password in the authority or in the query.
    let authority = with_password(&pg.url("postgres"), "nobody");
    let query = pg.url("postgres").replace(
        "&user=postgres",
        &format!("&user=nobody&password={PASSWORD}"),
    );
    for url in [authority, query] {
        assert!(url.contains(PASSWORD), "{url}");
        let shown = Store::describe_location(&url);
        let line = flowcore_fails(&["--store", &url, "runs", "ls"]);
        assert_eq!(
            line,
            format!(
                "flowcore: cannot open {shown}: the server refused the login: \
                 role \"nobody\" does not exist"
            )
        );
        assert!(!line.contains(PASSWORD), "{line}");
        // Through FLOWCORE_STORE the same.
        let out = flowcore_with(
            &[OsStr::new("runs"), OsStr::new("ls")],
            &[("FLOWCORE_STORE", OsStr::new(&url))],
        );
        assert_eq!(out.status.code(), Some(1), "{}", support::show(&out));
        assert_eq!(String::from_utf8(out.stderr).unwrap(), format!("{line}\n"));
    }

    // No server at all behind the socket's directory.
    let nowhere = format!("postgres://flow:{PASSWORD}@/runs?host=/nonexistent/socket");
    let line = flowcore_fails(&["--store", &nowhere, "runs", "ls"]);
    assert!(
        line.starts_with(
            "flowcore: cannot reach the run store postgres://flow@/runs?host=/nonexistent/socket: "
        ),
        "{line}"
    );
    assert!(!line.contains(PASSWORD), "{line}");
}

#[test]
fn a_database_that_is_empty_or_somebody_else_s_is_refused_and_left_untouched() {
    let Some(db) = support::postgres_db("not_a_store") else {
        return;
    };
    let url = db.url();
    assert_eq!(
        flowcore_fails(&["--store", url, "runs", "ls"]),
        format!(
            "flowcore: {url} is not a flowcore run store (it holds no tables; a flow run makes a \
             store, reading never does); flowcore leaves it untouched: point FLOWCORE_STORE or \
             --store at another database"
        )
    );
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(db.psql(tables).trim(), "0");

    db.psql(
        "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')",
    );
    assert_eq!(
        flowcore_fails(&["--store", url, "runs", "ls"]),
        format!(
            "flowcore: {url} is not a flowcore run store (it holds tables flowcore did not \
             create: users); flowcore leaves it untouched: point FLOWCORE_STORE or --store at \
             another database"
        )
    );
    assert_eq!(db.psql("SELECT name FROM users").trim(), "ada");
    assert_eq!(db.psql(tables).trim(), "1");
}

// ---------------------------------------------------------------------------------------
// The dashboard

fn http_get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

#[test]
fn the_dashboard_serves_the_runs_of_a_postgres_store_and_names_it_without_the_password() {
    let Some((_, pg)) = recorded() else {
        return;
    };
    let run = &pg.run;
    let url = with_password(pg.ts.target().to_str().unwrap(), "postgres");
    let shown = Store::describe_location(&url);
    assert!(!shown.contains(PASSWORD), "{shown}");
    let mut dashboard = Running::spawn(
        Command::new(support::flowcore_bin())
            .args(["dashboard", "--port", "0", "--store", &url])
            .env_remove("FLOWCORE_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let started = dashboard.wait_for_line("flowcore dashboard at");
    let (base, store) = started
        .split_once(' ')
        .unwrap_or_else(|| panic!("{started}"));
    assert_eq!(store, format!("(store {shown})"));
    let base = base.trim_end_matches('/');
    assert!(base.starts_with("http://127.0.0.1:"), "{started}");

    let page = |path: &str| {
        let (status, body) = http_get(&format!("{base}{path}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        assert!(!body.contains(PASSWORD), "GET {path}: {body}");
        body
    };
    let runs = page("/runs");
    for name in [&run.name, &run.subflow_runs[0].name] {
        assert!(runs.contains(name.as_str()), "no {name} in /runs:\n{runs}");
    }
    assert!(runs.contains("pg-everything"), "{runs}");
    let home = page("/");
    assert!(
        home.contains(run.name.as_str()),
        "no {} on /:\n{home}",
        run.name
    );
    let run_page = page(&format!("/runs/{}", run.id));
    assert!(
        run_page.contains("fetched day 3 on the second try"),
        "{run_page}"
    );

    // The API's run is `runs show --json`'s, read from the same database.
    let api: Value = serde_json::from_str(&page(&format!("/api/runs/{}", run.id))).unwrap();
    assert_eq!(api["id"], run.id.to_string());
    assert_eq!(api["name"], run.name);
    assert_eq!(api["state"], "Completed");
    assert_eq!(api, show_json(pg.ts.target(), &run.id.to_string()));
    let listed: Value = serde_json::from_str(&page("/api/runs")).unwrap();
    let ids: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&run.id.to_string().as_str()), "{listed}");

    let out = dashboard.kill();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
