//! Artifacts as `flowcore artifact ls|show`, `flowcore runs show` and the run page show them:
//! the latest of each key, tables as columns, markdown rendered with its raw HTML as text.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::LazyLock;

use flowcore::artifact::{self, ArtifactError};
use flowcore::{FlowRunRecord, Store, flow, task};
use serde::Serialize;
use support::{cli, start_dashboard};

#[derive(Serialize)]
struct Row {
    region: &'static str,
    orders: u32,
}

#[task(task_run_name = "report-{day}")]
async fn report(day: u32) -> Result<(), ArtifactError> {
    artifact::table(
        "orders",
        &[
            Row {
                region: "north",
                orders: day * 10,
            },
            Row {
                region: "south-east",
                orders: 7,
            },
        ],
    )?;
    artifact::markdown(
        "summary",
        &format!("# Day {day}\n\n<script>window.__pwned = 1</script>\n\n[click](javascript:void)"),
    )?;
    Ok(())
}

#[flow(flow_run_name = "nightly-{day}")]
async fn nightly(day: u32) -> Result<(), ArtifactError> {
    report(day).await?;
    artifact::link("dashboard", "https://example.com/orders")?;
    Ok(())
}

struct Filled {
    _dir: tempfile::TempDir,
    path: PathBuf,
    second: FlowRunRecord,
}

static FILLED: LazyLock<Filled> = LazyLock::new(|| {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let store = Store::sqlite(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let second = rt.block_on(store.scope(async {
        nightly(1).await.unwrap();
        nightly(2).with_run().await.1
    }));
    rt.block_on(store.flush()).unwrap();
    Filled {
        _dir: dir,
        path,
        second,
    }
});

#[test]
fn artifact_ls_and_show_give_the_latest_of_each_key() {
    let filled = &*FILLED;
    let ls = cli::ok(&filled.path, &["artifact", "ls"]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["Key", "Kind", "Flow", "run", "Created"]);
    assert_eq!(&rows[1][..3], ["dashboard", "link", "nightly-2"]);
    assert_eq!(&rows[2][..3], ["orders", "table", "nightly-2"]);
    assert_eq!(&rows[3][..3], ["summary", "markdown", "nightly-2"]);

    let table = cli::ok(&filled.path, &["artifact", "show", "orders"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Artifact 'orders' (table), from flow run 'nightly-2' at "));
    assert_eq!(lines[2], "region      orders");
    assert_eq!(lines[3], "north       20");
    assert_eq!(lines[4], "south-east  7");
    assert_eq!(lines[6], "1 artifact earlier with this key.");

    assert_eq!(
        cli::fails(&filled.path, &["artifact", "show", "nope"], 1),
        "flowcore: no artifact with key \"nope\"; `flowcore artifact ls` lists the keys"
    );
}

#[test]
fn runs_show_lists_the_artifacts_of_the_run() {
    let filled = &*FILLED;
    let shown = cli::ok(&filled.path, &["runs", "show", "nightly-2"]);
    let at = shown.find("\nArtifacts\n").expect("an Artifacts section");
    let section: Vec<Vec<&str>> = shown[at..]
        .lines()
        .skip(2)
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(section[0], ["Key", "Kind", "Made", "by"]);
    assert_eq!(section[1], ["orders", "table", "report-2"]);
    assert_eq!(section[2], ["summary", "markdown", "report-2"]);
    assert_eq!(section[3], ["dashboard", "link", "the", "flow", "run"]);
}

#[test]
fn the_run_page_renders_artifacts_and_never_their_html() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&filled.path);
    let page = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/runs/{}", dashboard.url, filled.second.id))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("<h1>Day 2</h1>"), "markdown rendered: {page}");
    assert!(!page.contains("<script>window.__pwned"), "{page}");
    assert!(
        page.contains("&lt;script&gt;window.__pwned = 1&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("javascript:"),
        "a link's target is checked: {page}"
    );
    assert!(page.contains(r##"<a href="#">click</a>"##), "{page}");
    assert!(page.contains("<td>south-east</td>"), "{page}");
    assert!(
        page.contains(r#"<a href="https://example.com/orders" rel="noopener noreferrer">"#),
        "{page}"
    );
}
