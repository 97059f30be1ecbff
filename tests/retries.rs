//! Retries: attempt counts, exact delays read from the history under tokio's paused clock,
//! delay lists, backoff, jitter bounds and `retry_if`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{State, StateKind, TaskRunRecord, flow, task};
use tokio::time::Instant;

/// The wait before each retry: from each Retrying state to the Running state after it.
fn retry_delays(history: &[State]) -> Vec<Duration> {
    history
        .windows(2)
        .filter(|w| w[0].kind == Retrying)
        .map(|w| {
            assert_eq!(w[1].kind, Running, "a retry follows Retrying");
            w[1].at.duration_since(w[0].at)
        })
        .collect()
}

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

/// `[Pending, Running, (Retrying, Running) × retries, last]`.
fn kinds_with_retries(retries: usize, last: StateKind) -> Vec<StateKind> {
    let mut kinds = vec![Pending, Running];
    for _ in 0..retries {
        kinds.extend([Retrying, Running]);
    }
    kinds.push(last);
    kinds
}

static TEN_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 10, retry_delay = "15s")]
async fn always_down(service: &'static str) -> Result<(), String> {
    TEN_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("{service} is down"))
}

#[tokio::test(start_paused = true)]
async fn ten_retries_fifteen_seconds_apart_on_the_paused_clock() {
    let start = Instant::now();
    let (out, run) = always_down("billing").with_run().await;

    assert_eq!(out, Err("billing is down".to_owned()));
    assert_eq!(start.elapsed(), Duration::from_secs(150));
    assert_eq!(TEN_CALLS.load(Ordering::SeqCst), 11);
    assert_eq!(run.attempts, 11);
    assert_eq!(run.history.kinds(), kinds_with_retries(10, Failed));
    assert_eq!(retry_delays(&run.history), secs(&[15; 10]));
    assert_eq!(run.duration(), Some(Duration::from_secs(150)));

    let running: Vec<&str> = run
        .history
        .iter()
        .filter(|s| s.kind == Running)
        .map(State::message)
        .collect();
    let expected: Vec<String> = (1..=11).map(|i| format!("attempt {i}/11")).collect();
    assert_eq!(running, expected);

    let retrying: Vec<&str> = run
        .history
        .iter()
        .filter(|s| s.kind == Retrying)
        .map(State::message)
        .collect();
    let expected: Vec<String> = (1..=10)
        .map(|i| format!("attempt {i}/11 failed: billing is down; retrying in 15s"))
        .collect();
    assert_eq!(retrying, expected);
    assert_eq!(run.state().message(), "billing is down");

    // Each attempt ran at once: the failure is stamped when its Running state was.
    for pair in run.history.windows(2) {
        if pair[0].kind == Running {
            assert_eq!(pair[1].at, pair[0].at);
        }
    }
}

static RECOVER_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 10, retry_delay = "15s")]
async fn recovers_on_third() -> Result<u32, String> {
    let n = RECOVER_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err(format!("try {n}"))
    } else {
        Ok(n * 100)
    }
}

#[tokio::test(start_paused = true)]
async fn a_retried_task_stops_at_the_first_success() {
    let start = Instant::now();
    let (out, run) = recovers_on_third().with_run().await;
    assert_eq!(out, Ok(300));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(run.attempts, 3);
    assert_eq!(run.history.kinds(), kinds_with_retries(2, Completed));
    assert_eq!(retry_delays(&run.history), secs(&[15, 15]));
    assert_eq!(RECOVER_CALLS.load(Ordering::SeqCst), 3);
}

#[task(retries = 5, retry_delay = ["1s", "10s", "1m"])]
async fn listed_delays() -> Result<(), &'static str> {
    Err("nope")
}

#[tokio::test(start_paused = true)]
async fn a_delay_list_is_used_in_order_and_its_last_entry_repeats() {
    let start = Instant::now();
    let (out, run) = listed_delays().with_run().await;
    assert_eq!(out, Err("nope"));
    assert_eq!(run.attempts, 6);
    assert_eq!(retry_delays(&run.history), secs(&[1, 10, 60, 60, 60]));
    assert_eq!(start.elapsed(), Duration::from_secs(191));
    let whens: Vec<&str> = run
        .history
        .iter()
        .filter(|s| s.kind == Retrying)
        .map(|s| s.message().rsplit_once("; ").unwrap().1)
        .collect();
    assert_eq!(
        whens,
        [
            "retrying in 1s",
            "retrying in 10s",
            "retrying in 1m",
            "retrying in 1m",
            "retrying in 1m"
        ]
    );
}

#[task(retries = 4, retry_delay = "15s", retry_backoff = 2.0)]
async fn doubling_backoff() -> Result<(), String> {
    Err("busy".into())
}

#[tokio::test(start_paused = true)]
async fn backoff_multiplies_the_delay_before_each_retry() {
    let start = Instant::now();
    let (_, run) = doubling_backoff().with_run().await;
    assert_eq!(run.attempts, 5);
    assert_eq!(retry_delays(&run.history), secs(&[15, 30, 60, 120]));
    assert_eq!(start.elapsed(), Duration::from_secs(225));
    assert_eq!(
        run.history[run.history.len() - 3].message(),
        "attempt 4/5 failed: busy; retrying in 2m"
    );
}

#[task(retries = 3, retry_delay = "10s", retry_backoff = 1.5)]
async fn fractional_backoff() -> Result<(), String> {
    Err("slow down".into())
}

#[tokio::test(start_paused = true)]
async fn a_fractional_backoff_gives_millisecond_delays() {
    let (_, run) = fractional_backoff().with_run().await;
    assert_eq!(
        retry_delays(&run.history),
        [
            Duration::from_secs(10),
            Duration::from_secs(15),
            Duration::from_millis(22_500),
        ]
    );
    assert!(
        run.history
            .iter()
            .any(|s| s.message().ends_with("retrying in 22s 500ms")),
        "{:?}",
        run.history
    );
}

#[task(retries = 1, retry_delay = "10s", retry_jitter = 0.5)]
async fn jittery() -> Result<(), String> {
    Err("jitter me".into())
}

#[tokio::test(start_paused = true)]
async fn jitter_keeps_every_delay_within_bounds_but_varies_them() {
    let mut delays = Vec::new();
    for _ in 0..300 {
        let (_, run) = jittery().with_run().await;
        assert_eq!(run.attempts, 2);
        let [delay] = retry_delays(&run.history)[..] else {
            panic!("one retry expected: {:?}", run.history);
        };
        delays.push(delay);
    }
    for d in &delays {
        assert!(
            (Duration::from_secs(5)..=Duration::from_secs(15)).contains(d),
            "{d:?} is outside 10s ± 50 %"
        );
        assert_eq!(
            d.subsec_micros() % 1000,
            0,
            "{d:?} is not whole milliseconds"
        );
    }
    let mut distinct = delays.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 50,
        "300 jittered delays gave only {} values",
        distinct.len()
    );
    // Both halves of the range are used.
    assert!(delays.iter().any(|d| *d < Duration::from_secs(9)));
    assert!(delays.iter().any(|d| *d > Duration::from_secs(11)));
}

#[task(
    retries = 3,
    retry_delay = "10s",
    retry_backoff = 2.0,
    retry_jitter = 0.1
)]
async fn jittery_backoff() -> Result<(), String> {
    Err("again".into())
}

#[tokio::test(start_paused = true)]
async fn jitter_applies_to_the_backed_off_delay() {
    for _ in 0..50 {
        let (_, run) = jittery_backoff().with_run().await;
        let delays = retry_delays(&run.history);
        assert_eq!(delays.len(), 3);
        for (d, base) in delays.iter().zip([10_000u128, 20_000, 40_000]) {
            let low = base * 9 / 10;
            let high = base * 11 / 10;
            assert!(
                (low..=high).contains(&d.as_millis()),
                "{d:?} is outside {base}ms ± 10 %"
            );
        }
    }
}

#[task(retries = 3)]
async fn no_delay_given() -> Result<(), String> {
    Err("instant".into())
}

#[tokio::test(start_paused = true)]
async fn without_a_delay_retries_follow_at_once() {
    let start = Instant::now();
    let (_, run) = no_delay_given().with_run().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(run.attempts, 4);
    assert_eq!(retry_delays(&run.history), [Duration::ZERO; 3]);
    assert_eq!(
        run.history[2].message(),
        "attempt 1/4 failed: instant; retrying now"
    );
}

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Unavailable,
    NotFound(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unavailable => f.write_str("service unavailable"),
            ApiError::NotFound(what) => write!(f, "{what} not found"),
        }
    }
}

fn is_transient(e: &ApiError) -> bool {
    matches!(e, ApiError::Unavailable)
}

static LOOKUP_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 5, retry_delay = "2s", retry_if = is_transient)]
async fn lookup_user(id: u32) -> Result<String, ApiError> {
    let n = LOOKUP_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        Err(ApiError::Unavailable)
    } else {
        Err(ApiError::NotFound(format!("user {id}")))
    }
}

#[tokio::test(start_paused = true)]
async fn retry_if_stops_at_an_error_it_rejects() {
    let start = Instant::now();
    let (out, run) = lookup_user(42).with_run().await;
    assert_eq!(out, Err(ApiError::NotFound("user 42".into())));
    assert_eq!(LOOKUP_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(run.attempts, 2);
    assert_eq!(run.history.kinds(), kinds_with_retries(1, Failed));
    assert_eq!(
        run.history[2].message(),
        "attempt 1/6 failed: service unavailable; retrying in 2s"
    );
    assert_eq!(run.error(), Some("user 42 not found"));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

static NEVER_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 5, retry_if = |_: &String| false)]
async fn not_retried() -> Result<(), String> {
    NEVER_CALLS.fetch_add(1, Ordering::SeqCst);
    Err("permanent".into())
}

#[tokio::test]
async fn retry_if_returning_false_at_once_means_one_attempt() {
    let (_, run) = not_retried().with_run().await;
    assert_eq!(run.attempts, 1);
    assert_eq!(NEVER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    // The attempt note still shows the allowed maximum.
    assert_eq!(run.history[1].message(), "attempt 1/6");
}

static SEEN_LENGTHS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[task(retries = 2)]
async fn mutates_its_argument(mut items: Vec<u32>) -> Result<Vec<u32>, String> {
    items.push(99);
    let len = items.len();
    let mut seen = SEEN_LENGTHS.lock().unwrap();
    seen.push(len);
    if seen.len() < 3 {
        Err(format!("saw {len} items"))
    } else {
        Ok(items)
    }
}

#[tokio::test]
async fn every_attempt_gets_the_arguments_as_they_were_passed() {
    let (out, run) = mutates_its_argument(vec![1, 2]).with_run().await;
    assert_eq!(out, Ok(vec![1, 2, 99]));
    assert_eq!(run.attempts, 3);
    assert_eq!(*SEEN_LENGTHS.lock().unwrap(), [3, 3, 3]);
}

static STANDALONE_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2, retry_delay = "1m")]
async fn standalone_flaky() -> Result<&'static str, String> {
    let n = STANDALONE_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err("not yet".into())
    } else {
        Ok("ok")
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_outside_any_flow_is_retried_too() {
    let start = Instant::now();
    let (out, run) = standalone_flaky().with_run().await;
    assert_eq!(out, Ok("ok"));
    assert_eq!(run.flow_run_id, None);
    assert_eq!(run.attempts, 3);
    assert_eq!(run.history.kinds(), kinds_with_retries(2, Completed));
    assert_eq!(start.elapsed(), Duration::from_secs(120));
}

static IN_FLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 3, retry_delay = "5s")]
async fn flaky_in_flow() -> Result<u32, String> {
    let n = IN_FLOW_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 4 {
        Err(format!("miss {n}"))
    } else {
        Ok(n)
    }
}

#[flow]
async fn retrying_flow() -> Result<u32, String> {
    flaky_in_flow().await
}

#[tokio::test(start_paused = true)]
async fn a_task_retried_inside_a_flow_is_one_task_run() {
    let start = Instant::now();
    let (out, run) = retrying_flow().with_run().await;
    assert_eq!(out, Ok(4));
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    assert_eq!(run.task_runs.len(), 1);
    let task_run: &TaskRunRecord = &run.task_runs[0];
    assert_eq!(task_run.attempts, 4);
    assert_eq!(task_run.flow_run_id, Some(run.id));
    assert_eq!(retry_delays(&task_run.history), secs(&[5, 5, 5]));
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(run.attempts, 1);
}
