//! Cached task results: misses, hits that skip the body, keys by arguments or by a key
//! function, expiry on tokio's clock, refresh, failures never cached, and clearing.
//!
//! These tests pin the cache's semantics, not its persistence (tests/store.rs does that), so
//! this binary records to a fresh in-memory store. The cache is global to the process, so each
//! test uses task names no other test uses; the tests of `clear` and `entries` take the write
//! half of `CACHE_LOCK`, the others the read half.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{CacheStatus, flow, task};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

static CACHE_LOCK: RwLock<()> = RwLock::const_new(());

fn memory_store() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| flowcore::Store::memory().install().unwrap());
}

async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    memory_store();
    CACHE_LOCK.read().await
}

async fn exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    memory_store();
    CACHE_LOCK.write().await
}

static SQUARE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1d")]
async fn cached_square(x: u64) -> u64 {
    SQUARE_CALLS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[tokio::test]
async fn a_second_call_with_the_same_arguments_is_a_hit_that_skips_the_body() {
    let _shared = shared().await;
    let (first, miss) = cached_square(12).with_run().await;
    assert_eq!(first, 144);
    assert_eq!(miss.cache, CacheStatus::Miss);
    assert_eq!(miss.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(miss.attempts, 1);
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 1);

    let (second, hit) = cached_square(12).with_run().await;
    assert_eq!(second, 144);
    assert_eq!(hit.cache, CacheStatus::Hit);
    assert_eq!(hit.history.kinds(), [Pending, Cached]);
    assert_eq!(hit.state().message(), "cache hit");
    assert_eq!(hit.attempts, 0);
    assert_ne!(hit.id, miss.id);
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 1);

    // Awaited without `with_run`, a hit gives the same output.
    assert_eq!(cached_square(12).await, 144);
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 1);
}

static CONCAT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1h")]
async fn cached_concat(a: &str, n: u32) -> String {
    CONCAT_CALLS.fetch_add(1, Ordering::SeqCst);
    a.repeat(n as usize)
}

#[tokio::test]
async fn different_arguments_miss() {
    let _shared = shared().await;
    let mut statuses = Vec::new();
    for (a, n) in [("ab", 2), ("ab", 3), ("ba", 2), ("ab", 2), ("ba", 2)] {
        let (out, run) = cached_concat(a, n).with_run().await;
        assert_eq!(out, a.repeat(n as usize));
        statuses.push(run.cache);
    }
    use CacheStatus::{Hit, Miss};
    assert_eq!(statuses, [Miss, Miss, Miss, Hit, Hit]);
    assert_eq!(CONCAT_CALLS.load(Ordering::SeqCst), 3);
}

static EXPIRING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1d")]
async fn cached_expiring(x: usize) -> usize {
    x * 1000 + EXPIRING_CALLS.fetch_add(1, Ordering::SeqCst) + 1
}

#[tokio::test(start_paused = true)]
async fn an_entry_expires_after_cache_for_on_tokios_clock() {
    let _shared = shared().await;
    let day = Duration::from_secs(24 * 60 * 60);
    assert_eq!(cached_expiring(1).await, 1001);

    tokio::time::advance(day - Duration::from_secs(1)).await;
    let (out, run) = cached_expiring(1).with_run().await;
    assert_eq!((out, run.cache), (1001, CacheStatus::Hit));

    tokio::time::advance(Duration::from_secs(2)).await;
    let (out, run) = cached_expiring(1).with_run().await;
    assert_eq!((out, run.cache), (1002, CacheStatus::Miss));
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);

    // The new result is cached for a day from when it was stored.
    tokio::time::advance(day - Duration::from_secs(1)).await;
    let (out, run) = cached_expiring(1).with_run().await;
    assert_eq!((out, run.cache), (1002, CacheStatus::Hit));
    assert_eq!(EXPIRING_CALLS.load(Ordering::SeqCst), 2);
}

static SHARED_NAME_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(name = "exchange_rate", cache_for = "1h")]
async fn exchange_rate(currency: &str) -> usize {
    let n = SHARED_NAME_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    n * 100 + currency.len()
}

#[task(name = "exchange_rate", cache_for = "1h", refresh_cache = true)]
async fn exchange_rate_fresh(currency: &str) -> usize {
    let n = SHARED_NAME_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    n * 100 + currency.len()
}

#[tokio::test]
async fn refresh_cache_always_runs_and_replaces_the_entry() {
    let _shared = shared().await;
    let (out, run) = exchange_rate("EUR").with_run().await;
    assert_eq!((out, run.cache), (103, CacheStatus::Miss));
    let (out, run) = exchange_rate("EUR").with_run().await;
    assert_eq!((out, run.cache), (103, CacheStatus::Hit));

    let (out, run) = exchange_rate_fresh("EUR").with_run().await;
    assert_eq!((out, run.cache), (203, CacheStatus::Refreshed));
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    let (out, run) = exchange_rate_fresh("EUR").with_run().await;
    assert_eq!((out, run.cache), (303, CacheStatus::Refreshed));

    // The plain task now reads what the refreshing one stored last.
    let (out, run) = exchange_rate("EUR").with_run().await;
    assert_eq!((out, run.cache), (303, CacheStatus::Hit));
    assert_eq!(SHARED_NAME_CALLS.load(Ordering::SeqCst), 3);
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1h")]
async fn cached_flaky(id: u32) -> Result<String, String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        Err(format!("fetching {id} failed"))
    } else {
        Ok(format!("record {id} (call {n})"))
    }
}

#[tokio::test]
async fn a_failed_result_is_not_cached_and_an_ok_one_is() {
    let _shared = shared().await;
    let (out, run) = cached_flaky(8).with_run().await;
    assert_eq!(out, Err("fetching 8 failed".to_owned()));
    assert_eq!((run.state().kind, run.cache), (Failed, CacheStatus::Miss));

    let (out, run) = cached_flaky(8).with_run().await;
    assert_eq!(out, Ok("record 8 (call 2)".to_owned()));
    assert_eq!(
        (run.state().kind, run.cache),
        (Completed, CacheStatus::Miss)
    );

    let (out, run) = cached_flaky(8).with_run().await;
    assert_eq!(out, Ok("record 8 (call 2)".to_owned()));
    assert_eq!((run.state().kind, run.cache), (Cached, CacheStatus::Hit));
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 2);
}

static RETRIED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(retries = 2, cache_for = "1h")]
async fn cached_after_retries(id: u32) -> Result<u32, String> {
    let n = RETRIED_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err("not yet".into())
    } else {
        Ok(id + 1)
    }
}

#[tokio::test]
async fn a_result_that_succeeded_after_retries_is_cached() {
    let _shared = shared().await;
    let (out, run) = cached_after_retries(41).with_run().await;
    assert_eq!((out, run.attempts), (Ok(42), 3));
    let (out, run) = cached_after_retries(41).with_run().await;
    assert_eq!(
        (out, run.attempts, run.cache),
        (Ok(42), 0, CacheStatus::Hit)
    );
    assert_eq!(RETRIED_CALLS.load(Ordering::SeqCst), 3);
}

/// Not `Serialize`: only the key function reads it.
#[derive(Clone, Copy)]
struct Client {
    region: &'static str,
}

static KEY_FN_ARGS: std::sync::Mutex<Vec<(u32, bool, &'static str)>> =
    std::sync::Mutex::new(Vec::new());

fn user_key(user: &u32, _verbose: &bool, client: &Client) -> String {
    KEY_FN_ARGS
        .lock()
        .unwrap()
        .push((*user, *_verbose, client.region));
    format!("{}/{user}", client.region)
}

static PROFILE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1h", cache_key = user_key)]
async fn cached_profile(user: u32, verbose: bool, client: Client) -> String {
    PROFILE_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("user {user} in {} (verbose: {verbose})", client.region)
}

#[tokio::test]
async fn a_cache_key_function_decides_what_counts_as_the_same_call() {
    let _shared = shared().await;
    let eu = Client { region: "eu" };
    let us = Client { region: "us" };
    let (a, run_a) = cached_profile(1, true, eu).with_run().await;
    // `verbose` is not part of the key: this is a hit with the first result.
    let (b, run_b) = cached_profile(1, false, eu).with_run().await;
    let (c, run_c) = cached_profile(1, false, us).with_run().await;
    assert_eq!(a, "user 1 in eu (verbose: true)");
    assert_eq!(b, a);
    assert_eq!(c, "user 1 in us (verbose: false)");
    assert_eq!(
        [run_a.cache, run_b.cache, run_c.cache],
        [CacheStatus::Miss, CacheStatus::Hit, CacheStatus::Miss]
    );
    assert_eq!(PROFILE_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(
        *KEY_FN_ARGS.lock().unwrap(),
        [(1, true, "eu"), (1, false, "eu"), (1, false, "us")]
    );
}

static CLEARED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1d")]
async fn cached_to_clear(x: u32) -> u32 {
    CLEARED_CALLS.fetch_add(1, Ordering::SeqCst);
    x + 10
}

#[task(cache_for = "1d")]
async fn cached_to_keep(x: u32) -> u32 {
    x
}

#[tokio::test]
async fn clear_task_removes_only_that_tasks_entries() {
    let _shared = shared().await;
    for x in [1, 2, 3, 1] {
        cached_to_clear(x).await;
    }
    assert_eq!(cached_to_keep(5).await, 5);
    assert_eq!(CLEARED_CALLS.load(Ordering::SeqCst), 3);

    assert_eq!(flowcore::cache::clear_task("cached_to_clear").unwrap(), 3);
    assert_eq!(flowcore::cache::clear_task("cached_to_clear").unwrap(), 0);

    let (out, run) = cached_to_clear(2).with_run().await;
    assert_eq!((out, run.cache), (12, CacheStatus::Miss));
    assert_eq!(CLEARED_CALLS.load(Ordering::SeqCst), 4);
    // Another task's entry survived.
    assert_eq!(cached_to_keep(5).with_run().await.1.cache, CacheStatus::Hit);
}

fn url_key(url: &&str) -> String {
    (*url).to_owned()
}

#[task(cache_for = "1d", cache_key = url_key)]
async fn cached_download(url: &str) -> usize {
    url.len()
}

#[tokio::test]
async fn clear_task_finds_entries_whose_key_contains_a_colon() {
    let _shared = shared().await;
    assert_eq!(cached_download("https://example.com/a").await, 21);
    assert_eq!(cached_download("https://example.com/b").await, 21);
    assert_eq!(
        cached_download("https://example.com/a")
            .with_run()
            .await
            .1
            .cache,
        CacheStatus::Hit
    );
    assert_eq!(flowcore::cache::clear_task("cached_download").unwrap(), 2);
    assert_eq!(
        cached_download("https://example.com/a")
            .with_run()
            .await
            .1
            .cache,
        CacheStatus::Miss
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    rows: Vec<(u32, f64)>,
    note: Option<String>,
}

static REPORT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "10m")]
async fn cached_report(title: &str, rows: u32) -> Result<Report, String> {
    REPORT_CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(Report {
        title: title.to_owned(),
        rows: (0..rows).map(|i| (i, f64::from(i) / 4.0)).collect(),
        note: None,
    })
}

#[tokio::test]
async fn a_structured_result_comes_back_from_the_cache_equal() {
    let _shared = shared().await;
    let first = cached_report("weekly", 5).await;
    let (second, run) = cached_report("weekly", 5).with_run().await;
    assert_eq!(run.cache, CacheStatus::Hit);
    assert_eq!(second, first);
    assert_eq!(second.unwrap().rows[3], (3, 0.75));
    assert_eq!(REPORT_CALLS.load(Ordering::SeqCst), 1);
}

static ACROSS_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1h")]
async fn cached_across_flows(x: u32) -> u32 {
    ACROSS_CALLS.fetch_add(1, Ordering::SeqCst);
    x * 7
}

#[flow]
async fn flow_using_the_cache(x: u32) -> u32 {
    cached_across_flows(x).await + cached_across_flows(x).await
}

#[tokio::test]
async fn a_result_cached_in_one_flow_run_is_a_hit_in_the_next() {
    let _shared = shared().await;
    let (out, first) = flow_using_the_cache(6).with_run().await;
    assert_eq!(out, 84);
    let (out, second) = flow_using_the_cache(6).with_run().await;
    assert_eq!(out, 84);
    assert_eq!(ACROSS_CALLS.load(Ordering::SeqCst), 1);
    let statuses = |run: &flowcore::FlowRunRecord| -> Vec<_> {
        run.task_runs
            .iter()
            .map(|r| (r.cache, r.state().kind, r.flow_run_id == Some(run.id)))
            .collect()
    };
    assert_eq!(
        statuses(&first),
        [
            (CacheStatus::Miss, Completed, true),
            (CacheStatus::Hit, Cached, true)
        ]
    );
    assert_eq!(
        statuses(&second),
        [
            (CacheStatus::Hit, Cached, true),
            (CacheStatus::Hit, Cached, true)
        ]
    );
}

#[task]
async fn never_cached(x: u32) -> u32 {
    x
}

#[tokio::test]
async fn a_task_without_cache_for_reports_cache_off() {
    let _shared = shared().await;
    let (_, run) = never_cached(1).with_run().await;
    assert_eq!(run.cache, CacheStatus::Off);
    let (_, run) = never_cached(1).with_run().await;
    assert_eq!(run.cache, CacheStatus::Off);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
}

static GLOBAL_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1d")]
async fn cached_for_clear_all(x: u32) -> u32 {
    GLOBAL_CALLS.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test]
async fn clear_empties_the_cache_and_entries_lists_them() {
    let _exclusive = exclusive().await;
    flowcore::cache::clear().unwrap();
    assert_eq!(flowcore::cache::entries().unwrap().len(), 0);
    cached_for_clear_all(1).await;
    cached_for_clear_all(2).await;
    cached_for_clear_all(1).await;
    assert_eq!(flowcore::cache::entries().unwrap().len(), 2);
    assert_eq!(flowcore::cache::clear().unwrap(), 2);
    assert_eq!(flowcore::cache::entries().unwrap().len(), 0);
    let (_, run) = cached_for_clear_all(1).with_run().await;
    assert_eq!(run.cache, CacheStatus::Miss);
    assert_eq!(GLOBAL_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(flowcore::cache::entries().unwrap().len(), 1);
}

#[task(cache_for = "1d", refresh_cache = true)]
async fn race_other(i: u32) -> u32 {
    i
}

#[task(cache_for = "1d")]
async fn race_target(i: u32) -> u32 {
    i
}

#[tokio::test]
async fn clear_task_counts_exactly_while_other_tasks_store_results() {
    let _shared = shared().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                // Always stores; every 100 stores the entries are cleared again, so the
                // number of entries keeps changing.
                rt.block_on(race_other(i % 100));
                i += 1;
                if i % 100 == 0 {
                    assert!(flowcore::cache::clear_task("race_other").unwrap() <= 100);
                }
            }
            i
        })
    };
    for i in 0..2000 {
        race_target(i).await;
        assert_eq!(
            flowcore::cache::clear_task("race_target").unwrap(),
            1,
            "round {i}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0);
    assert_eq!(
        flowcore::cache::clear_task("race_other").unwrap(),
        (written % 100) as usize
    );
}

static OWNED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(cache_for = "1h")]
async fn cached_owned(name: String, ids: Vec<u32>) -> String {
    OWNED_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{name}: {}", ids.len())
}

#[tokio::test]
async fn owned_arguments_are_keyed_by_value() {
    let _shared = shared().await;
    let (a, run_a) = cached_owned("batch".to_owned(), vec![1, 2, 3])
        .with_run()
        .await;
    let (b, run_b) = cached_owned(String::from("batch"), vec![1, 2, 3])
        .with_run()
        .await;
    let (c, run_c) = cached_owned("batch".to_owned(), vec![3, 2, 1])
        .with_run()
        .await;
    assert_eq!(
        [a, b, c],
        ["batch: 3", "batch: 3", "batch: 3"].map(String::from)
    );
    assert_eq!(
        [run_a.cache, run_b.cache, run_c.cache],
        [CacheStatus::Miss, CacheStatus::Hit, CacheStatus::Miss]
    );
    assert_eq!(OWNED_CALLS.load(Ordering::SeqCst), 2);
}
