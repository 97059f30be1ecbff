//! Serving deployments: one process runs flows on their schedules and picks up the runs
//! requested by hand, with no server to start.

mod deployment;
mod error;
mod runner;
mod signal;
mod tasks;

use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use deployment::{Deployment, DeploymentFlow, IntoSchedule, LATE_AFTER, Overlap};
pub use error::ServeError;

use crate::background::BackgroundTask;
use crate::store::{DeploymentRow, RunStore};
use runner::{Phase, Served};

/// How often a serving process looks for runs requested by hand.
const POLL: Duration = Duration::from_millis(500);

/// How often a worker looks for dead workers, whose runs it may take over: the heartbeat's
/// period.
fn reap_every() -> Duration {
    crate::store::heartbeat()
}

/// How long in-flight runs get to finish after a stop signal, unless
/// [`Serve::grace_period`] says otherwise.
pub const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Serves deployments until Ctrl-C (SIGINT) or SIGTERM: runs each on its schedule, and runs
/// the runs requested with `flowcore deployment run NAME` (or the store's
/// [`request_run`](crate::Store::request_run)) within a second. Await it.
///
/// On a stop signal no new run starts; runs in flight get a [grace
/// period](Serve::grace_period) (30 s) to finish, then are cancelled: each ends `Cancelled`
/// with the reason, and none is left `Running`. A second signal cancels them at once.
///
/// Deployments are checked before anything runs: a bad schedule, parameters that do not fit
/// the flow, or two deployments of one name is an error naming the deployment.
///
/// A deployment paused with `flowcore deployment pause NAME` (or
/// [`Store::pause_deployment`](crate::Store::pause_deployment)) starts no scheduled run until
/// it is resumed, even when served again; the times that pass meanwhile are not made up.
/// Runs requested by hand still run.
///
/// Any number of processes, on one host or many sharing a PostgreSQL store, may serve the same
/// deployments: they are its workers. Each scheduled time runs on one of them, a run requested
/// by hand is claimed by one, and the runs of a worker that dies are `Crashed` and taken over by
/// another as their next attempt (see [`Deployment::crash_retries`]).
///
/// ```no_run
/// use flowcore::{flow, task, Deployment};
///
/// #[task(retries = 2, retry_delay = "5s")]
/// async fn check() -> Result<(), String> {
///     Ok(())
/// }
///
/// #[flow]
/// async fn monitor() -> Result<(), String> {
///     check().await
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), flowcore::ServeError> {
///     flowcore::init_logging();
///     flowcore::serve([Deployment::new("monitor", || monitor()).every("30s")]).await
/// }
/// ```
pub fn serve(deployments: impl IntoIterator<Item = Deployment>) -> Serve {
    Serve {
        deployments: deployments.into_iter().collect(),
        tasks: Vec::new(),
        task_limit: TASK_LIMIT,
        grace_period: GRACE_PERIOD,
        shutdown: None,
    }
}

/// How many delayed task runs a worker runs at once, unless [`Serve::task_limit`] says
/// otherwise (Prefect's task workers run 10 too).
pub const TASK_LIMIT: usize = 10;

/// Serves background tasks until Ctrl-C (SIGINT) or SIGTERM, as [`serve()`] serves deployments:
/// runs the task runs delayed with [`TaskCall::delay`](crate::TaskCall::delay) (or
/// [`Map::on_workers`](crate::Map::on_workers)) by any process of the store, at most
/// [`TASK_LIMIT`] at once. Await it. Give the tasks with [`background`](crate::background);
/// add deployments to the same worker with `flowcore::serve([...]).tasks([...])`.
///
/// Each delayed run is claimed by one worker, in batches as room frees up; it runs there with
/// its task's retries, timeout and cache. If its worker dies, the run is `Crashed` and taken over
/// by another worker as its next attempt, once. On a stop signal no new run is claimed and the
/// runs in flight get the grace period, as for deployments.
///
/// ```no_run
/// use flowcore::task;
///
/// #[task(background, retries = 3, retry_delay = "2s")]
/// async fn resize(url: String, width: u32) -> Result<String, String> {
///     Ok(format!("{url}?w={width}"))
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), flowcore::ServeError> {
///     flowcore::init_logging();
///     flowcore::serve_tasks([flowcore::background(resize)]).await
/// }
/// ```
pub fn serve_tasks(tasks: impl IntoIterator<Item = &'static BackgroundTask>) -> Serve {
    serve([]).tasks(tasks)
}

/// Deployments being set up to be served: see [`serve()`]. Await it to serve them.
#[must_use = "serving starts when this is awaited"]
pub struct Serve {
    deployments: Vec<Deployment>,
    tasks: Vec<&'static BackgroundTask>,
    task_limit: usize,
    grace_period: Duration,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Serve {
    /// Serves these background tasks too (see [`serve_tasks`]).
    pub fn tasks(mut self, tasks: impl IntoIterator<Item = &'static BackgroundTask>) -> Serve {
        self.tasks.extend(tasks);
        self
    }

    /// Runs at most `n` delayed task runs at once (at least one; default [`TASK_LIMIT`]).
    pub fn task_limit(mut self, n: usize) -> Serve {
        self.task_limit = n.max(1);
        self
    }

    /// How long runs in flight may go on after the stop signal before they are cancelled
    /// (default 30 s).
    pub fn grace_period(mut self, grace_period: Duration) -> Serve {
        self.grace_period = grace_period;
        self
    }

    /// Stops when `signal` completes instead of on SIGINT or SIGTERM: for tests, and for
    /// programs that serve beside other work.
    ///
    /// ```
    /// use flowcore::{flow, Deployment, Store, StateKind};
    /// use std::time::Duration;
    ///
    /// #[flow]
    /// async fn tick() {}
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::memory();
    /// store.clone().install()?;
    /// // Every minute for an hour of tokio's (paused) clock: 60 runs, in milliseconds.
    /// let hour = tokio::time::sleep(Duration::from_secs(3600));
    /// flowcore::serve([Deployment::new("ticker", || tick()).every("1m")])
    ///     .with_shutdown(hour)
    ///     .await?;
    /// let all = flowcore::store::RunFilter { limit: 100, ..Default::default() };
    /// assert_eq!(store.flow_runs(&all)?.len(), 60);
    /// let ticker = &store.deployments()?[0];
    /// assert_eq!(ticker.last_runs[0].state, StateKind::Completed);
    /// assert_eq!(ticker.served_by, None, "no longer served");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_shutdown(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Serve {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    async fn run(self) -> Result<(), ServeError> {
        let tasks = check_tasks(self.tasks)?;
        let served = check(self.deployments, !tasks.is_empty())?;
        let store = RunStore::current();
        // The handler of a plain program stands aside: serving stops gracefully on signals.
        let _serving = self
            .shutdown
            .is_none()
            .then(crate::interrupt::Serving::start);
        let rows: Vec<DeploymentRow> = served.iter().map(|d| d.row()).collect();
        let paused = if rows.is_empty() {
            Vec::new()
        } else {
            store.serve_deployments(&rows)?
        };
        let names: Arc<[String]> = served.iter().map(|d| d.name.clone()).collect();

        let (phase_tx, phase) = watch::channel(Phase::Serving);
        let cancelled_because = Arc::new(OnceLock::new());
        let mut senders = HashMap::new();
        let mut loops = JoinSet::new();
        for d in served {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(d.name.clone(), tx);
            let paused = paused.contains(&d.name);
            d.announce(paused);
            loops.spawn(runner::serve_one(
                Arc::new(d),
                store.clone(),
                rx,
                phase.clone(),
                Arc::clone(&cancelled_because),
                paused,
            ));
        }
        loops.spawn(runner::poll_requests(
            store.clone(),
            Arc::clone(&names),
            senders,
            phase.clone(),
        ));
        let task_names: Vec<&str> = tasks.iter().map(|t| t.name).collect();
        if !tasks.is_empty() {
            store.serve_tasks(&task_names, true)?;
            let listed = &task_names;
            tracing::info!(target: "flowcore", "Serving background tasks {}, {} at once", listed.join(", "), self.task_limit);
            loops.spawn(tasks::serve_tasks(
                store.clone(),
                tasks,
                self.task_limit,
                phase.clone(),
            ));
        }

        let grace = self.grace_period;
        let on_signals = self.shutdown.is_none();
        let stop = async {
            match self.shutdown {
                Some(signal) => {
                    signal.await;
                    "serving stopped".to_owned()
                }
                None => format!("the serving process received {}", signal::stop().await),
            }
        };
        // A worker that another took for dead (cut off from the store past its lease) has
        // lost its runs to other workers: it drops them at once, and stops.
        let stop_reason = tokio::select! {
            reason = stop => reason,
            () = store.fenced() => {
                tracing::error!(
                    target: "flowcore",
                    "Another worker took this one for dead and took over its runs: cancelling the runs in flight, whose states are no longer recorded, and stopping"
                );
                let _ = phase_tx.send(Phase::Cancelling);
                while loops.join_next().await.is_some() {}
                return Err(ServeError::TakenForDead);
            }
        };
        tracing::info!(
            target: "flowcore",
            "Stopping ({stop_reason}): no new runs start; runs in flight have {} to finish",
            humantime::format_duration(grace)
        );
        let deadline = tokio::time::Instant::now() + grace;
        let _ = phase_tx.send(Phase::Draining { deadline });
        let _ = cancelled_because.set(format!(
            "cancelled: {stop_reason} and the run did not finish within the {} grace period",
            humantime::format_duration(grace)
        ));
        // A run waiting for input could wait past any grace period: it is let go now, paused,
        // and the next process serving its deployment takes it up where it was.
        if store.shared_with_other_processes() {
            let let_go = crate::cancel::let_paused_go();
            if let_go > 0 {
                tracing::info!(
                    target: "flowcore",
                    "{let_go} flow run(s) waiting for input stay Paused, for the next process serving their deployment to take up"
                );
            }
        }
        let mut loops_done = std::pin::pin!(async { while loops.join_next().await.is_some() {} });
        tokio::select! {
            () = &mut loops_done => {}
            second = signal::stop(), if on_signals => {
                tracing::warn!(target: "flowcore", "Received {second} again: cancelling the runs in flight now");
                let _ = phase_tx.send(Phase::Cancelling);
                loops_done.await;
            }
        }
        if let Err(e) = store.flush().await {
            tracing::error!(target: "flowcore", "The last states were not recorded: {e}");
        }
        if !task_names.is_empty() {
            store.serve_tasks(&task_names, false)?;
        }
        if !names.is_empty() {
            store.unserve_deployments(&names)?;
            tracing::info!(target: "flowcore", "Stopped serving {}", names.join(", "));
        }
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = Result<(), ServeError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let served = self.run().await;
            // Its last lines ("Stopped serving …") before what the program prints next.
            crate::logging::writer::flushed().await;
            served
        })
    }
}

/// Checks every deployment before anything is served; the first problem is the error.
fn check(deployments: Vec<Deployment>, tasks: bool) -> Result<Vec<Served>, ServeError> {
    if deployments.is_empty() && !tasks {
        return Err(ServeError::NothingToServe);
    }
    let mut names = HashSet::new();
    let mut served = Vec::with_capacity(deployments.len());
    for d in deployments {
        if !names.insert(d.name.clone()) {
            return Err(ServeError::Deployment {
                name: d.name,
                reason: "two deployments have this name; give each its own".to_owned(),
            });
        }
        served.push(Served::check(d)?);
    }
    Ok(served)
}

/// The background tasks to serve, each once, no two of one name.
fn check_tasks(
    tasks: Vec<&'static BackgroundTask>,
) -> Result<Arc<[&'static BackgroundTask]>, ServeError> {
    let mut kept: Vec<&'static BackgroundTask> = Vec::with_capacity(tasks.len());
    for task in tasks {
        match kept.iter().find(|t| t.name == task.name) {
            // The same task given twice.
            Some(same) if std::ptr::eq(*same, task) => {}
            Some(_) => {
                return Err(ServeError::TaskName {
                    name: task.name.to_owned(),
                });
            }
            None => kept.push(task),
        }
    }
    Ok(kept.into())
}
