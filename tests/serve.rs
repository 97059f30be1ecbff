//! Serving deployments, on tokio's paused clock: schedules tick at the right instants over a
//! simulated day, overlap policies, Late runs, graceful shutdown, runs requested by hand and
//! their parameter errors, and the errors that stop serving from starting.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use flowcore::schedule::Schedule;
use flowcore::store::RunFilter;
use flowcore::{
    Deployment, FlowRunRecord, Overlap, StateKind, Store, StoreError, Timestamp, flow, task,
};
use serde::{Deserialize, Serialize};
use tokio::time::sleep;

use StateKind::{Cancelled, Completed, Late, Pending, Running, Scheduled};

/// One memory store for the whole test binary: tests tell their runs apart by deployment.
static STORE: LazyLock<Store> = LazyLock::new(|| {
    let store = Store::memory();
    store.clone().install().expect("installed once");
    store
});

/// The runs of `deployment`, oldest first, with their task runs.
fn runs_of(deployment: &str) -> Vec<FlowRunRecord> {
    let filter = RunFilter {
        limit: 100_000,
        ..RunFilter::default()
    };
    let mut runs: Vec<FlowRunRecord> = STORE
        .flow_runs(&filter)
        .unwrap()
        .into_iter()
        .filter(|r| r.deployment.as_deref() == Some(deployment))
        .map(|r| STORE.flow_run(r.id).unwrap().unwrap())
        .collect();
    runs.sort_by_key(|r| r.history[0].at);
    runs
}

/// Seconds of the Unix epoch, on the wall clock that tokio's (paused) clock drives.
fn secs(t: Timestamp) -> f64 {
    t.as_micros() as f64 / 1e6
}

/// Waits (on tokio's clock) until `offset` past a whole minute, so that every test's schedule
/// meets the same instants: returns that minute, M, in seconds of the epoch.
async fn align(offset: Duration) -> i64 {
    let now = Timestamp::now().as_micros();
    let minute = now.div_euclid(60_000_000) * 60_000_000;
    let mut target = minute + offset.as_micros() as i64;
    if target <= now {
        target += 60_000_000;
    }
    sleep(Duration::from_micros((target - now) as u64)).await;
    (target - offset.as_micros() as i64) / 1_000_000
}

fn scheduled_at(run: &FlowRunRecord) -> f64 {
    assert_eq!(run.history[0].kind, Scheduled, "{:?}", run.history);
    secs(run.history[0].at)
}

/// Whether `started` is `due` to tokio's timer resolution: a timer fires on the millisecond
/// after its deadline.
fn on_time(started: f64, due: f64) -> bool {
    (0.0..0.001).contains(&(started - due))
}

fn pending_at(run: &FlowRunRecord) -> f64 {
    let pending = run.history.iter().find(|s| s.kind == Pending).unwrap();
    secs(pending.at)
}

#[task]
async fn beat() -> u32 {
    1
}

#[flow(name = "heartbeat")]
async fn heartbeat() -> u32 {
    beat().await
}

#[tokio::test(start_paused = true)]
async fn an_interval_schedule_runs_at_every_multiple_over_a_simulated_day() {
    LazyLock::force(&STORE);
    let day = sleep(Duration::from_secs(86_400));
    flowcore::serve([Deployment::new("every-15m", heartbeat).every("15m")])
        .with_shutdown(day)
        .await
        .unwrap();

    let runs = runs_of("every-15m");
    assert_eq!(runs.len(), 96, "a day of quarter hours");
    for (i, run) in runs.iter().enumerate() {
        let at = scheduled_at(run);
        assert_eq!(at % 900.0, 0.0, "run {i} is on a quarter hour: {at}");
        if i > 0 {
            assert_eq!(at - scheduled_at(&runs[i - 1]), 900.0);
        }
        assert!(
            on_time(pending_at(run), at),
            "started on time: {:?}",
            run.history
        );
        assert_eq!(
            run.history.kinds(),
            [Scheduled, Pending, Running, Completed]
        );
        assert_eq!(
            run.history[0].message.as_deref(),
            Some(
                format!(
                    "scheduled for {}",
                    run.history[0]
                        .at
                        .to_datetime()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
                .as_str()
            )
        );
        assert_eq!(run.task_runs.len(), 1);
        assert_eq!(run.task_runs[0].state().kind, Completed);
    }
    let deployment = STORE
        .deployments()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "every-15m")
        .unwrap();
    assert_eq!(deployment.flow, "heartbeat");
    assert_eq!(deployment.schedule.as_deref(), Some("every 15m"));
    assert_eq!(deployment.served_by, None, "no longer served");
    assert_eq!(deployment.last_runs.len(), 5);
    assert_eq!(deployment.last_runs[0].id, runs[95].id);
}

#[tokio::test(start_paused = true)]
async fn a_cron_line_in_a_time_zone_runs_at_its_local_times_over_a_simulated_day() {
    LazyLock::force(&STORE);
    let m = align(Duration::from_secs(1)).await;
    let day = sleep(Duration::from_secs(86_400));
    flowcore::serve([Deployment::new("paris", heartbeat).cron_in("30 9,17 * * *", "Europe/Paris")])
        .with_shutdown(day)
        .await
        .unwrap();

    let runs = runs_of("paris");
    assert_eq!(runs.len(), 2, "twice a day");
    let mut utc: Vec<String> = runs
        .iter()
        .map(|r| r.history[0].at.to_datetime().format("%H:%M:%S").to_string())
        .collect();
    utc.sort();
    // Paris is UTC+1 from late October to late March.
    assert_eq!(utc, ["08:30:00", "16:30:00"]);
    for run in &runs {
        let at = scheduled_at(run);
        assert!(at > m as f64 && at <= (m + 86_400) as f64);
        assert!(on_time(pending_at(run), at), "{:?}", run.history);
    }
}

#[tokio::test(start_paused = true)]
async fn cron_with_seconds_and_fixed_times_tick_exactly() {
    LazyLock::force(&STORE);
    let m = align(Duration::from_secs(5)).await;
    let times = [m + 60, m + 65, m + 3600].map(|s| flowcore::Timestamp::from_micros(s * 1_000_000));
    let two_hours = sleep(Duration::from_secs(7200));
    flowcore::serve([
        Deployment::new("every-20s", heartbeat).cron("*/20 * * * * *"),
        Deployment::new("fixed", heartbeat).schedule(Schedule::at(times).unwrap()),
    ])
    .with_shutdown(two_hours)
    .await
    .unwrap();

    let every_20s = runs_of("every-20s");
    assert_eq!(every_20s.len(), 360, "two hours of 20 seconds");
    assert_eq!(scheduled_at(&every_20s[0]), (m + 20) as f64);
    let fixed: Vec<f64> = runs_of("fixed").iter().map(scheduled_at).collect();
    assert_eq!(fixed, [m + 60, m + 65, m + 3600].map(|s| s as f64));
}

/// How many runs of `slow` are going right now, and the most at once.
static GOING: AtomicUsize = AtomicUsize::new(0);
static MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn take(secs: u64) -> u64 {
    let now = GOING.fetch_add(1, SeqCst) + 1;
    MOST_AT_ONCE.fetch_max(now, SeqCst);
    sleep(Duration::from_secs(secs)).await;
    GOING.fetch_sub(1, SeqCst);
    secs
}

#[flow(name = "slow")]
async fn slow(secs: u64) -> u64 {
    take(secs).await
}

#[derive(Serialize, Deserialize)]
struct Slow {
    secs: u64,
}

fn slow_deployment(name: &str, secs: u64) -> Deployment {
    Deployment::new(name, |p: Slow| slow(p.secs))
        .parameters(Slow { secs })
        .every("1m")
}

/// The overlap tests share the GOING counters: they take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(start_paused = true)]
async fn skip_leaves_out_the_runs_due_while_one_is_going() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&STORE);
    let m = align(Duration::from_secs(30)).await;
    // Ticks at M+60 … M+600; each run takes 90 s, so every other tick finds one going.
    flowcore::serve([slow_deployment("skip", 90)])
        .with_shutdown(sleep(Duration::from_secs(590)))
        .await
        .unwrap();

    let runs = runs_of("skip");
    let due: Vec<i64> = runs.iter().map(|r| scheduled_at(r) as i64 - m).collect();
    assert_eq!(due, [60, 180, 300, 420, 540]);
    for run in &runs {
        assert_eq!(
            run.history.kinds(),
            [Scheduled, Pending, Running, Completed]
        );
        assert!(
            on_time(pending_at(run), scheduled_at(run)),
            "{:?}",
            run.history
        );
    }
}

#[tokio::test(start_paused = true)]
async fn queue_starts_the_runs_due_meanwhile_one_after_another_marked_late() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&STORE);
    MOST_AT_ONCE.store(0, SeqCst);
    let m = align(Duration::from_secs(30)).await;
    // Ticks at M+60, +120, +180, +240, +300; stops at M+320, when the third run is going.
    flowcore::serve([slow_deployment("queue", 90).overlap(Overlap::Queue)])
        .with_shutdown(sleep(Duration::from_secs(290)))
        .await
        .unwrap();

    let runs = runs_of("queue");
    let due: Vec<i64> = runs.iter().map(|r| scheduled_at(r) as i64 - m).collect();
    let started: Vec<i64> = runs.iter().map(|r| pending_at(r) as i64 - m).collect();
    assert_eq!(
        due,
        [60, 120, 180],
        "the queued runs not started by the stop never run"
    );
    assert_eq!(started, [60, 150, 240], "each as the one before ends");
    assert_eq!(MOST_AT_ONCE.load(SeqCst), 1);
    assert_eq!(
        runs[0].history.kinds(),
        [Scheduled, Pending, Running, Completed]
    );
    for (run, late) in runs[1..].iter().zip(["30s", "1m"]) {
        assert_eq!(
            run.history.kinds(),
            [Scheduled, Late, Pending, Running, Completed]
        );
        let message = run.history[1].message.as_deref().unwrap();
        assert!(
            message.starts_with(&format!("started {late} after ")),
            "{message}"
        );
        assert_eq!(secs(run.history[1].at), pending_at(run));
    }
}

#[tokio::test(start_paused = true)]
async fn allow_starts_every_run_on_time_beside_the_others() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&STORE);
    MOST_AT_ONCE.store(0, SeqCst);
    let m = align(Duration::from_secs(30)).await;
    flowcore::serve([slow_deployment("allow", 90).overlap(Overlap::Allow)])
        .with_shutdown(sleep(Duration::from_secs(290)))
        .grace_period(Duration::from_secs(90))
        .await
        .unwrap();

    let runs = runs_of("allow");
    let due: Vec<i64> = runs.iter().map(|r| scheduled_at(r) as i64 - m).collect();
    assert_eq!(due, [60, 120, 180, 240, 300]);
    for run in &runs {
        assert!(
            on_time(pending_at(run), scheduled_at(run)),
            "{:?}",
            run.history
        );
        assert_eq!(run.state().kind, Completed);
    }
    assert_eq!(MOST_AT_ONCE.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_runs_finish_within_the_grace_period_and_cancels_the_rest() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&STORE);
    let m = align(Duration::from_secs(30)).await;
    // Both start at M+60; the stop comes at M+70 with 30 s of grace: the 20 s run ends at
    // M+80, the 10-minute one is cancelled at M+100.
    flowcore::serve([slow_deployment("quick", 20), slow_deployment("stuck", 600)])
        .with_shutdown(sleep(Duration::from_secs(40)))
        .await
        .unwrap();
    assert_eq!(Timestamp::now().as_micros() / 1_000_000 - m, 100);

    let quick = runs_of("quick");
    assert_eq!(quick.len(), 1);
    assert_eq!(
        quick[0].history.kinds(),
        [Scheduled, Pending, Running, Completed]
    );

    let stuck = runs_of("stuck");
    assert_eq!(stuck.len(), 1);
    assert_eq!(
        stuck[0].history.kinds(),
        [Scheduled, Pending, Running, Cancelled]
    );
    assert_eq!(
        stuck[0].state().message.as_deref(),
        Some("cancelled: serving stopped and the run did not finish within the 30s grace period")
    );
    assert_eq!(secs(stuck[0].state().at) as i64 - m, 100);
    let task = &stuck[0].task_runs[0];
    assert_eq!(task.state().kind, Cancelled, "{:?}", task.history);
    let unfinished = STORE
        .flow_runs(&RunFilter {
            limit: 100_000,
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| {
            matches!(r.deployment.as_deref(), Some("quick" | "stuck")) && !r.state.is_final()
        })
        .count();
    assert_eq!(unfinished, 0, "nothing is left Running");
    GOING.store(0, SeqCst);
}

static GREETED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

#[flow(name = "greet")]
async fn greet(name: String, times: u32) -> String {
    GREETED.lock().unwrap().push((name.clone(), times));
    format!("hello {name} ×{times}")
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    name: String,
    times: u32,
    #[serde(default)]
    limit: Option<u32>,
}

#[tokio::test(start_paused = true)]
async fn a_run_requested_by_hand_is_picked_up_within_a_second_with_its_parameters() {
    LazyLock::force(&STORE);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let deployment =
        Deployment::new("greeter", |g: Greeting| greet(g.name, g.times)).parameters(Greeting {
            name: "world".into(),
            times: 1,
            limit: None,
        });
    let serving = tokio::spawn(
        flowcore::serve([deployment])
            .with_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    sleep(Duration::from_millis(10)).await;

    let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let requested = STORE
        .request_run("greeter", &params(&[("times", "3")]))
        .unwrap();
    let asked_at = Timestamp::now();
    let run = loop {
        match STORE.flow_run(requested.id).unwrap() {
            Some(run) if run.state().is_final() => break run,
            _ => sleep(Duration::from_millis(10)).await,
        }
    };
    assert_eq!(run.name, requested.name, "the name the request printed");
    assert_eq!(
        run.history.kinds(),
        [Scheduled, Pending, Running, Completed]
    );
    assert_eq!(run.history[0].message.as_deref(), Some("requested by hand"));
    assert!(
        pending_at(&run) - secs(asked_at) <= 1.0,
        "picked up within a second"
    );
    assert_eq!(
        GREETED.lock().unwrap().as_slice(),
        [("world".to_owned(), 3)]
    );

    // Parameters the flow's types refuse fail the run, with the reason; nothing panics.
    let bad = STORE
        .request_run("greeter", &params(&[("limit", "\"many\"")]))
        .unwrap();
    let failed = loop {
        match STORE.flow_run(bad.id).unwrap() {
            Some(run) if run.state().is_final() => break run,
            _ => sleep(Duration::from_millis(10)).await,
        }
    };
    assert_eq!(failed.history.kinds(), [Scheduled, StateKind::Failed]);
    let message = failed.state().message.clone().unwrap();
    assert!(
        message.contains("do not fit flow 'greet'") && message.contains("expected u32"),
        "{message}"
    );

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    assert_eq!(GREETED.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn requests_for_unknown_deployments_or_with_bad_parameters_are_refused() {
    LazyLock::force(&STORE);
    let deployment =
        Deployment::new("refusing", |g: Greeting| greet(g.name, g.times)).parameters(Greeting {
            name: "world".into(),
            times: 1,
            limit: None,
        });
    flowcore::serve([deployment])
        .with_shutdown(sleep(Duration::from_millis(1)))
        .await
        .unwrap();
    let refuse = |name: &str, key: &str, value: &str| {
        STORE
            .request_run(name, &[(key.to_owned(), value.to_owned())])
            .unwrap_err()
    };
    assert!(matches!(
        refuse("nope", "times", "1"),
        StoreError::UnknownDeployment { .. }
    ));
    let unknown = refuse("nope", "times", "1").to_string();
    assert!(
        unknown.starts_with("no deployment named \"nope\""),
        "{unknown}"
    );
    assert!(unknown.contains("refusing"), "{unknown}");
    assert_eq!(
        refuse("refusing", "times", "three").to_string(),
        "parameter 'times' of deployment 'refusing' takes a whole number of 0 or more (its default is 1), not \"three\""
    );
    assert_eq!(
        refuse("refusing", "time", "3").to_string(),
        "deployment 'refusing' has no parameter 'time'; its parameters are: limit, name, times"
    );
    let runs = runs_of("refusing");
    assert!(runs.is_empty(), "a refused request writes nothing");
}

#[derive(Deserialize)]
struct Needs {
    url: String,
}

#[flow(name = "needs_url")]
async fn needs_url(url: String) -> usize {
    url.len()
}

#[tokio::test]
async fn bad_deployments_are_refused_at_start_naming_them() {
    LazyLock::force(&STORE);
    let error = |d: Vec<Deployment>| async move {
        flowcore::serve(d)
            .with_shutdown(async {})
            .await
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(vec![Deployment::new("soon", heartbeat).every("soon")]).await,
        "deployment 'soon': bad interval \"soon\": expected number at 0; write it like \"30s\", \"5m\" or \"1h 30m\""
    );
    let cron = error(vec![
        Deployment::new("bad-cron", heartbeat).cron("61 * * * *"),
    ])
    .await;
    assert!(
        cron.starts_with("deployment 'bad-cron': bad cron line \"61 * * * *\""),
        "{cron}"
    );
    let zone = error(vec![
        Deployment::new("zone", heartbeat).cron_in("0 9 * * *", "Mars/Olympus"),
    ])
    .await;
    assert_eq!(
        zone,
        "deployment 'zone': unknown time zone \"Mars/Olympus\"; use an IANA name like \"Europe/Paris\" or \"UTC\""
    );
    assert_eq!(
        error(vec![Deployment::new("needs", |n: Needs| needs_url(n.url))]).await,
        "deployment 'needs': its parameters {} do not fit the flow's (missing field `url`); give them with .parameters(...)"
    );
    assert_eq!(
        error(vec![
            Deployment::new("twice", heartbeat),
            Deployment::new("twice", heartbeat)
        ])
        .await,
        "deployment 'twice': two deployments have this name; give each its own"
    );
    assert_eq!(
        error(vec![]).await,
        "nothing to serve: give `flowcore::serve` at least one Deployment, or `flowcore::serve_tasks` at least one background task"
    );
    assert!(runs_of("soon").is_empty());
}
