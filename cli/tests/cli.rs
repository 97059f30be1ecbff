//! The `flowcore` command-line tool, run as a real process against a run store that this test
//! binary fills by running real flows: what each command prints, its JSON, its filters, and
//! that every failure is one line on stderr with the right exit code.
//!
//! A process records to one installed store, so the flows run once, in [`fixture`], and every
//! test reads the same store. Only `cache_clear_removes_the_results_of_one_task` changes it,
//! and only the entries of a task no other test looks at.
//!
//! Times and durations differ from run to run: [`normalize`] replaces them with `<date>`,
//! `<time>` and `<dur>` and collapses the spaces that align columns (table.rs's unit tests
//! check the alignment), so that everything else is compared exactly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use flowcore::{FlowRunRecord, Store, flow, task};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;

// ---------------------------------------------------------------------------------------
// The flows that fill the store.

#[task]
async fn count_rows(day: u32) -> u32 {
    tracing::info!("fetched {} rows", day * 14);
    day * 14
}

#[task]
async fn fetch_status(url: &str) -> Result<String, String> {
    if url.is_empty() {
        return Ok(String::new());
    }
    Err("status code 503".to_owned())
}

#[flow(name = "cli-report")]
async fn report(day: u32) -> u32 {
    let rows = count_rows(day).await;
    // The failed task run is handled: the flow run completes.
    let status = fetch_status("http://status.invalid")
        .await
        .unwrap_or_default();
    rows + count_rows(day + 1).await + status.len() as u32
}

#[task(cache_for = "1d")]
async fn cached_total(x: u32) -> u32 {
    x * 6
}

#[flow(name = "cli-cached")]
async fn cached() -> u32 {
    cached_total(7).await
}

#[task]
async fn double(x: u32) -> u32 {
    x * 2
}

#[flow(name = "cli-child")]
async fn child(x: u32) -> u32 {
    double(x).await + double(x + 1).await
}

#[flow(name = "cli-parent")]
async fn parent() -> u32 {
    double(1).await + child(5).await + child(6).await
}

#[flow(name = "cli-strict")]
async fn strict(day: u32) -> Result<u32, String> {
    let rows = count_rows(day).await;
    if rows < 100 {
        return Err(format!("no rows for day {day}"));
    }
    Ok(rows)
}

/// Cached only to be cleared by `cache_clear_removes_the_results_of_one_task`.
#[task(cache_for = "1d")]
async fn doomed(x: u32) -> u32 {
    x + 1
}

/// Cached for so short that it has expired by the time any test reads it.
#[task(cache_for = "1ms")]
async fn fleeting(x: u32) -> u32 {
    x
}

/// What the fixture ran, as the store recorded it.
struct Fixture {
    db: PathBuf,
    store: Store,
    report: FlowRunRecord,
    cached: [FlowRunRecord; 2],
    parent: FlowRunRecord,
    strict: FlowRunRecord,
}

impl Fixture {
    /// The first subflow run of `parent`: `cli-child` with x = 5.
    fn child(&self) -> &FlowRunRecord {
        &self.parent.subflow_runs[0]
    }

    /// The second, with x = 6: the newest run but `strict`.
    fn second_child(&self) -> &FlowRunRecord {
        &self.parent.subflow_runs[1]
    }
}

/// The store, filled once for the whole test binary.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A fixed directory under target/, emptied first: a TempDir in a static would never
        // be dropped, and so never removed, anyway.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-store");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("flowcore.db");
        let store = Store::sqlite(&db).unwrap();
        store.clone().install().unwrap();
        // Keeps log lines in the store without printing them.
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(flowcore::logging::layer_to(std::io::sink, false)),
        )
        .unwrap();

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ids = runtime.block_on(async {
            let (_, report) = report(3).with_run().await;
            let (_, cached_1) = cached().with_run().await;
            let (_, cached_2) = cached().with_run().await;
            let (_, parent) = parent().with_run().await;
            let (out, strict) = strict(3).with_run().await;
            assert_eq!(out, Err("no rows for day 3".to_owned()));
            doomed(1).await;
            doomed(2).await;
            fleeting(1).await;
            store.flush().await.unwrap();
            [report.id, cached_1.id, cached_2.id, parent.id, strict.id]
        });
        // Long past the 1 ms for which `fleeting`'s result is kept.
        std::thread::sleep(Duration::from_millis(50));

        let stored = |id| store.flow_run(id).unwrap().expect("flushed");
        Fixture {
            report: stored(ids[0]),
            cached: [stored(ids[1]), stored(ids[2])],
            parent: stored(ids[3]),
            strict: stored(ids[4]),
            db,
            store,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Running the tool.

/// `flowcore ARGS…`, uncoloured, with nothing from the environment choosing the store.
fn run_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowcore"));
    command.args(args).env("NO_COLOR", "1");
    // A FLOWCORE_HOME where no store is: a test that forgets --store fails instead of
    // reading the repository's store.
    command.env(
        "FLOWCORE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-no-home"),
    );
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().unwrap()
}

/// `flowcore --store <fixture store> ARGS…`, which must succeed; its stdout.
fn flowcore(args: &[&str]) -> String {
    let db = fixture().db.to_str().unwrap().to_owned();
    let mut all = vec!["--store", &db];
    all.extend_from_slice(args);
    let out = run_in(None, &all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "flowcore {args:?} failed: {stderr}");
    assert_eq!(stderr, "", "flowcore {args:?} wrote to stderr");
    String::from_utf8(out.stdout).unwrap()
}

/// `flowcore ARGS…`, which must fail with `code` and exactly one line on stderr and nothing
/// on stdout; that line, without its newline.
fn failure(args: &[&str], code: i32) -> String {
    let out = run_in(None, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "flowcore {args:?}: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "flowcore {args:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_owned()
}

/// `flowcore ARGS… --json`, parsed.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = flowcore(&all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Each line with dates, times and durations replaced by `<date>`, `<time>` and `<dur>`,
/// and the spaces between words collapsed to one.
fn normalize(text: &str) -> String {
    let is_date = |w: &str| {
        w.len() == 10
            && w.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                _ => c.is_ascii_digit(),
            })
    };
    let is_time = |w: &str| {
        (w.len() == 8 || w.len() == 12)
            && w.char_indices().all(|(i, c)| match i {
                2 | 5 => c == ':',
                8 => c == '.',
                _ => c.is_ascii_digit(),
            })
    };
    let is_duration = |w: &str| {
        ["µs", "ms", "s"].iter().any(|unit| {
            w.strip_suffix(unit)
                .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
        })
    };
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| {
                    if is_date(w) {
                        "<date>"
                    } else if is_time(w) {
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

/// The lines of `text` from the heading `from` up to the next empty line.
fn section<'a>(text: &'a str, from: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != from)
        .take_while(|l| !l.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------
// runs ls

#[test]
fn runs_ls_lists_the_runs_newest_first_with_subflow_runs_under_their_parent() {
    let f = fixture();
    let [cached_1, cached_2] = &f.cached;
    let expected = [
        "Name Flow State Start Duration Task runs".to_owned(),
        format!(
            "{} cli-strict Failed <date> <time> <dur> 1 Completed",
            f.strict.name
        ),
        format!(
            "{} cli-parent Completed <date> <time> <dur> 1 Completed",
            f.parent.name
        ),
        format!(
            "├ {} cli-child Completed <date> <time> <dur> 2 Completed",
            f.child().name
        ),
        format!(
            "└ {} cli-child Completed <date> <time> <dur> 2 Completed",
            f.second_child().name
        ),
        format!(
            "{} cli-cached Completed <date> <time> <dur> 1 Cached",
            cached_2.name
        ),
        format!(
            "{} cli-cached Completed <date> <time> <dur> 1 Completed",
            cached_1.name
        ),
        format!(
            "{} cli-report Completed <date> <time> <dur> 2 Completed, 1 Failed",
            f.report.name
        ),
    ];
    assert_eq!(normalize(&flowcore(&["runs", "ls"])), expected.join("\n"));
}

#[test]
fn runs_ls_filters_by_state_and_by_flow() {
    let f = fixture();
    let failed = flowcore(&["runs", "ls", "--state", "Failed"]);
    assert_eq!(
        normalize(&failed),
        format!(
            "Name Flow State Start Duration Task runs\n\
             {} cli-strict Failed <date> <time> <dur> 1 Completed",
            f.strict.name
        )
    );
    // State names are taken in any case.
    assert_eq!(flowcore(&["runs", "ls", "--state", "failed"]), failed);

    let cached = normalize(&flowcore(&["runs", "ls", "--flow", "cli-cached"]));
    let names: Vec<&str> = cached
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, [&f.cached[1].name, &f.cached[0].name]);

    assert_eq!(
        flowcore(&["runs", "ls", "--flow", "cli-report", "--state", "Crashed"]),
        "No flow runs of flow 'cli-report' in state Crashed.\n"
    );
}

#[test]
fn runs_ls_limit_cuts_the_list_and_names_the_parent_of_a_subflow_run_left_alone() {
    let f = fixture();
    // Subflow runs are created after their parent: the two newest runs are the strict run
    // and the second child run, whose parent is not listed.
    assert_eq!(
        normalize(&flowcore(&["runs", "ls", "--limit", "2"])),
        format!(
            "Name Flow State Start Duration Task runs\n\
             {} cli-strict Failed <date> <time> <dur> 1 Completed\n\
             ↳ {} (subflow of {}) cli-child Completed <date> <time> <dur> 2 Completed",
            f.strict.name,
            f.second_child().name,
            f.parent.name
        )
    );
    assert_eq!(flowcore(&["runs", "ls", "--limit", "1"]).lines().count(), 2);
}

#[test]
fn runs_ls_json_has_every_field() {
    let f = fixture();
    let list = json(&["runs", "ls"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 7);
    let by_name = |name: &str| {
        list.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {list:?}"))
    };
    let report = by_name(&f.report.name);
    assert_eq!(report["id"], f.report.id.to_string());
    assert_eq!(report["flow"], "cli-report");
    assert_eq!(report["state"], "Completed");
    assert_eq!(report["parent_id"], Value::Null);
    assert_eq!(report["error"], Value::Null);
    assert_eq!(
        report["task_runs"],
        serde_json::json!({"Completed": 2, "Failed": 1})
    );
    assert!(report["duration_secs"].is_f64(), "{report}");
    for field in ["created_at", "started_at", "ended_at"] {
        assert!(report[field].is_string(), "{field}: {report}");
    }
    let child = by_name(&f.child().name);
    assert_eq!(child["parent_id"], f.parent.id.to_string());
    let strict = by_name(&f.strict.name);
    assert_eq!(strict["state"], "Failed");
    assert_eq!(strict["error"], "no rows for day 3");
}

// ---------------------------------------------------------------------------------------
// runs show and runs summary

#[test]
fn runs_show_prints_the_run_its_history_task_runs_errors_and_logs() {
    let f = fixture();
    let r = &f.report;
    let out = flowcore(&["runs", "show", &r.name]);
    let [count_1, fetch, count_2] = [0, 1, 2].map(|i| r.task_runs[i].name().to_string());
    assert_eq!(
        [
            &r.task_runs[0].task,
            &r.task_runs[1].task,
            &r.task_runs[2].task
        ],
        ["count_rows", "fetch_status", "count_rows"]
    );
    let head = normalize(out.split("\nLogs\n").next().unwrap());
    let expected = format!(
        "Flow run '{name}'\n\
         Id {id}\n\
         Flow cli-report\n\
         State Completed\n\
         Parent none\n\
         Parameters day=3\n\
         Start <date> <time>\n\
         End <date> <time>\n\
         Duration <dur>\n\
         Attempts 1\n\
         \n\
         State history\n\
         Time State\n\
         <time> Pending\n\
         <time> Running\n\
         <time> Completed\n\
         \n\
         Task runs\n\
         Name State Attempts Duration Error\n\
         {count_1} Completed 1 <dur>\n\
         {fetch} Failed 1 <dur> status code 503\n\
         {count_2} Completed 1 <dur>\n\
         3 task runs: 2 Completed, 1 Failed\n\
         \n\
         Errors\n\
         Task run '{fetch}': status code 503",
        name = r.name,
        id = r.id,
    );
    assert_eq!(head, expected);

    // The log lines, as flowcore's console printed them, the task's own among them.
    let logs = normalize(&section(&out, "Logs").join("\n"));
    let flow_label = format!("Flow run '{}'", r.name);
    for line in [
        format!(
            "<time> | INFO | {flow_label} - Beginning flow run '{}' for flow 'cli-report'",
            r.name
        ),
        format!("<time> | INFO | Task run '{count_1}' - fetched 42 rows"),
        format!("<time> | INFO | Task run '{count_2}' - fetched 56 rows"),
        format!(
            "<time> | ERROR | Task run '{fetch}' - Finished in state Failed('status code 503')"
        ),
        format!("<time> | INFO | {flow_label} - Finished in state Completed()"),
    ] {
        assert!(logs.lines().any(|l| l == line), "no {line:?} in\n{logs}");
    }
    // As many log lines as the store has, in its order.
    let stored = f.store.logs(r.id).unwrap();
    let first_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("<time> | "))
        .collect();
    assert_eq!(first_lines.len(), stored.len(), "{logs}");
    for (line, stored) in first_lines.iter().zip(&stored) {
        let message = normalize(stored.message.lines().next().unwrap_or(""));
        assert!(line.ends_with(&message), "{line:?} vs {:?}", stored.message);
        assert!(line.contains(&format!(" | {} | ", stored.level)), "{line}");
    }

    // By id as well as by name.
    assert_eq!(flowcore(&["runs", "show", &r.id.to_string()]), out);
}

#[test]
fn runs_show_of_a_failed_flow_run_gives_its_error_and_of_a_subflow_run_its_parent() {
    let f = fixture();
    let strict = normalize(&flowcore(&["runs", "show", &f.strict.name]));
    assert!(
        strict.contains("\nState Failed: no rows for day 3\n"),
        "{strict}"
    );
    assert!(strict.contains("\nParameters day=3\n"), "{strict}");
    assert!(
        strict.contains(&format!(
            "\nErrors\nFlow run '{}': no rows for day 3\n",
            f.strict.name
        )),
        "{strict}"
    );
    assert!(
        strict.contains("\n<time> Failed no rows for day 3\n"),
        "history: {strict}"
    );

    let child = normalize(&flowcore(&["runs", "show", &f.child().name]));
    assert!(
        child.contains(&format!("\nParent {} ({})\n", f.parent.name, f.parent.id)),
        "{child}"
    );
    assert!(child.contains("\nParameters x=5\n"), "{child}");

    let parent = normalize(&flowcore(&["runs", "show", &f.parent.name]));
    assert!(
        parent.contains(&format!(
            "\nSubflow runs\nName Flow State Start Duration Task runs\n\
             {} cli-child Completed <date> <time> <dur> 2 Completed\n\
             {} cli-child Completed <date> <time> <dur> 2 Completed\n",
            f.child().name,
            f.second_child().name
        )),
        "{parent}"
    );
    assert!(parent.contains("\nParameters none\n"), "{parent}");

    // A cache hit: the Cache column appears, with the task run's state.
    let hit = normalize(&flowcore(&["runs", "show", &f.cached[1].name]));
    let cached_run = f.cached[1].task_runs[0].name();
    assert!(
        hit.contains(&format!(
            "\nName State Attempts Duration Cache\n{cached_run} Cached 0 <dur> hit\n"
        )),
        "{hit}"
    );
}

#[test]
fn runs_show_json_has_the_record_parameters_and_logs() {
    let f = fixture();
    let run = json(&["runs", "show", &f.report.name]);
    assert_eq!(run["id"], f.report.id.to_string());
    assert_eq!(run["name"], f.report.name);
    assert_eq!(run["flow"], "cli-report");
    assert_eq!(run["state"], "Completed");
    assert_eq!(run["parameters"], serde_json::json!({"day": 3}));
    let history: Vec<&Value> = run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["kind"])
        .collect();
    assert_eq!(history, ["Pending", "Running", "Completed"]);
    let tasks = run["task_runs"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[1]["task"], "fetch_status");
    assert_eq!(tasks[1]["state"], "Failed");
    assert_eq!(tasks[1]["error"], "status code 503");
    assert!(
        run["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "fetched 42 rows" && l["level"] == "INFO")
    );

    let parent = json(&["runs", "show", &f.parent.name]);
    assert_eq!(parent["subflow_runs"][0]["name"], f.child().name);
    assert_eq!(parent["subflow_runs"][0]["state"], "Completed");
    let child = json(&["runs", "show", &f.child().name]);
    assert_eq!(child["parent_id"], f.parent.id.to_string());
    assert_eq!(child["parent_name"], f.parent.name);
}

#[test]
fn runs_summary_prints_the_table_the_flow_logged() {
    let f = fixture();
    let out = flowcore(&["runs", "summary", &f.report.name]);
    assert_eq!(out, format!("{}\n", f.report.summary()));
    assert!(
        out.starts_with(&format!(
            "Flow run '{}' for flow 'cli-report': Completed — 1 task run failed and was handled\n",
            f.report.name
        )),
        "{out}"
    );
    assert!(out.contains("status code 503"), "{out}");

    let strict = json(&["runs", "summary", &f.strict.name]);
    assert_eq!(strict["state"], "Failed");
    assert_eq!(strict["headline"], "Failed: no rows for day 3");
    assert_eq!(strict["task_runs"], serde_json::json!({"Completed": 1}));
}

// ---------------------------------------------------------------------------------------
// cache

#[test]
fn cache_ls_lists_each_cached_result() {
    let f = fixture();
    let entries = f.store.cache_entries().unwrap();
    let total = entries.iter().find(|e| e.task == "cached_total").unwrap();
    let fleeting = entries.iter().find(|e| e.task == "fleeting").unwrap();
    let out = normalize(&flowcore(&["cache", "ls"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Task Key Stored at Expires at Size");
    // 42, as JSON: two bytes.
    let line = format!("cached_total {} <date> <time> <date> <time> 2 B", total.key);
    assert!(lines.contains(&line.as_str()), "no {line:?} in\n{out}");
    let line = format!("fleeting {} <date> <time> expired 1 B", fleeting.key);
    assert!(lines.contains(&line.as_str()), "no {line:?} in\n{out}");

    let list = json(&["cache", "ls"]);
    let total = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == "cached_total")
        .unwrap();
    assert_eq!(total["size"], 2);
    assert_eq!(total["expired"], false);
    assert!(total["key"].as_str().unwrap().contains("cached_total"));
    assert!(total["created_at"].is_string() && total["expires_at"].is_string());
}

#[test]
fn cache_clear_removes_the_results_of_one_task() {
    fixture();
    assert!(flowcore(&["cache", "ls"]).contains("\ndoomed "));
    assert_eq!(
        flowcore(&["cache", "clear", "doomed"]),
        "Removed 2 cached results of task 'doomed'\n"
    );
    let after = flowcore(&["cache", "ls"]);
    assert!(!after.contains("doomed"), "{after}");
    assert!(after.contains("\ncached_total "), "only doomed's: {after}");

    // Nothing left to remove: the names that do have results are given.
    let again = flowcore(&["cache", "clear", "doomed"]);
    assert!(
        again
            .starts_with("Removed 0 cached results of task 'doomed'; the cache holds results of: "),
        "{again}"
    );
    assert!(again.contains("cached_total"), "{again}");
    assert_eq!(
        json(&["cache", "clear", "doomed"]),
        serde_json::json!({"removed": 0, "task": "doomed"})
    );
}

#[test]
fn cache_clear_without_a_task_empties_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flowcore.db");
    // An empty store of its own: clearing everything must not touch the fixture's.
    drop(Store::sqlite(&db).unwrap());
    let db = db.to_str().unwrap();
    let out = run_in(None, &["--store", db, "cache", "clear"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Removed 0 cached results\n"
    );
    let out = run_in(None, &["--store", db, "cache", "ls"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "No cached results.\n"
    );
}

// ---------------------------------------------------------------------------------------
// store path

#[test]
fn store_path_says_where_the_store_is_and_whether_it_exists() {
    let f = fixture();
    let out = flowcore(&["store", "path"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(f.db.to_str().unwrap()));
    let status = lines.next().unwrap();
    assert!(status.starts_with("exists, "), "{status}");
    assert_eq!(lines.next(), None);
    assert_eq!(
        json(&["store", "path"]),
        serde_json::json!({"path": f.db, "kind": "sqlite", "exists": true})
    );

    // The default, from FLOWCORE_HOME, and not created by asking.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .args(["store", "path"])
        .env("FLOWCORE_HOME", home.path())
        .output()
        .unwrap();
    let db = home.path().join("flowcore.db");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{}\ndoes not exist yet: the first flow run creates it\n",
            db.display()
        )
    );
    assert!(out.status.success());
    assert!(!db.exists());

    // A relative --store is shown absolute.
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let out = run_in(
        Some(&cwd),
        &["--store", "runs.db", "store", "path", "--json"],
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"path": cwd.join("runs.db"), "kind": "sqlite", "exists": false})
    );
}

// ---------------------------------------------------------------------------------------
// Failures: one line on stderr, and the exit code.

#[test]
fn an_unknown_run_is_one_line_naming_the_store() {
    let f = fixture();
    let db = f.db.to_str().unwrap();
    for command in ["show", "summary"] {
        assert_eq!(
            failure(&["--store", db, "runs", command, "no-such-run"], 1),
            format!("flowcore: no flow run named or with id \"no-such-run\" in the run store {db}")
        );
    }
    let id = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        failure(&["--store", db, "runs", "show", id], 1),
        format!("flowcore: no flow run named or with id \"{id}\" in the run store {db}")
    );
}

#[test]
fn a_missing_store_is_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nothing-here.db");
    let expected = format!(
        "flowcore: no run store at {}; run a flow first, or point --store / FLOWCORE_HOME at one",
        db.display()
    );
    let db_arg = db.to_str().unwrap();
    for args in [
        vec!["runs", "ls"],
        vec!["runs", "show", "x"],
        vec!["runs", "summary", "x"],
        vec!["cache", "ls"],
        vec!["cache", "clear"],
    ] {
        let mut all = vec!["--store", db_arg];
        all.extend(args);
        assert_eq!(failure(&all, 1), expected);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the command created {left:?}");

    // The default store, when FLOWCORE_HOME has none, likewise.
    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .args(["runs", "ls"])
        .env("FLOWCORE_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "flowcore: no run store at {}; run a flow first, or point --store / FLOWCORE_HOME at one\n",
            dir.path().join("flowcore.db").display()
        )
    );
    assert!(!dir.path().join("flowcore.db").exists());
}

#[test]
fn a_file_that_is_not_a_run_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();

    let foreign = dir.path().join("users.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO users(name) VALUES ('ada');",
        )
        .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let line = failure(&["--store", foreign.to_str().unwrap(), "runs", "ls"], 1);
    assert_eq!(
        line,
        format!(
            "flowcore: {} is not a flowcore run store (it holds tables flowcore did not create: users); \
             flowcore leaves it untouched: point FLOWCORE_HOME or --store at another file",
            foreign.display()
        )
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some notes\n".repeat(100),
    )
    .unwrap();
    let line = failure(&["--store", text.to_str().unwrap(), "cache", "ls"], 1);
    assert!(
        line.starts_with(&format!(
            "flowcore: {} is not a flowcore run store",
            text.display()
        )),
        "{line}"
    );

    let line = failure(&["--store", dir.path().to_str().unwrap(), "runs", "ls"], 1);
    assert!(line.starts_with("flowcore: cannot open "), "{line}");
}

#[test]
fn a_bad_command_line_is_clap_s_first_line_and_exit_code_2() {
    let db = fixture().db.to_str().unwrap();
    assert_eq!(
        failure(&["--store", db, "runs", "ls", "--state", "finished"], 2),
        "flowcore: invalid value 'finished' for '--state <STATE>': unknown state \"finished\"; \
         expected one of: Scheduled, Late, Pending, Running, Retrying, Paused, Cancelling, Completed, Cached, Failed, TimedOut, Cancelled, Crashed, Skipped"
    );
    assert_eq!(
        failure(&["--store", db, "runs", "ls", "--limit", "abc"], 2),
        "flowcore: invalid value 'abc' for '--limit <N>': invalid digit found in string"
    );
    let zero = failure(&["--store", db, "runs", "ls", "--limit", "0"], 2);
    assert!(
        zero.starts_with("flowcore: invalid value '0' for '--limit <N>'"),
        "{zero}"
    );
    assert_eq!(
        failure(&["runs", "ls", "--bogus"], 2),
        "flowcore: unexpected argument '--bogus' found (see 'flowcore runs ls --help')"
    );
    assert_eq!(
        failure(&["runs", "frobnicate"], 2),
        "flowcore: unrecognized subcommand 'frobnicate' (see 'flowcore runs --help')"
    );
    // What is missing is said on the same line.
    assert_eq!(
        failure(&["runs", "show"], 2),
        "flowcore: the following required arguments were not provided: <RUN> \
         (see 'flowcore runs show --help')"
    );
    assert_eq!(
        failure(&["runs"], 2),
        "flowcore: 'flowcore runs' requires a subcommand but one was not provided \
         [subcommands: ls, show, summary, graph, cancel, resume, delete, prune, help] (see 'flowcore runs --help')"
    );
}

#[test]
fn a_mistyped_word_is_answered_with_the_one_it_resembles() {
    let db = fixture().db.to_str().unwrap();
    assert_eq!(
        failure(&["--store", db, "runs", "lss"], 2),
        "flowcore: unrecognized subcommand 'lss'; a similar subcommand exists: 'ls' \
         (see 'flowcore runs --help')"
    );
    assert_eq!(
        failure(&["deploymnt", "ls"], 2),
        "flowcore: unrecognized subcommand 'deploymnt'; a similar subcommand exists: \
         'deployment' (see 'flowcore --help')"
    );
    assert_eq!(
        failure(&["--store", db, "runs", "ls", "--jsno"], 2),
        "flowcore: unexpected argument '--jsno' found; a similar argument exists: '--json' \
         (see 'flowcore runs ls --help')"
    );
    assert_eq!(
        failure(
            &["--store", db, "runs", "graph", "x", "--format", "svgg"],
            2
        ),
        "flowcore: invalid value 'svgg' for '--format <FORMAT>' [possible values: dot, \
         mermaid, svg]; a similar value exists: 'svg'"
    );
    // Nothing like it: no guess.
    assert_eq!(
        failure(&["--store", db, "runs", "zzz"], 2),
        "flowcore: unrecognized subcommand 'zzz' (see 'flowcore runs --help')"
    );
}

#[test]
fn flowcore_alone_prints_the_help() {
    let out = run_in(None, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(help, stdout_of(&["--help"]), "the same help as --help");
    assert!(
        help.contains("Usage: flowcore [OPTIONS] [COMMAND]"),
        "{help}"
    );
}

/// What `flowcore ARGS…` prints on stdout, exiting 0, whatever the store.
fn stdout_of(args: &[&str]) -> String {
    let out = run_in(None, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_and_version_print_normally() {
    let out = run_in(None, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Usage: flowcore [OPTIONS] [COMMAND]"),
        "{help}"
    );
    for command in ["runs", "cache", "store"] {
        assert!(help.contains(command), "{help}");
    }
    let out = run_in(None, &["runs", "ls", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--state <STATE>") && help.contains("--json"),
        "{help}"
    );

    let out = run_in(None, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("flowcore {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn piped_output_is_plain_even_without_no_color() {
    let db = fixture().db.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .args(["--store", db, "runs", "show", &fixture().report.name])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Completed"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}

// ---------------------------------------------------------------------------------------
// Crash detection: any command marks Crashed the runs of a process that died.

#[flow(name = "cli-hang")]
async fn hang(ready: PathBuf) {
    double(1).await;
    // The Running state must be on disk before the parent kills this process.
    Store::current().flush().await.unwrap();
    std::fs::write(ready, "").unwrap();
    std::future::pending::<()>().await;
}

/// Not a test of its own: the process that
/// `a_flow_run_of_a_killed_process_is_marked_crashed_by_any_command` starts and kills, this
/// test binary run again with only this test. Run normally, it does nothing.
#[test]
fn helper_process_killed_in_the_middle_of_a_flow_run() {
    let Some(dir) = std::env::var_os("FLOWCORE_CLI_TEST_KILLED_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    Store::sqlite(dir.join("flowcore.db"))
        .unwrap()
        .install()
        .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(hang(dir.join("ready")));
}

#[test]
fn a_flow_run_of_a_killed_process_is_marked_crashed_by_any_command() {
    if !Path::new("/proc/self/stat").exists() {
        // Without /proc a dead process is known only by its heartbeat going stale (30 s).
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process_killed_in_the_middle_of_a_flow_run",
        ])
        .env("FLOWCORE_CLI_TEST_KILLED_CHILD", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = dir.path().join("ready");
    // Waits for the child's flow run to be recorded as Running; the limit only keeps a broken
    // child from hanging the test.
    let mut waited = Duration::ZERO;
    while !ready.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child process ended before its flow run started: {status}");
        }
        assert!(
            waited < Duration::from_secs(120),
            "the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    }
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();

    let db = dir.path().join("flowcore.db");
    let db = db.to_str().unwrap();
    let out = run_in(None, &["--store", db, "runs", "ls"]);
    assert!(out.status.success());
    let ls = normalize(&String::from_utf8(out.stdout).unwrap());
    let row = ls.lines().nth(1).unwrap();
    assert!(
        row.ends_with(" cli-hang Crashed <date> <time> <dur> 1 Completed"),
        "{ls}"
    );
    let name = row.split(' ').next().unwrap();
    let out = run_in(None, &["--store", db, "runs", "show", name]);
    let show = String::from_utf8(out.stdout).unwrap();
    assert!(
        show.contains(&format!(
            "  State       Crashed: the process running it (pid {pid} on "
        )),
        "{show}"
    );
}

// ---------------------------------------------------------------------------------------
// Control characters from user code are printed escaped.

/// The brief's error text: clear the screen, retitle the window, a link to evil.example
/// hidden behind the word `link` (OSC 8).
const HOSTILE_ERROR: &str =
    "\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\";

/// HOSTILE_ERROR as the tool prints it.
const HOSTILE_ERROR_SHOWN: &str =
    r"\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]8;;http://evil.example\u{1b}\link\u{1b}]8;;\u{1b}\";

#[task(name = "cli-\x1b[31mtask")]
async fn hostile_task() -> Result<(), String> {
    tracing::info!("body:\x1b]0;pwned\x07\r\nforged | INFO | line");
    Err(HOSTILE_ERROR.to_owned())
}

#[flow(name = "cli-\x1b]0;pwned\x07flow")]
async fn hostile_flow() -> Result<(), String> {
    hostile_task().await
}

/// Not a test of its own: the process that
/// `control_characters_from_the_store_are_printed_escaped` starts to record a hostile run in
/// a store of its own (a process records to one store). Run normally, it does nothing.
#[test]
fn helper_process_recording_a_hostile_run() {
    let Some(dir) = std::env::var_os("FLOWCORE_CLI_TEST_HOSTILE_CHILD") else {
        return;
    };
    let store = Store::sqlite(PathBuf::from(dir).join("flowcore.db")).unwrap();
    store.clone().install().unwrap();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(flowcore::logging::layer_to(std::io::sink, false)),
    )
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            assert_eq!(hostile_flow().await, Err(HOSTILE_ERROR.to_owned()));
            store.flush().await.unwrap();
        });
}

/// Fails unless `text` holds no control character but line feeds: nothing a terminal obeys.
fn assert_no_controls(what: &str, text: &str) {
    assert!(
        !text.chars().any(|c| c != '\n' && c.is_control()),
        "{what} printed control characters: {text:?}"
    );
}

#[test]
fn control_characters_from_the_store_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_process_recording_a_hostile_run"])
        .env("FLOWCORE_CLI_TEST_HOSTILE_CHILD", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = dir.path().join("flowcore.db");
    let db = db.to_str().unwrap();
    let ok = |args: &[&str]| {
        let mut all = vec!["--store", db];
        all.extend_from_slice(args);
        let out = run_in(None, &all);
        assert!(out.status.success(), "flowcore {args:?}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_no_controls(&format!("flowcore {args:?}"), &stdout);
        stdout
    };
    let flow = r"cli-\u{1b}]0;pwned\u{7}flow";

    let ls = normalize(&ok(&["runs", "ls"]));
    let row = ls.lines().nth(1).unwrap();
    let name = row.split(' ').next().unwrap();
    assert_eq!(
        row,
        format!("{name} {flow} Failed <date> <time> <dur> 1 Failed")
    );

    let show = ok(&["runs", "show", name]);
    let task = {
        let json: Value = serde_json::from_str(&ok(&["runs", "show", name, "--json"])).unwrap();
        let task = json["task_runs"][0]["name"].as_str().unwrap().to_owned();
        let suffix = task[task.len() - 3..].to_owned();
        format!(r"cli-\u{{1b}}[31mtask-{suffix}")
    };
    let normalized = normalize(&show);
    for line in [
        format!("Flow {flow}"),
        format!("State Failed: {HOSTILE_ERROR_SHOWN}"),
        format!("<time> Failed {HOSTILE_ERROR_SHOWN}"),
        format!("{task} Failed 1 <dur> {HOSTILE_ERROR_SHOWN}"),
        format!("Flow run '{name}': {HOSTILE_ERROR_SHOWN}"),
        format!("Task run '{task}': {HOSTILE_ERROR_SHOWN}"),
        format!(r"<time> | INFO | Task run '{task}' - body:\u{{1b}}]0;pwned\u{{7}}\r"),
    ] {
        assert!(
            normalized.lines().any(|l| l == line),
            "no {line:?} in\n{normalized}"
        );
    }
    // The logged message's second line is indented: it cannot pass for a log line.
    assert!(show.contains("\\r\n    forged | INFO | line\n"), "{show}");

    let summary = ok(&["runs", "summary", name]);
    assert!(
        summary.starts_with(&format!(
            "Flow run '{name}' for flow '{flow}': Failed: {HOSTILE_ERROR_SHOWN}\n"
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("  {HOSTILE_ERROR_SHOWN}\n")),
        "{summary}"
    );

    // JSON is escaped by serde, and holds the text itself.
    let json: Value = serde_json::from_str(&ok(&["runs", "show", name, "--json"])).unwrap();
    assert_eq!(json["task_runs"][0]["error"], HOSTILE_ERROR);

    // Error lines too: what the user typed, quoted back, and a path.
    assert_eq!(
        failure(&["--store", db, "runs", "show", "\x1b]0;x\x07"], 1),
        format!(
            r#"flowcore: no flow run named or with id "\u{{1b}}]0;x\u{{7}}" in the run store {db}"#
        )
    );
    let missing = dir.path().join("no\x1b[2Jstore.db");
    assert_eq!(
        failure(&["--store", missing.to_str().unwrap(), "runs", "ls"], 1),
        format!(
            r"flowcore: no run store at {}/no\u{{1b}}[2Jstore.db; run a flow first, or point --store / FLOWCORE_HOME at one",
            dir.path().display()
        )
    );
    assert_eq!(
        ok(&["cache", "clear", "\x1b[2J"]),
        "Removed 0 cached results of task '\\u{1b}[2J'; the cache is empty\n"
    );
}
