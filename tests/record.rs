//! What a run leaves behind: run names, the end-of-run summary text and the JSON record.

use std::collections::BTreeSet;
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{FlowRunRecord, TaskRunRecord, Timestamp, flow, task};
use serde_json::{Value, json};
use tokio::time::sleep;

#[task]
async fn report_extract() -> u32 {
    sleep(Duration::from_millis(12)).await;
    7
}

#[task(cache_for = "1h")]
async fn report_lookup(x: u32) -> u32 {
    sleep(Duration::from_millis(250)).await;
    x * 2
}

#[task(retries = 2, retry_delay = "1s", tags = ["nightly", "io"])]
async fn report_upload(size: u32) -> Result<(), String> {
    sleep(Duration::from_secs(2)).await;
    Err(format!("disk full ({size} bytes left)"))
}

/// Records to a fresh in-memory store: these tests read the cache's hit and miss, which a
/// store kept between test runs would change. Called first by every test of this binary,
/// since a process installs one store before its first run.
fn memory_store() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| flowcore::Store::memory().install().unwrap());
}

#[flow(name = "nightly-report")]
async fn nightly_report(key: u32) -> u32 {
    // The cache is global to the process: each test passes its own key.
    let rows = report_extract().await;
    let a = report_lookup(rows + key).await;
    let b = report_lookup(rows + key).await;
    let _ = report_upload(0).await;
    a + b
}

fn short_id(run: &TaskRunRecord) -> String {
    let id = run.id.simple().to_string();
    id[id.len() - 3..].to_owned()
}

#[tokio::test(start_paused = true)]
async fn the_summary_lists_every_task_run_with_counts_and_a_headline() {
    memory_store();
    let (out, run) = nightly_report(1).with_run().await;
    assert_eq!(out, 32);
    let names: Vec<String> = run.task_runs.iter().map(|r| r.name().to_string()).collect();
    let [extract, lookup_miss, lookup_hit, upload] = &names[..] else {
        panic!("four task runs expected: {names:?}");
    };
    let summary = run.summary().to_string();
    let expected = format!(
        "\
Flow run '{flow_run}' for flow 'nightly-report': Completed — 1 task run failed and was handled
Task run            State      Attempts  Duration  Cache  Error
{extract}  Completed         1    12.0ms
{lookup_miss}   Completed         1   250.0ms  miss
{lookup_hit}   Cached            0       0µs  hit
{upload}   Failed            3     8.00s         disk full (0 bytes left)
4 task runs: 2 Completed, 1 Cached, 1 Failed · total 8.26s",
        flow_run = run.name,
    );
    assert_eq!(summary, expected, "\n{summary}");
    assert_eq!(
        run.summary().headline(),
        "Completed — 1 task run failed and was handled"
    );
}

#[flow(name = "empty-flow")]
async fn empty_flow() -> Result<(), String> {
    Err("nothing to do".into())
}

#[tokio::test(start_paused = true)]
async fn a_summary_without_task_runs_shows_the_failure_and_zero_counts() {
    memory_store();
    let (_, run) = empty_flow().with_run().await;
    assert_eq!(
        run.summary().to_string(),
        format!(
            "Flow run '{}' for flow 'empty-flow': Failed: nothing to do\n0 task runs · total 0µs",
            run.name
        )
    );
}

#[flow(name = "summary-child")]
async fn summary_child() -> u32 {
    report_extract().await
}

#[flow(name = "summary-parent")]
async fn summary_parent() -> u32 {
    summary_child().await + report_extract().await
}

#[tokio::test(start_paused = true)]
async fn a_summary_names_its_subflow_runs() {
    memory_store();
    let (_, run) = summary_parent().with_run().await;
    let child = &run.subflow_runs[0];
    let extract = run.task_runs[0].name().to_string();
    assert_eq!(
        run.summary().to_string(),
        format!(
            "\
Flow run '{}' for flow 'summary-parent': Completed
Task run            State      Attempts  Duration
{extract}  Completed         1    12.0ms
Subflow run '{}' for flow 'summary-child': Completed
1 task run: 1 Completed · total 24.0ms",
            run.name, child.name
        )
    );
}

#[task(name = "bad\x1b[31mtask")]
async fn report_hostile() -> Result<(), String> {
    Err("line one\x1b]0;pwned\x07\nline two\u{9b}".into())
}

#[flow(name = "bad\x1b]8;;http://evil.example\x1b\\flow")]
async fn hostile_report() -> Result<(), String> {
    report_hostile().await
}

#[flow(name = "hostile-parent")]
async fn hostile_parent() -> Result<(), String> {
    let _ = hostile_report().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_summary_shows_control_characters_escaped_and_each_row_on_one_line() {
    memory_store();
    let (_, run) = hostile_parent().with_run().await;
    let sub = &run.subflow_runs[0];
    let id = short_id(&sub.task_runs[0]);
    assert_eq!(
        sub.summary().to_string(),
        format!(
            r"Flow run '{}' for flow 'bad\u{{1b}}]8;;http://evil.example\u{{1b}}\flow': Failed: line one\u{{1b}}]0;pwned\u{{7}}\nline two\u{{9b}}
Task run               State   Attempts  Duration  Error
bad\u{{1b}}[31mtask-{id}  Failed         1       0µs  line one\u{{1b}}]0;pwned\u{{7}}\nline two\u{{9b}}
1 task run: 1 Failed · total 0µs",
            sub.name
        )
    );
    assert_eq!(
        run.summary().to_string(),
        format!(
            r"Flow run '{}' for flow 'hostile-parent': Completed
Subflow run '{}' for flow 'bad\u{{1b}}]8;;http://evil.example\u{{1b}}\flow': Failed: line one\u{{1b}}]0;pwned\u{{7}}\nline two\u{{9b}}
0 task runs · total 0µs",
            run.name, sub.name
        )
    );
    // `headline` is the text itself, for JSON and for callers that escape for their medium.
    assert_eq!(
        sub.summary().headline(),
        "Failed: line one\x1b]0;pwned\x07\nline two\u{9b}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_names_are_adjective_animal_and_task_dash_id_suffix() {
    memory_store();
    let mut flow_names = BTreeSet::new();
    for _ in 0..30 {
        let (_, run) = summary_child().with_run().await;
        let (adjective, animal) = run
            .name
            .split_once('-')
            .unwrap_or_else(|| panic!("{:?} is not adjective-animal", run.name));
        for word in [adjective, animal] {
            assert!(
                !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()),
                "{:?} is not adjective-animal",
                run.name
            );
        }
        flow_names.insert(run.name.clone());

        let task_run = &run.task_runs[0];
        let name = task_run.name().to_string();
        assert_eq!(name, format!("report_extract-{}", short_id(task_run)));
        assert_eq!(name.len(), "report_extract-".len() + 3);
        assert!(name[15..].chars().all(|c| c.is_ascii_hexdigit()));
        // Time-ordered ids: the store's indexes grow at their end.
        assert_eq!(task_run.id.get_version_num(), 7);
        assert_eq!(run.id.get_version_num(), 7);
    }
    assert!(
        flow_names.len() > 1,
        "30 flow runs all named {flow_names:?}"
    );
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// `2026-11-22T18:02:00.123456Z`: RFC 3339 in UTC with microseconds.
fn assert_rfc3339(text: &str) {
    let bytes = text.as_bytes();
    assert_eq!(bytes.len(), 27, "{text}");
    for (i, b) in bytes.iter().enumerate() {
        let expected_sep = match i {
            4 | 7 => Some(b'-'),
            10 => Some(b'T'),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            26 => Some(b'Z'),
            _ => None,
        };
        match expected_sep {
            Some(sep) => assert_eq!(*b, sep, "{text}"),
            None => assert!(b.is_ascii_digit(), "{text}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_record_serializes_to_json_with_derived_fields() {
    memory_store();
    let (_, run) = nightly_report(2).with_run().await;
    let json = serde_json::to_value(&run).unwrap();

    assert_eq!(
        keys(&json),
        [
            "attempts",
            "flow",
            "history",
            "id",
            "name",
            "parent_id",
            "subflow_runs",
            "tags",
            "task_runs"
        ]
    );
    assert_eq!(json["id"], run.id.to_string());
    assert_eq!(json["name"], run.name);
    assert_eq!(json["flow"], "nightly-report");
    assert_eq!(json["parent_id"], Value::Null);
    assert_eq!(json["attempts"], 1);
    assert_eq!(json["subflow_runs"], json!([]));
    let history = json["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(keys(&history[0]), ["at", "kind"]);
    let kinds: Vec<&Value> = history.iter().map(|s| &s["kind"]).collect();
    assert_eq!(kinds, ["Pending", "Running", "Completed"]);
    for (state, entry) in run.history.iter().zip(history) {
        let at = entry["at"].as_str().unwrap();
        assert_rfc3339(at);
        assert_eq!(at, state.at.to_string());
        assert_eq!(
            serde_json::from_value::<Timestamp>(entry["at"].clone()).unwrap(),
            state.at
        );
    }

    let task_runs = json["task_runs"].as_array().unwrap();
    assert_eq!(task_runs.len(), 4);
    assert_eq!(
        keys(&task_runs[0]),
        [
            "attempts",
            "cache",
            "duration_secs",
            "error",
            "flow_run_id",
            "history",
            "id",
            "map_index",
            "name",
            "state",
            "tags",
            "task",
            "upstream"
        ]
    );
    let brief: Vec<Value> = task_runs
        .iter()
        .map(|r| {
            json!([
                r["task"],
                r["state"],
                r["attempts"],
                r["cache"],
                r["error"],
                r["duration_secs"]
            ])
        })
        .collect();
    assert_eq!(
        brief,
        [
            json!(["report_extract", "Completed", 1, "off", null, 0.012]),
            json!(["report_lookup", "Completed", 1, "miss", null, 0.25]),
            json!(["report_lookup", "Cached", 0, "hit", null, 0.0]),
            json!([
                "report_upload",
                "Failed",
                3,
                "off",
                "disk full (0 bytes left)",
                8.0
            ]),
        ]
    );
    for (record, value) in run.task_runs.iter().zip(task_runs) {
        assert_eq!(value["name"], record.name().to_string());
        assert_eq!(value["id"], record.id.to_string());
        assert_eq!(value["flow_run_id"], run.id.to_string());
    }
    let upload = &task_runs[3];
    assert_eq!(upload["tags"], json!(["nightly", "io"]));
    assert_eq!(task_runs[0]["tags"], json!([]));
    let upload_history = upload["history"].as_array().unwrap();
    assert_eq!(
        upload_history
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "Pending", "Running", "Retrying", "Running", "Retrying", "Running", "Failed"
        ]
    );
    assert_eq!(upload_history[1]["message"], "attempt 1/3");
    assert_eq!(
        upload_history[2]["message"],
        "attempt 1/3 failed: disk full (0 bytes left); retrying in 1s"
    );
    assert_eq!(upload_history[6]["message"], "disk full (0 bytes left)");
    assert_eq!(task_runs[2]["history"][1]["message"], "cache hit");
    for entry in upload_history {
        assert_rfc3339(entry["at"].as_str().unwrap());
    }

    // The derived fields are ignored on the way back: the record round-trips exactly.
    let back: FlowRunRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, run);
}

#[tokio::test(start_paused = true)]
async fn a_subflow_serializes_inside_its_parent_with_its_parent_id() {
    memory_store();
    let (_, run) = summary_parent().with_run().await;
    let json = serde_json::to_value(&run).unwrap();
    let child = &json["subflow_runs"][0];
    assert_eq!(child["flow"], "summary-child");
    assert_eq!(child["parent_id"], run.id.to_string());
    assert_eq!(child["task_runs"][0]["flow_run_id"], child["id"]);
    assert_eq!(child["task_runs"][0]["task"], "report_extract");
    let text = serde_json::to_string(&run).unwrap();
    assert_eq!(serde_json::from_str::<FlowRunRecord>(&text).unwrap(), run);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
}
