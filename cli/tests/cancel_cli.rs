//! `flowcore runs cancel`, the run page's Cancel button and `POST /api/runs/<id>/cancel`, against
//! a store whose deployment `sleeper` no process serves now: each cancel ends the run at once,
//! says who asked, and a run that cannot be cancelled is refused with the reason. (Runs going on
//! are dropped by the process serving them: tests/cancel.rs.)

#[path = "../../tests/support/mod.rs"]
mod support;

use std::future::IntoFuture as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use flowcore::{Deployment, StateKind, Store, flow};
use serde_json::Value;
use support::start_dashboard;

/// `flowcore --store STORE ARGS…` as the user `ada`, whom a cancel names.
fn flowcore(store: &Path, args: &[&str]) -> Output {
    support::cli::command(store, args)
        .env("USER", "ada")
        .output()
        .unwrap()
}

#[flow]
async fn sleepy() -> u32 {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    1
}

#[flow]
async fn quick() -> u32 {
    1
}

/// A store where `sleeper` was served once (so it is known) and is served no more, and a
/// plain flow run that completed.
fn store() -> (tempfile::TempDir, PathBuf, Store, String) {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let store = Store::sqlite(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt.block_on(store.scope(async {
        flowcore::serve([Deployment::new("sleeper", sleepy)])
            .with_shutdown(tokio::time::sleep(Duration::from_millis(50)))
            .into_future()
            .await
            .unwrap();
        quick().with_run().await.1.name
    }));
    rt.block_on(store.flush()).unwrap();
    (dir, path, store, done)
}

#[test]
fn runs_cancel_ends_a_run_nobody_runs_and_refuses_one_that_ended() {
    let (_dir, path, store, done) = store();
    let requested = store.request_run("sleeper", &[]).unwrap();
    let out = flowcore(&path, &["runs", "cancel", &requested.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Cancelled flow run '{}': no process was running it.\n",
            requested.name
        )
    );
    let run = store.flow_run(requested.id).unwrap().unwrap();
    assert_eq!(
        run.history.kinds(),
        [StateKind::Scheduled, StateKind::Cancelled]
    );
    let message = run.state().message();
    assert!(
        message.starts_with("cancelled by flowcore runs cancel (ada@")
            && message.ends_with(") before it started"),
        "{message}"
    );

    // Again: it ended. A run a program awaited itself: not a deployment's.
    for (run, reason) in [
        (requested.name.as_str(), "it already ended: Cancelled"),
        (done.as_str(), "it already ended: Completed"),
    ] {
        let out = flowcore(&path, &["runs", "cancel", run]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("flowcore: cannot cancel flow run '{run}': {reason}\n")
        );
    }
    let out = flowcore(&path, &["runs", "cancel", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));

    let json = store.request_run("sleeper", &[]).unwrap();
    let out = flowcore(&path, &["runs", "cancel", &json.name, "--json"]);
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["outcome"], "cancelled");
    assert_eq!(value["id"], json.id.to_string());
}

#[test]
fn the_dashboard_cancels_from_the_run_page_and_the_api() {
    let (_dir, path, store, done) = store();
    let dashboard = start_dashboard(&path);
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |id: &flowcore::Uuid| {
        client
            .get(format!("{}/runs/{id}", dashboard.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };

    let requested = store.request_run("sleeper", &[]).unwrap();
    assert!(page(&requested.id).contains(r#"id="cancel-run""#));
    let response = client
        .post(format!("{}/runs/{}/cancel", dashboard.url, requested.id))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/runs/{}", requested.id).as_str()
    );
    let run = store.flow_run(requested.id).unwrap().unwrap();
    assert_eq!(run.state().kind, StateKind::Cancelled);
    assert_eq!(
        run.state().message(),
        "cancelled by the dashboard before it started"
    );
    assert!(
        !page(&requested.id).contains(r#"id="cancel-run""#),
        "ended: no button"
    );

    let api = store.request_run("sleeper", &[]).unwrap();
    let cancel = |id: &str| {
        client
            .post(format!("{}/api/runs/{id}/cancel", dashboard.url))
            .send()
            .unwrap()
    };
    let response = cancel(&api.id.to_string());
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["outcome"], "cancelled");
    let again = cancel(&api.id.to_string());
    assert_eq!(again.status().as_u16(), 409);
    let error: Value = again.json().unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .ends_with("it already ended: Cancelled"),
        "{error}"
    );
    let done_id = store.find_flow_run(&done).unwrap();
    assert!(
        !page(&done_id).contains(r#"id="cancel-run""#),
        "not a deployment's run"
    );
    assert_eq!(
        cancel(&flowcore::Uuid::nil().to_string()).status().as_u16(),
        404
    );
    // Another site's page cannot cancel a run.
    let third = store.request_run("sleeper", &[]).unwrap();
    let forged = client
        .post(format!("{}/api/runs/{}/cancel", dashboard.url, third.id))
        .header("Origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(
        store.flow_run(third.id).unwrap().unwrap().state().kind,
        StateKind::Scheduled
    );
}
