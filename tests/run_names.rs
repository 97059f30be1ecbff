//! Run names (`task_run_name`, `flow_run_name`) and tags on flows: what the record says, what
//! hooks see, and what the store keeps and filters by, on SQLite and on PostgreSQL.

#[macro_use]
mod support;

use std::sync::Mutex;

use flowcore::store::RunFilter;
use flowcore::{RunInfo, State, flow, task};
use support::backends::TestStore;

store_tests!(
    task_runs_are_stored_and_read_back_under_their_given_names,
    flow_runs_are_stored_with_their_tags_and_listed_by_tag,
);

#[task(task_run_name = "fetch-{url}")]
async fn fetch(url: &str, attempt: u32) -> usize {
    url.len() + attempt as usize
}

#[task(task_run_name = "{n:>03}-of-{total}")]
async fn part(n: u32, total: u32) -> u32 {
    n * total
}

fn load_name(table: &str, rows: &[u32]) -> String {
    format!("load {table} ({} rows)", rows.len())
}

#[task(task_run_name = load_name)]
async fn load(table: &str, rows: Vec<u32>) -> usize {
    let _ = table;
    rows.len()
}

#[task]
async fn plain() {}

#[flow(flow_run_name = "etl-{day}")]
async fn etl(day: String) -> usize {
    let _ = day;
    fetch("example.com", 1).await + part(7, 9).await as usize + load("orders", vec![1, 2]).await
}

#[flow(flow_run_name = |n: &u32| format!("batch #{n}"))]
async fn batch(n: u32) -> u32 {
    n
}

#[flow]
async fn unnamed() {
    plain().await;
}

#[tokio::test]
async fn a_template_names_the_task_run_from_its_arguments() {
    let (_, run) = fetch("example.com", 2).with_run().await;
    assert_eq!(run.name().to_string(), "fetch-example.com");
    assert_eq!(run.given_name.as_deref(), Some("fetch-example.com"));
    // The format spec of a placeholder applies, as in `format!`.
    let (_, run) = part(7, 12).with_run().await;
    assert_eq!(run.name().to_string(), "007-of-12");
}

#[tokio::test]
async fn a_function_names_the_task_run_from_references_to_its_arguments() {
    let (_, run) = load("orders", vec![1, 2, 3]).with_run().await;
    assert_eq!(run.name().to_string(), "load orders (3 rows)");
}

#[tokio::test]
async fn flow_runs_are_named_by_a_template_or_a_closure() {
    let (_, run) = etl("2026-12-07".into()).with_run().await;
    assert_eq!(run.name, "etl-2026-12-07");
    let names: Vec<String> = run.task_runs.iter().map(|t| t.name().to_string()).collect();
    assert_eq!(
        names,
        ["fetch-example.com", "007-of-9", "load orders (2 rows)"]
    );
    let (_, run) = batch(12).with_run().await;
    assert_eq!(run.name, "batch #12");
}

#[tokio::test]
async fn default_names_are_unchanged() {
    let (_, run) = unnamed().with_run().await;
    // adjective-animal
    assert_eq!(run.name.split('-').count(), 2, "{}", run.name);
    let task = &run.task_runs[0];
    assert_eq!(task.given_name, None);
    let name = task.name().to_string();
    let suffix = name
        .strip_prefix("plain-")
        .expect("task name, then the id's digits");
    assert_eq!(suffix.len(), 3);
    assert!(name.ends_with(&format!("{:03x}", task.id.as_u128() & 0xfff)));
}

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember(run: &RunInfo, _: &State, new: &State) {
    SEEN.lock()
        .unwrap()
        .push(format!("{} {}", run.name(), new.kind));
}

#[task(task_run_name = "greet-{who}", on_state = remember)]
async fn greet(who: &str) {
    let _ = who;
}

#[tokio::test]
async fn hooks_see_the_given_name() {
    greet("ada").await;
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen, ["greet-ada Running", "greet-ada Completed"]);
}

// ---------------------------------------------------------------------------------------------
// Tags on flows.

#[task(tags = ["db"])]
async fn query() {}

#[task(tags = ["nightly", "db"])]
async fn tagged_twice() {}

#[flow(tags = ["reports"])]
async fn report() {
    query().await;
}

#[flow(tags = ["nightly"])]
async fn nightly() {
    query().await;
    tagged_twice().await;
    report().await;
}

#[tokio::test]
async fn task_runs_and_subflow_runs_carry_their_flow_runs_tags() {
    let ((), run) = nightly().with_run().await;
    assert_eq!(run.tags, ["nightly"]);
    let tags =
        |t: &flowcore::TaskRunRecord| t.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    // The task's own tags first, then the flow run's it lacks.
    assert_eq!(tags(&run.task_runs[0]), ["db", "nightly"]);
    assert_eq!(tags(&run.task_runs[1]), ["nightly", "db"]);
    let sub = &run.subflow_runs[0];
    assert_eq!(sub.tags, ["reports", "nightly"]);
    assert_eq!(tags(&sub.task_runs[0]), ["db", "reports", "nightly"]);
}

async fn task_runs_are_stored_and_read_back_under_their_given_names(ts: &TestStore) {
    let store = ts.store();
    let (_, run) = store.scope(etl("2026-12-07".into()).with_run()).await;
    store.flush().await.unwrap();
    let read = ts.reopen().flow_run(run.id).unwrap().expect("stored");
    assert_eq!(read.name, "etl-2026-12-07");
    let mut names: Vec<String> = read
        .task_runs
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["007-of-9", "fetch-example.com", "load orders (2 rows)"]
    );
    assert_eq!(ts.store().find_flow_run("etl-2026-12-07").unwrap(), run.id);

    let ((), plain_run) = store.scope(unnamed().with_run()).await;
    let read = ts.reopen().flow_run(plain_run.id).unwrap().expect("stored");
    assert_eq!(read.task_runs[0].given_name, None);
    assert_eq!(
        read.task_runs[0].name().to_string(),
        plain_run.task_runs[0].name().to_string()
    );
}

async fn flow_runs_are_stored_with_their_tags_and_listed_by_tag(ts: &TestStore) {
    let store = ts.store();
    let ((), tagged) = store.scope(nightly().with_run()).await;
    let ((), untagged) = store.scope(unnamed().with_run()).await;
    store.flush().await.unwrap();
    let reader = ts.reopen();
    let read = reader.flow_run(tagged.id).unwrap().expect("stored");
    assert_eq!(read.tags, ["nightly"]);
    assert_eq!(read.subflow_runs[0].tags, ["reports", "nightly"]);
    let query = read.task_runs_of("query").next().unwrap();
    assert_eq!(
        query.tags.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["db", "nightly"]
    );

    let listed = |tag: &str| -> Vec<_> {
        reader
            .flow_runs(&RunFilter {
                tag: Some(tag.to_owned()),
                limit: 100,
                ..RunFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(
        listed("nightly").len(),
        2,
        "the flow run and its subflow run"
    );
    assert!(listed("nightly").contains(&tagged.id));
    assert!(!listed("nightly").contains(&untagged.id));
    assert_eq!(listed("reports"), [read.subflow_runs[0].id]);
    // A tag is matched whole and by case.
    assert!(listed("night").is_empty());
    assert!(listed("Nightly").is_empty());
    let all = reader
        .flow_runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .unwrap();
    let summary = all.iter().find(|r| r.id == tagged.id).unwrap();
    assert_eq!(summary.tags, ["nightly"]);
}
