//! Pausing a flow run for input (`flowcore::pause`): the run goes `Paused` with its question and
//! the answer's schema, input that does not fit is refused with the reason and the run stays
//! paused, input that fits resumes it typed; a timeout gives up. On SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use flowcore::StateKind::*;
use flowcore::pause::{self, PauseError};
use flowcore::{Store, StoreError, Uuid, flow};
use support::backends::TestStore;

store_tests!(input_that_fits_resumes_the_run_and_input_that_does_not_is_refused);

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Approval {
    ok: bool,
    #[serde(default)]
    note: Option<String>,
}

#[flow]
async fn load() -> Result<String, PauseError> {
    let approval: Approval = pause::pause("approve the load?").await?;
    Ok(format!(
        "{} {}",
        approval.ok,
        approval.note.unwrap_or_default()
    ))
}

async fn paused_run(store: &Store) -> Uuid {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = store.flow_runs(&Default::default()).unwrap();
        if let Some(run) = runs.iter().find(|r| r.state == Paused) {
            return run.id;
        }
        assert!(Instant::now() < deadline, "the run never paused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn input_that_fits_resumes_the_run_and_input_that_does_not_is_refused(ts: &TestStore) {
    let store = ts.store().clone();
    let scoped = store.clone();
    let running = tokio::spawn(async move { scoped.scope(load().with_run()).await });
    let id = paused_run(&store).await;
    let reader = ts.reopen();
    let asked = reader.input_request(&id.to_string()).unwrap().unwrap();
    assert_eq!(asked.question, "approve the load?");
    let schema: serde_json::Value = serde_json::from_str(&asked.schema).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["ok"]), "{schema}");
    let run = reader.flow_run(id).unwrap().unwrap();
    assert_eq!(run.history.kinds(), [Pending, Running, Paused]);
    assert_eq!(run.state().message(), "approve the load?");

    // Not JSON: refused at once. JSON of the wrong shape: refused by the run, which stays paused.
    match store.give_input(&id.to_string(), "{ok: yes}", "ada") {
        Err(StoreError::BadParameter(m)) => assert!(m.starts_with("the input is not JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
    store
        .give_input(&id.to_string(), r#"{"ok": "yes"}"#, "ada")
        .unwrap();
    let refused = loop {
        let r = reader.input_request(&id.to_string()).unwrap().unwrap();
        if let Some(reason) = r.refused {
            break reason;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        refused.starts_with(
            "the input does not fit: invalid type: string \"yes\", expected a boolean"
        ),
        "{refused}"
    );
    assert_eq!(reader.flow_run(id).unwrap().unwrap().state().kind, Paused);

    store
        .give_input(&id.to_string(), r#"{"ok": true, "note": "go"}"#, "ada")
        .unwrap();
    let (out, run) = running.await.unwrap();
    assert_eq!(out.unwrap(), "true go");
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Paused, Running, Completed]
    );
    assert_eq!(run.history[3].message(), "resumed with input from ada");
    let stored = ts.reopen().flow_run(id).unwrap().unwrap();
    assert_eq!(stored.history.kinds(), run.history.kinds());

    // Ended: it takes no more input.
    match store.give_input(&id.to_string(), "{}", "ada") {
        Err(StoreError::NotPaused { reason, .. }) => {
            assert_eq!(reason, "it is Completed, not Paused")
        }
        other => panic!("{other:?}"),
    }
}

#[flow]
async fn impatient() -> Result<bool, PauseError> {
    match pause::pause::<bool>("go?")
        .timeout(Duration::from_secs(3600))
        .await
    {
        Err(PauseError::TimedOut(_)) => Ok(false),
        other => other,
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_with_a_timeout_gives_up_on_tokio_s_clock() {
    let store = Store::memory();
    let (out, run) = store.scope(impatient().with_run()).await;
    assert!(!out.unwrap());
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Paused, Running, Completed]
    );
    assert_eq!(run.history[3].message(), "no input within 1h");
}

#[tokio::test]
async fn pause_outside_a_flow_is_an_error() {
    let err = pause::pause::<bool>("go?").await.unwrap_err();
    assert!(matches!(err, PauseError::NotInFlow), "{err}");
}
