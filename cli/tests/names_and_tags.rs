//! Run names (`task_run_name`, `flow_run_name`) and flow run tags as the CLI and the dashboard
//! show them and filter by them, against a store this test binary fills by running real flows.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::LazyLock;

use flowcore::{FlowRunRecord, Store, flow, task};
use serde_json::Value;
use support::cli::ok as flowcore;
use support::start_dashboard;

/// A name that must reach every page as text, never as markup.
const HOSTILE: &str = "<b>bold</b>";

#[task(task_run_name = "fetch-{url}", tags = ["http"])]
async fn fetch(url: &str) -> usize {
    url.len()
}

#[flow(flow_run_name = "nightly-{day}", tags = ["nightly", "<i>team</i>"])]
async fn nightly(day: u32) -> usize {
    fetch("example.com").await + fetch(HOSTILE).await + day as usize
}

#[flow]
async fn untagged() -> usize {
    fetch("other.org").await
}

struct Filled {
    _dir: tempfile::TempDir,
    path: PathBuf,
    tagged: FlowRunRecord,
    untagged: FlowRunRecord,
}

static FILLED: LazyLock<Filled> = LazyLock::new(|| {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let store = Store::sqlite(&path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tagged, untagged) = runtime.block_on(store.scope(async {
        let (_, tagged) = nightly(7).with_run().await;
        let (_, untagged) = untagged().with_run().await;
        (tagged, untagged)
    }));
    runtime.block_on(store.flush()).unwrap();
    Filled {
        _dir: dir,
        path,
        tagged,
        untagged,
    }
});

#[test]
fn runs_ls_tag_lists_only_the_runs_carrying_it() {
    let filled = &*FILLED;
    let listed = flowcore(&filled.path, &["runs", "ls", "--tag", "nightly"]);
    assert!(listed.contains("nightly-7"), "{listed}");
    assert!(!listed.contains(&filled.untagged.name), "{listed}");
    let json: Value = serde_json::from_str(&flowcore(
        &filled.path,
        &["runs", "ls", "--tag", "nightly", "--json"],
    ))
    .unwrap();
    let runs = json.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["name"], "nightly-7");
    assert_eq!(
        runs[0]["tags"],
        serde_json::json!(["nightly", "<i>team</i>"])
    );
    // A tag matches whole: `night` is not `nightly`.
    assert_eq!(
        flowcore(&filled.path, &["runs", "ls", "--tag", "night"]),
        "No flow runs tagged 'night'.\n"
    );
}

#[test]
fn runs_show_gives_the_tags_and_the_task_runs_given_names() {
    let filled = &*FILLED;
    let shown = flowcore(&filled.path, &["runs", "show", "nightly-7"]);
    let tags = shown
        .lines()
        .find(|l| l.trim_start().starts_with("Tags"))
        .unwrap();
    assert_eq!(
        tags.split_whitespace().collect::<Vec<_>>(),
        ["Tags", "nightly,", "<i>team</i>"]
    );
    assert!(shown.contains("fetch-example.com"), "{shown}");
    assert!(shown.contains(&format!("fetch-{HOSTILE}")), "{shown}");
    let json: Value = serde_json::from_str(&flowcore(
        &filled.path,
        &["runs", "show", "nightly-7", "--json"],
    ))
    .unwrap();
    let names: Vec<&str> = json["task_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fetch-example.com", "fetch-<b>bold</b>"]);
    // The flow's tags come after the task's own.
    assert_eq!(
        json["task_runs"][0]["tags"],
        serde_json::json!(["http", "nightly", "<i>team</i>"])
    );
    assert_eq!(filled.tagged.name, "nightly-7");
}

#[test]
fn the_dashboard_filters_by_tag_and_shows_names_and_tags_escaped() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&filled.path);
    let get = |path: &str| {
        let response = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}{path}", dashboard.url))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.text().unwrap()
    };
    let runs = get("/runs?tag=nightly");
    assert!(runs.contains("nightly-7"), "{runs}");
    assert!(!runs.contains(&filled.untagged.name), "{runs}");
    assert!(
        runs.contains(r#"value="nightly""#),
        "the filter keeps its value: {runs}"
    );
    assert!(runs.contains("&lt;i&gt;team&lt;/i&gt;"), "{runs}");
    assert!(!runs.contains("<i>team"), "{runs}");
    let page = get(&format!("/runs/{}", filled.tagged.id));
    assert!(page.contains("fetch-example.com"), "{page}");
    assert!(page.contains("fetch-&lt;b&gt;bold&lt;/b&gt;"), "{page}");
    assert!(!page.contains(HOSTILE), "{page}");
    assert!(page.contains(r#"id="run-tags""#), "{page}");
    let api: Value = serde_json::from_str(&get("/api/runs?tag=%3Ci%3Eteam%3C%2Fi%3E")).unwrap();
    let names: Vec<&str> = api["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly-7"]);
}
