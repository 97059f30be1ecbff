//! Artifacts (`flowcore::artifact`): made in tasks and flows, kept with the run that made them,
//! the latest of each key found across runs, bad input refused; on SQLite and PostgreSQL.

#[macro_use]
mod support;

use flowcore::artifact::{self, ArtifactError, ArtifactKind};
use flowcore::{flow, task};
use serde::Serialize;
use support::backends::TestStore;

store_tests!(
    artifacts_are_kept_with_their_runs_and_read_back_by_key,
    a_batch_with_artifacts_is_committed_with_the_runs
);

#[derive(Serialize)]
struct Row {
    region: &'static str,
    orders: u32,
}

#[task]
async fn report(day: u32) -> Result<(), ArtifactError> {
    let rows = [
        Row {
            region: "north",
            orders: 12 + day,
        },
        Row {
            region: "south",
            orders: 7,
        },
    ];
    artifact::table("orders-by-region", &rows)?;
    artifact::markdown("summary", &format!("# Day {day}\n\n<script>x</script>"))?;
    Ok(())
}

#[flow]
async fn nightly(day: u32) -> Result<(), ArtifactError> {
    report(day).await?;
    artifact::link("dashboard", "https://example.com/orders")?;
    Ok(())
}

async fn artifacts_are_kept_with_their_runs_and_read_back_by_key(ts: &TestStore) {
    let store = ts.store();
    let (out, first) = store.scope(nightly(1).with_run()).await;
    out.unwrap();
    let (out, second) = store.scope(nightly(2).with_run()).await;
    out.unwrap();
    store.flush().await.unwrap();
    let reader = ts.reopen();

    let made = reader.artifacts_of(first.id).unwrap();
    let keys: Vec<(&str, ArtifactKind)> = made.iter().map(|a| (a.key.as_str(), a.kind)).collect();
    assert_eq!(
        keys,
        [
            ("orders-by-region", ArtifactKind::Table),
            ("summary", ArtifactKind::Markdown),
            ("dashboard", ArtifactKind::Link),
        ]
    );
    // A task's artifacts are its task run's and its flow run's; the flow's, the flow run's.
    assert_eq!(made[0].task_run_id, Some(first.task_runs[0].id));
    assert_eq!(made[0].flow_run_id, Some(first.id));
    assert_eq!(made[2].task_run_id, None);
    let rows: serde_json::Value = serde_json::from_str(&made[0].body).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"region": "north", "orders": 13}, {"region": "south", "orders": 7}])
    );
    assert_eq!(
        made[1].body, "# Day 1\n\n<script>x</script>",
        "kept as written"
    );

    // The latest of each key is the second run's.
    let latest = reader.latest_artifacts().unwrap();
    let latest: Vec<(&str, Option<flowcore::Uuid>)> = latest
        .iter()
        .map(|a| (a.key.as_str(), a.flow_run_id))
        .collect();
    assert_eq!(
        latest,
        [
            ("dashboard", Some(second.id)),
            ("orders-by-region", Some(second.id)),
            ("summary", Some(second.id)),
        ]
    );
    let history = reader.artifact_history("summary").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].body, "# Day 2\n\n<script>x</script>",
        "newest first"
    );
    assert!(reader.artifact_history("nope").unwrap().is_empty());
}

#[task]
async fn many(n: u32) -> Result<(), ArtifactError> {
    artifact::markdown(&format!("note-{n}"), "x")?;
    Ok(())
}

#[flow]
async fn fan_out() -> Result<(), ArtifactError> {
    for n in 0..300 {
        many(n).await?;
    }
    Ok(())
}

async fn a_batch_with_artifacts_is_committed_with_the_runs(ts: &TestStore) {
    let store = ts.store();
    let (out, run) = store.scope(fan_out().with_run()).await;
    out.unwrap();
    let kept = ts.reopen().artifacts_of(run.id).unwrap();
    assert_eq!(
        kept.len(),
        300,
        "every artifact, committed before the flow call returned"
    );
}

#[tokio::test]
async fn bad_keys_rows_and_urls_are_refused_with_the_reason() {
    let err = artifact::markdown("Orders Today", "x").unwrap_err();
    assert!(
        err.to_string()
            .contains("use lowercase letters, digits and dashes"),
        "{err}"
    );
    let err = artifact::table("numbers", &[1, 2, 3]).unwrap_err();
    assert!(matches!(err, ArtifactError::BadRows { .. }), "{err}");
    let err = artifact::link("evil", "javascript:alert(1)").unwrap_err();
    assert!(matches!(err, ArtifactError::BadUrl { .. }), "{err}");
}
