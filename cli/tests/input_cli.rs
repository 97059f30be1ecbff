//! A flow run paused for input (`flowcore::pause`), answered from outside: `flowcore runs
//! resume RUN --input JSON` prints why input that does not fit was refused, and the run page's
//! form resumes the run.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use flowcore::pause::{self, PauseError};
use flowcore::{StateKind, Store, flow};
use support::start_dashboard;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Approval {
    ok: bool,
}

#[flow(flow_run_name = "load-{day}")]
async fn load(day: u32) -> Result<bool, PauseError> {
    let _ = day;
    let approval: Approval = pause::pause("approve <the> load?").await?;
    Ok(approval.ok)
}

#[test]
fn runs_resume_and_the_run_page_answer_a_paused_run() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let store = Store::sqlite(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let scoped = store.clone();
    let running = rt.spawn(async move { scoped.scope(load(7)).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let runs = store.flow_runs(&Default::default()).unwrap();
        if let Some(run) = runs.iter().find(|r| r.state == StateKind::Paused) {
            break run.id;
        }
        assert!(Instant::now() < deadline, "never paused");
        std::thread::sleep(Duration::from_millis(20));
    };

    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .arg("--store")
        .arg(&path)
        .args(["runs", "resume", "load-7", "--input", r#"{"ok": "yes"}"#])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "flowcore: flow run 'load-7' refused the input and stays paused: the input does not fit: invalid type: string \"yes\", expected a boolean at line 1 column 12\n"
    );

    let dashboard = start_dashboard(&path);
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/runs/{id}", dashboard.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains(r#"id="input-form""#), "{page}");
    assert!(page.contains("approve &lt;the&gt; load?"), "{page}");
    assert!(page.contains("The last input was refused"), "{page}");
    let response = client
        .post(format!("{}/runs/{id}/input", dashboard.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("input=%7B%22ok%22%3A+true%7D")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let out = rt.block_on(running).unwrap();
    assert!(out.unwrap());
    let run = store.flow_run(id).unwrap().unwrap();
    assert_eq!(
        run.history.kinds(),
        [
            StateKind::Pending,
            StateKind::Running,
            StateKind::Paused,
            StateKind::Running,
            StateKind::Completed
        ]
    );
    assert_eq!(
        run.history[3].message(),
        "resumed with input from the dashboard"
    );

    // The API: the answer as JSON, refused with 409 once the run takes no input.
    let scoped = store.clone();
    let second = rt.spawn(async move { scoped.scope(load(8)).await });
    let id = loop {
        let runs = store.flow_runs(&Default::default()).unwrap();
        if let Some(run) = runs.iter().find(|r| r.state == StateKind::Paused) {
            break run.id;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let post = |body: &str| {
        client
            .post(format!("{}/api/runs/{id}/input", dashboard.url))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap()
    };
    assert_eq!(post(r#"{"answer": true}"#).status().as_u16(), 422);
    assert_eq!(post(r#"{"input": {"ok": false}}"#).status().as_u16(), 202);
    assert!(!rt.block_on(second).unwrap().unwrap());
    let gone = post(r#"{"input": {"ok": true}}"#);
    assert_eq!(gone.status().as_u16(), 409);
}
