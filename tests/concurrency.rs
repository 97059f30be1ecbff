//! Concurrency: task calls joined, spawned or run on other worker threads stay attached to the
//! flow run that made them, and flow runs running at the same time never get each other's
//! task runs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{FlowRunRecord, flow, task};
use futures::future::join_all;
use tokio::sync::Barrier;
use tokio::time::{Instant, sleep};

fn assert_all_attached(run: &FlowRunRecord, expected: usize) {
    assert_eq!(run.task_runs.len(), expected, "task runs of {}", run.name);
    for task_run in &run.task_runs {
        assert_eq!(task_run.flow_run_id, Some(run.id));
        assert_eq!(task_run.state().kind, Completed);
    }
    let ids: BTreeSet<_> = run.task_runs.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), expected, "task run ids are unique");
}

#[task]
async fn delayed_echo(i: u64) -> u64 {
    sleep(Duration::from_millis(100 - i)).await;
    i
}

#[flow]
async fn hundred_joined() -> Vec<u64> {
    join_all((0..100).map(delayed_echo)).await
}

#[tokio::test(start_paused = true)]
async fn join_all_of_a_hundred_task_calls_runs_them_concurrently_in_the_flow() {
    let start = Instant::now();
    let (out, run) = hundred_joined().with_run().await;
    assert_eq!(out, (0..100).collect::<Vec<_>>());
    // All ran at once: the longest sleep is the whole time.
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_all_attached(&run, 100);
    // Task runs are recorded as they finish: the shortest sleep (the last call) first.
    let durations: Vec<Duration> = run
        .task_runs
        .iter()
        .map(|r| r.duration().unwrap())
        .collect();
    let expected: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(durations, expected);
}

#[task]
async fn hop(i: u32) -> (u32, ThreadId) {
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    (i, std::thread::current().id())
}

#[flow]
async fn hundred_joined_on_workers() -> Vec<u32> {
    join_all((0..100).map(hop))
        .await
        .into_iter()
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_all_on_a_multi_thread_runtime_keeps_every_run_attached() {
    let (out, run) = tokio::spawn(hundred_joined_on_workers().with_run())
        .await
        .unwrap();
    assert_eq!(out, (0..100).collect::<Vec<_>>());
    assert_all_attached(&run, 100);
}

#[flow]
async fn spawns_fifty() -> Vec<u32> {
    let handles: Vec<_> = (0..50).map(|i| tokio::spawn(hop(i))).collect();
    let mut values = Vec::new();
    for h in handles {
        values.push(h.await.unwrap().0);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_calls_spawned_onto_worker_threads_stay_in_their_flow() {
    let (values, run) = spawns_fifty().with_run().await;
    assert_eq!(values, (0..50).collect::<Vec<_>>());
    assert_all_attached(&run, 50);
}

#[flow]
async fn block_spawner() -> u32 {
    let handles: Vec<_> = (0..10)
        .map(|i| flowcore::spawn(async move { hop(i).await.0 + hop(i + 100).await.0 }))
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flowcore_spawn_blocks_on_worker_threads_stay_in_their_flow() {
    let (out, run) = block_spawner().with_run().await;
    assert_eq!(out, (0..10).map(|i| 2 * i + 100).sum::<u32>());
    assert_all_attached(&run, 20);
}

#[task]
async fn meet(label: &'static str, i: u32, barrier: Arc<Barrier>) -> (String, ThreadId) {
    // Both flows' task runs are in flight at this point, on their own threads.
    barrier.wait().await;
    (format!("{label}-{i}"), std::thread::current().id())
}

#[flow]
async fn meeting_flow(label: &'static str, barrier: Arc<Barrier>) -> Vec<(String, ThreadId)> {
    let mut out = Vec::new();
    for i in 0..20 {
        out.push(meet(label, i, Arc::clone(&barrier)).await);
    }
    out
}

#[test]
fn two_flows_on_two_threads_at_once_never_share_task_runs() {
    let barrier = Arc::new(Barrier::new(2));
    let run_on_thread = |label: &'static str| {
        let barrier = Arc::clone(&barrier);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let out = rt.block_on(meeting_flow(label, barrier).with_run());
            (out, std::thread::current().id())
        })
    };
    let a = run_on_thread("a");
    let b = run_on_thread("b");
    let ((a_out, a_run), a_thread) = a.join().unwrap();
    let ((b_out, b_run), b_thread) = b.join().unwrap();
    assert_ne!(a_thread, b_thread);
    assert_ne!(a_run.id, b_run.id);

    for (out, run, label, thread) in [(a_out, a_run, "a", a_thread), (b_out, b_run, "b", b_thread)]
    {
        let labels: Vec<String> = out.iter().map(|(l, _)| l.clone()).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("{label}-{i}")).collect();
        assert_eq!(labels, expected);
        assert!(out.iter().all(|(_, t)| *t == thread));
        assert_all_attached(&run, 20);
    }
}

static SEEN: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

#[task]
async fn tagged_step(flow_no: u32, step: u32) -> u32 {
    tokio::task::yield_now().await;
    SEEN.lock().unwrap().push((flow_no, step));
    tokio::task::yield_now().await;
    flow_no * 1000 + step
}

#[flow]
async fn numbered_flow(flow_no: u32) -> Vec<u32> {
    let sequential = tagged_step(flow_no, 0).await;
    let mut joined = join_all((1..25).map(|s| tagged_step(flow_no, s))).await;
    joined.insert(0, sequential);
    joined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_flows_at_once_on_a_multi_thread_runtime_each_keep_their_own_runs() {
    let handles: Vec<_> = (1..=8)
        .map(|n| tokio::spawn(numbered_flow(n).with_run()))
        .collect();
    let mut ids = BTreeSet::new();
    for (n, handle) in (1..=8).zip(handles) {
        let (out, run) = handle.await.unwrap();
        let expected: Vec<u32> = (0..25).map(|s| n * 1000 + s).collect();
        assert_eq!(out, expected);
        assert_all_attached(&run, 25);
        ids.insert(run.id);
    }
    assert_eq!(ids.len(), 8);
    assert_eq!(SEEN.lock().unwrap().len(), 8 * 25);
}
