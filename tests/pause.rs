//! Pausing a deployment's schedule (`Store::pause_deployment`, `flowcore deployment pause`):
//! while paused its scheduled times pass without a run, runs requested by hand still run, a
//! process serving it again keeps it paused, and on resume the schedule goes on from its next
//! time due, without making up the times it missed. On tokio's paused clock, on each store: in
//! memory, SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::future::IntoFuture as _;
use std::time::Duration;

use flowcore::store::RunFilter;
use flowcore::{Deployment, FlowRunRecord, StateKind, Store, StoreError, Timestamp, flow, task};
use support::backends::TestStore;
use tokio::time::sleep;

/// Runs each listed `async fn NAME(store: &Store)` on a memory store, a SQLite file and a
/// PostgreSQL database, each on tokio's paused clock.
macro_rules! on_every_store {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(start_paused = true)]
                async fn memory() {
                    super::$name(&flowcore::Store::memory()).await;
                }

                #[tokio::test(start_paused = true)]
                async fn sqlite() {
                    let ts = super::TestStore::sqlite();
                    super::$name(ts.store()).await;
                }

                #[tokio::test(start_paused = true)]
                async fn postgres() {
                    let Some(ts) = super::TestStore::postgres(stringify!($name)) else {
                        return;
                    };
                    super::$name(ts.store()).await;
                }
            }
        )+
    };
}

on_every_store!(
    a_paused_schedule_starts_no_runs_and_resumes_at_the_next_time_due,
    a_run_requested_by_hand_runs_while_the_schedule_is_paused,
    a_deployment_served_again_stays_paused,
    pausing_twice_keeps_the_first_pause_and_unknown_deployments_are_named,
);

#[task]
async fn step() -> u32 {
    1
}

#[flow(name = "pausable")]
async fn pausable() -> u32 {
    step().await
}

const MINUTE: i64 = 60_000_000;

/// Waits (on tokio's clock) until `offset` past the next whole minute; returns that minute, in
/// microseconds of the epoch.
async fn align(offset: Duration) -> i64 {
    let now = Timestamp::now().as_micros();
    let minute = now.div_euclid(MINUTE) * MINUTE + MINUTE;
    sleep(Duration::from_micros(
        (minute + offset.as_micros() as i64 - now) as u64,
    ))
    .await;
    minute
}

/// Sleeps until `minute` plus `offset` seconds.
async fn until(minute: i64, offset_secs: i64) {
    let at = minute + offset_secs * 1_000_000;
    let now = Timestamp::now().as_micros();
    assert!(at >= now, "the test's own timeline runs forward");
    sleep(Duration::from_micros((at - now) as u64)).await;
}

/// The runs of `deployment`, oldest first.
fn runs_of(store: &Store, deployment: &str) -> Vec<FlowRunRecord> {
    let filter = RunFilter {
        limit: 1000,
        ..RunFilter::default()
    };
    let mut runs: Vec<FlowRunRecord> = store
        .flow_runs(&filter)
        .unwrap()
        .into_iter()
        .filter(|r| r.deployment.as_deref() == Some(deployment))
        .map(|r| store.flow_run(r.id).unwrap().unwrap())
        .collect();
    runs.sort_by_key(|r| r.history[0].at);
    runs
}

/// When each run was scheduled, in seconds after `minute`.
fn scheduled_secs(runs: &[FlowRunRecord], minute: i64) -> Vec<i64> {
    runs.iter()
        .map(|r| (r.history[0].at.as_micros() - minute) / 1_000_000)
        .collect()
}

fn paused_at(store: &Store, deployment: &str) -> Option<Timestamp> {
    store
        .deployments()
        .unwrap()
        .into_iter()
        .find(|d| d.name == deployment)
        .unwrap_or_else(|| panic!("no deployment {deployment}"))
        .paused_at
}

/// Serves `deployment` (every minute) on `store` until `stop` completes, beside `driver`.
async fn serve_beside(
    store: &Store,
    deployment: &str,
    stop: impl Future<Output = ()> + Send + 'static,
    driver: impl Future<Output = ()>,
) {
    let serving = flowcore::serve([Deployment::new(deployment, pausable).every("1m")])
        .with_shutdown(stop)
        .into_future();
    let (served, ()) = tokio::join!(store.scope(serving), driver);
    served.unwrap();
}

async fn a_paused_schedule_starts_no_runs_and_resumes_at_the_next_time_due(store: &Store) {
    // Serving starts at M + 10 s, so the times due are M + 1 min, M + 2 min, …
    let m = align(Duration::from_secs(10)).await;
    let stop = sleep(Duration::from_secs(6 * 60 + 20));
    serve_beside(store, "minutely", stop, async {
        until(m, 70).await;
        assert_eq!(scheduled_secs(&runs_of(store, "minutely"), m), [60]);
        assert!(
            store.pause_deployment("minutely").unwrap(),
            "it was running"
        );
        assert!(paused_at(store, "minutely").is_some());

        // M + 2, 3 and 4 min pass while it is paused; it is resumed half a minute later.
        until(m, 270).await;
        assert_eq!(scheduled_secs(&runs_of(store, "minutely"), m), [60]);
        assert!(
            store.resume_deployment("minutely").unwrap(),
            "it was paused"
        );
        assert_eq!(paused_at(store, "minutely"), None);
    })
    .await;

    // Nothing for the times missed, nothing at the resume itself: the next time due, M + 5 min,
    // and the one after.
    let runs = runs_of(store, "minutely");
    assert_eq!(scheduled_secs(&runs, m), [60, 300, 360]);
    for run in &runs {
        assert_eq!(run.state().kind, StateKind::Completed);
    }
}

async fn a_run_requested_by_hand_runs_while_the_schedule_is_paused(store: &Store) {
    // Three minutes: three scheduled times pass, paused.
    let stop = sleep(Duration::from_secs(3 * 60));
    serve_beside(store, "by-hand", stop, async {
        // Requested at once: a request is stamped with the wall clock, which tokio's paused
        // clock leaves behind as it jumps (a run that starts 15 s after it would be Late).
        sleep(Duration::from_millis(100)).await;
        assert!(store.pause_deployment("by-hand").unwrap());
        let requested = store.request_run("by-hand", &[]).unwrap();
        // Its states reach the store on the writer's thread, which tokio's clock does not
        // wait for: looked at until it ended.
        for _ in 0..1000 {
            let run = store.flow_run(requested.id).unwrap().unwrap();
            if run.state().is_final() {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let runs = runs_of(store, "by-hand");
    assert_eq!(runs.len(), 1, "the requested run alone");
    assert_eq!(
        runs[0].history[0].message.as_deref(),
        Some("requested by hand")
    );
    assert_eq!(
        runs[0].history.kinds(),
        [
            StateKind::Scheduled,
            StateKind::Pending,
            StateKind::Running,
            StateKind::Completed
        ]
    );
    assert!(paused_at(store, "by-hand").is_some(), "still paused");
}

async fn a_deployment_served_again_stays_paused(store: &Store) {
    let m = align(Duration::from_secs(5)).await;
    serve_beside(store, "again", sleep(Duration::from_secs(5)), async {}).await;
    assert!(store.pause_deployment("again").unwrap());
    let first_pause = paused_at(store, "again").expect("paused");

    // Its definition is written again by the new process, its pause kept: no run at M + 1 min
    // nor M + 2 min.
    let stop = sleep(Duration::from_secs(2 * 60));
    serve_beside(store, "again", stop, async {
        until(m, 61).await;
        assert_eq!(paused_at(store, "again"), Some(first_pause));
    })
    .await;
    assert_eq!(runs_of(store, "again").len(), 0);
    assert_eq!(paused_at(store, "again"), Some(first_pause));
}

async fn pausing_twice_keeps_the_first_pause_and_unknown_deployments_are_named(store: &Store) {
    serve_beside(store, "twice", sleep(Duration::from_secs(1)), async {}).await;
    assert_eq!(
        paused_at(store, "twice"),
        None,
        "a deployment starts active"
    );
    assert!(!store.resume_deployment("twice").unwrap(), "not paused");

    assert!(store.pause_deployment("twice").unwrap());
    let first = paused_at(store, "twice").expect("paused");
    sleep(Duration::from_secs(1)).await;
    assert!(!store.pause_deployment("twice").unwrap(), "paused already");
    assert_eq!(paused_at(store, "twice"), Some(first));

    for result in [
        store.pause_deployment("nope"),
        store.resume_deployment("nope"),
    ] {
        match result {
            Err(e @ StoreError::UnknownDeployment { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "no deployment named \"nope\" in the run store {}; deployments: twice",
                    store.describe()
                )
            ),
            other => panic!("expected an unknown deployment, got {other:?}"),
        }
    }
    assert_eq!(paused_at(store, "twice"), Some(first), "untouched");
}
