//! Serving background tasks: claiming delayed task runs in batches as room frees up, and
//! running each with its task's retries, timeout and cache.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::background::{BackgroundTask, Claim};
use crate::serve::runner::{Phase, drain};
use crate::state::{State, StateKind};
use crate::store::{ClaimedTask, Event, RunStore};
use crate::{RunKind, Timestamp};

/// How often a worker looks for delayed task runs of other processes when it has room: a read
/// of an index, asked ten times a second.
const POLL_TASKS: Duration = Duration::from_millis(100);

/// Runs delayed task runs of `tasks`, at most `limit` at once, until the phase says to stop.
pub(crate) async fn serve_tasks(
    store: RunStore,
    tasks: Arc<[&'static BackgroundTask]>,
    limit: usize,
    mut phase: watch::Receiver<Phase>,
) {
    let names: Arc<[&'static str]> = tasks.iter().map(|t| t.name).collect();
    let mut running: JoinSet<()> = JoinSet::new();
    let mut here = store.requests_here();
    // A memory store is this process's alone: runs delayed here wake the loop.
    let poll = store.shared_with_other_processes();
    let mut warned = false;
    let refill_at = limit.div_ceil(2);
    let mut last_claim = tokio::time::Instant::now();
    loop {
        if !matches!(*phase.borrow(), Phase::Serving) {
            break;
        }
        while running.try_join_next().is_some() {}
        let room = limit.saturating_sub(running.len());
        let mut full = false;
        // Room is claimed in batches: once half the limit is free (or nothing runs, or a poll
        // is due), so that each claim's transaction takes many runs rather than the one that
        // just ended.
        let due = tokio::time::Instant::now() >= last_claim + POLL_TASKS;
        if room > 0 && (room >= refill_at || running.is_empty() || due) {
            last_claim = tokio::time::Instant::now();
            match store.claim_tasks(Arc::clone(&names), room).await {
                Ok(claimed) => {
                    warned = false;
                    full = claimed.len() == room;
                    for run in claimed {
                        start(&store, &tasks, &mut running, run);
                    }
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(target: "flowcore", "Cannot look for delayed task runs: {e}; trying again");
                    }
                    warned = true;
                }
            }
        }
        // A full batch may have left more behind: claim again as soon as there is room. Else
        // the next poll is due a poll period after this claim, or when runs end.
        let room_now = limit.saturating_sub(running.len());
        tokio::select! {
            () = tokio::time::sleep_until(last_claim + POLL_TASKS), if poll && !full && room_now > 0 => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = here.changed() => {}
            _ = phase.changed() => {}
        }
    }
    // Runs in flight finish within the grace period, or are cancelled.
    drain(&mut running, &mut phase, drop).await;
    // Dropping a run ends it `Cancelled`.
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// Starts a claimed run, or records it `Failed` when its arguments do not decode.
fn start(
    store: &RunStore,
    tasks: &[&'static BackgroundTask],
    running: &mut JoinSet<()>,
    run: ClaimedTask,
) {
    let Some(task) = tasks.iter().find(|t| t.name == run.task) else {
        return;
    };
    if run.attempt > 1 {
        tracing::info!(
            target: "flowcore",
            "Took over delayed task run {} of task '{}': attempt {}, its worker having died",
            run.id,
            run.task,
            run.attempt
        );
    }
    let (id, seq) = (run.id, run.history.len() as u32);
    let args = run.args.clone();
    match (task.start)(&args, Claim(run)) {
        Ok(future) => {
            running.spawn(store.keep_in(future));
        }
        Err(reason) => {
            tracing::error!(target: "flowcore", "Delayed task run {id} of task '{}' cannot run: {reason}", task.name);
            store.send(Event::Transition {
                kind: RunKind::Task,
                id,
                position: None,
                seq,
                state: State::new(StateKind::Failed, Timestamp::now(), Some(reason)),
                attempts: 0,
                cache: crate::CacheStatus::Off,
                output: None,
            });
        }
    }
}
