//! Each served deployment's loop: wait for the next scheduled time or a requested run, start
//! runs as the overlap policy says, and give in-flight runs their grace period at the end.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::SecondsFormat;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::deployment::{Deployment, ErasedFlow, Overlap};
use super::error::ServeError;
use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::launch::Launch;
use crate::names::{flow_run_name, new_run_id};
use crate::record::{CacheStatus, FlowRunRecord};
use crate::schedule::Schedule;
use crate::state::{State, StateKind};
use crate::store::{CLAIM_BATCH, Tick};
use crate::store::{DeploymentRow, Event, RequestedRun, RunStore, Store, StoreError};

/// Where serving is: the loops follow it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    Serving,
    /// No new runs; the runs in flight may finish until `deadline`.
    Draining {
        deadline: Instant,
    },
    /// Cancel the runs in flight now.
    Cancelling,
}

/// A deployment checked and ready to serve.
pub(crate) struct Served {
    pub name: String,
    flow: ErasedFlow,
    flow_name: &'static str,
    parameters: Value,
    schedule: Option<Schedule>,
    overlap: Overlap,
    late_after: Duration,
    crash_retries: u32,
}

impl Served {
    /// Checks the deployment: its schedule, and that its parameters make a flow call.
    pub(crate) fn check(d: Deployment) -> Result<Served, ServeError> {
        let fail = |reason: String| ServeError::Deployment {
            name: d.name.clone(),
            reason,
        };
        let schedule = d
            .schedule
            .clone()
            .transpose()
            .map_err(|e| fail(e.to_string()))?;
        let parameters = d.parameters.clone().map_err(&fail)?;
        // The call is made and dropped without being polled: nothing runs.
        let flow_name = match d.flow.start(&parameters, None) {
            Ok((_, Some(flow))) => flow,
            Ok((_, None)) => {
                return Err(fail(
                    "its closure made no flow call; give Deployment::new a closure that calls a #[flow] function".to_owned(),
                ));
            }
            Err(e) => {
                return Err(fail(format!(
                    "its parameters {parameters} do not fit the flow's ({e}); give them with .parameters(...)"
                )));
            }
        };
        Ok(Served {
            name: d.name,
            flow: d.flow,
            flow_name,
            parameters,
            schedule,
            overlap: d.overlap,
            late_after: d.late_after,
            crash_retries: d.crash_retries,
        })
    }

    pub(crate) fn row(&self) -> DeploymentRow {
        DeploymentRow {
            name: self.name.clone(),
            flow: self.flow_name.to_owned(),
            schedule: self.schedule.as_ref().map(|s| s.to_string()),
            parameters: self.parameters.clone(),
            overlap: self.overlap.as_str(),
            crash_retries: self.crash_retries,
        }
    }

    /// The lines Prefect users look for when a flow starts being served.
    pub(crate) fn announce(&self, paused: bool) {
        tracing::info!(
            target: "flowcore",
            "Your flow '{}' is being served and polling for scheduled runs!",
            self.flow_name
        );
        let when = match &self.schedule {
            Some(s) => format!("runs {s}"),
            None => "has no schedule: it runs when requested".to_owned(),
        };
        tracing::info!(
            target: "flowcore",
            "Deployment '{}' {when}; to run it now: flowcore deployment run {}",
            self.name,
            self.name
        );
        if paused {
            tracing::info!(
                target: "flowcore",
                "Deployment '{}' is paused: its schedule starts no runs until `flowcore deployment resume {}`",
                self.name,
                self.name
            );
        }
    }
}

/// A run that is due: at its scheduled time, or requested by hand.
struct Due {
    at: Timestamp,
    request: Option<RequestedRun>,
}

/// `at` as Prefect writes it in its logs: `2026-11-22T18:03:00Z`.
fn rfc3339(at: Timestamp) -> String {
    at.to_datetime().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The instant of tokio's clock at which the wall-clock time `at` comes.
fn instant_of(at: Timestamp) -> Instant {
    Instant::now() + at.duration_since(Timestamp::now())
}

/// Serves one deployment until the phase leaves `Serving`, then waits for its runs in flight
/// until the deadline and cancels the rest. `paused`: whether the store had it paused when
/// serving started; each scheduled time asks again.
pub(crate) async fn serve_one(
    d: Arc<Served>,
    store: RunStore,
    mut requests: mpsc::UnboundedReceiver<RequestedRun>,
    mut phase: watch::Receiver<Phase>,
    cancelled_because: Arc<OnceLock<String>>,
    mut paused: bool,
) {
    let mut runs: JoinSet<FlowRunRecord> = JoinSet::new();
    let mut queue: VecDeque<Due> = VecDeque::new();
    let mut next = next_after(&d, Timestamp::now(), &store);
    loop {
        if !matches!(*phase.borrow(), Phase::Serving) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next.map_or_else(Instant::now, instant_of)), if next.is_some() => {
                let at = next.expect("only polled with a next run");
                // Every worker of the deployment comes here at this time; the store gives it
                // to one.
                let tick = claim_tick(&d, &store, at).await;
                if let Ok(tick) = tick {
                    note_pause(&d, &mut paused, tick == Tick::Paused, at);
                }
                match tick {
                    Ok(Tick::Mine { going }) => {
                        let elsewhere = going.saturating_sub(runs.len());
                        due(&d, &store, &mut runs, &mut queue, Due { at, request: None }, elsewhere, &cancelled_because);
                    }
                    Ok(Tick::Taken) => tracing::debug!(
                        target: "flowcore",
                        "Deployment '{}': the run scheduled for {} is another worker's",
                        d.name,
                        rfc3339(at)
                    ),
                    Ok(Tick::Paused) => tracing::debug!(
                        target: "flowcore",
                        "Deployment '{}' is paused: no run for {}",
                        d.name,
                        rfc3339(at)
                    ),
                    Err(e) => tracing::warn!(
                        target: "flowcore",
                        "Deployment '{}': the run scheduled for {} is not started here: the store could not say whether another worker took it ({e})",
                        d.name,
                        rfc3339(at)
                    ),
                }
                // The next time after now, not after `at`: times missed while the process was
                // stopped or starved, or the deployment paused, are not run in a burst.
                next = next_after(&d, at.max(Timestamp::now()), &store);
            }
            Some(request) = requests.recv() => {
                let at = request.requested_at;
                due(&d, &store, &mut runs, &mut queue, Due { at, request: Some(request) }, 0, &cancelled_because);
            }
            Some(ended) = runs.join_next(), if !runs.is_empty() => {
                report_panic(&d, ended);
                if runs.is_empty() && let Some(waiting) = queue.pop_front() {
                    start(&d, &store, &mut runs, waiting, &cancelled_because);
                }
            }
            _ = phase.changed() => {}
        }
    }
    if !queue.is_empty() {
        tracing::info!(
            target: "flowcore",
            "Deployment '{}': {} queued not started (runs requested by hand stay Scheduled for the next process serving it)",
            d.name,
            runs_count(queue.len())
        );
    }
    if !runs.is_empty() {
        tracing::info!(target: "flowcore", "Deployment '{}': waiting for {} in flight", d.name, runs_count(runs.len()));
    }
    drain(&mut runs, &mut phase, |ended| report_panic(&d, ended)).await;
    if !runs.is_empty() {
        tracing::warn!(
            target: "flowcore",
            "Deployment '{}': cancelling {} still in flight",
            d.name,
            runs_count(runs.len())
        );
        // Each run's drop records its Cancelled state with the reason.
        runs.abort_all();
        while let Some(ended) = runs.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                report_panic(&d, Err(e));
            }
        }
    }
}

/// Takes the scheduled time `at` for this worker, unless another took it. A store that is
/// away (a database restarting) is asked again, until the run would be late: a time is not
/// lost to a restart of a second.
async fn claim_tick(d: &Served, store: &Store, at: Timestamp) -> Result<Tick, StoreError> {
    let give_up = Instant::now() + d.late_after;
    loop {
        match store.claim_tick(&d.name, at).await {
            Err(StoreError::Unreachable { .. }) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// Logs when a scheduled time finds the deployment newly paused, or resumed: once each, not at
/// every time that passes.
fn note_pause(d: &Served, paused: &mut bool, now_paused: bool, at: Timestamp) {
    if *paused == now_paused {
        return;
    }
    *paused = now_paused;
    if now_paused {
        tracing::info!(
            target: "flowcore",
            "Deployment '{}' is paused: the run scheduled for {} is not started, nor any until `flowcore deployment resume {}`",
            d.name,
            rfc3339(at),
            d.name
        );
    } else {
        tracing::info!(
            target: "flowcore",
            "Deployment '{}' was resumed: it runs on its schedule again from {} (the times that passed while it was paused are not made up)",
            d.name,
            rfc3339(at)
        );
    }
}

/// `1 run`, `2 runs`.
fn runs_count(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

/// The deployment's next scheduled time after `after`, recorded in the store and logged.
fn next_after(d: &Served, after: Timestamp, store: &Store) -> Option<Timestamp> {
    let next = d.schedule.as_ref()?.next_after(after);
    store.send(Event::NextRun {
        deployment: d.name.clone(),
        at: next,
    });
    match next {
        Some(at) => {
            tracing::info!(target: "flowcore", "Waiting for next scheduled run at {}", rfc3339(at))
        }
        None => {
            tracing::info!(target: "flowcore", "Deployment '{}' has no more scheduled runs", d.name)
        }
    }
    next
}

/// A run is due: started, queued or skipped, as the overlap policy says. `elsewhere` runs of
/// the deployment are going on other workers: a run that `Skip` would skip for a run here is
/// skipped for one there too; `Queue` waits for this worker's own.
#[allow(clippy::too_many_arguments)]
fn due(
    d: &Served,
    store: &RunStore,
    runs: &mut JoinSet<FlowRunRecord>,
    queue: &mut VecDeque<Due>,
    due: Due,
    elsewhere: usize,
    cancelled_because: &Arc<OnceLock<String>>,
) {
    let skip_for_elsewhere = d.overlap == Overlap::Skip && elsewhere > 0 && due.request.is_none();
    if (runs.is_empty() && !skip_for_elsewhere) || d.overlap == Overlap::Allow {
        return start(d, store, runs, due, cancelled_because);
    }
    if d.overlap == Overlap::Queue || due.request.is_some() {
        tracing::info!(
            target: "flowcore",
            "Deployment '{}': the run due at {} waits for the run in flight to end",
            d.name,
            rfc3339(due.at)
        );
        return queue.push_back(due);
    }
    tracing::info!(
        target: "flowcore",
        "Deployment '{}': skipping the run scheduled for {}: an earlier run is still going (overlap: skip)",
        d.name,
        rfc3339(due.at)
    );
}

/// Starts a due run: the flow call, handed its id, name and the states before `Pending`.
fn start(
    d: &Served,
    store: &RunStore,
    runs: &mut JoinSet<FlowRunRecord>,
    due: Due,
    cancelled_because: &Arc<OnceLock<String>>,
) {
    let now = Timestamp::now();
    let mut prior = Default::default();
    let (id, name, parameters, mut states, stored) = match due.request {
        // Taken over after its worker died, or taken up paused: it goes on from its states.
        Some(r) if !r.history.is_empty() => {
            let stored = r.history.len();
            prior = r.prior;
            (r.id, r.name, r.parameters, r.history, stored)
        }
        Some(r) => {
            let scheduled = State::new(
                StateKind::Scheduled,
                r.requested_at,
                Some(crate::store::REQUESTED.to_owned()),
            );
            (r.id, r.name, r.parameters, vec![scheduled], 1)
        }
        None => {
            let message = format!("scheduled for {}", rfc3339(due.at));
            let scheduled = State::new(StateKind::Scheduled, due.at, Some(message));
            (
                new_run_id(),
                flow_run_name(),
                d.parameters.clone(),
                vec![scheduled],
                0,
            )
        }
    };
    let delay = now.duration_since(due.at);
    // A run taken over (more than its `Scheduled` stored) was on time when it first started.
    if delay > d.late_after && stored < 2 {
        let late = humantime::format_duration(Duration::from_millis(delay.as_millis() as u64));
        tracing::warn!(
            target: "flowcore",
            "Flow run '{name}' of deployment '{}' starts {late} late (due at {})",
            d.name,
            rfc3339(due.at)
        );
        states.push(State::new(
            StateKind::Late,
            now,
            Some(format!("started {late} after {}", rfc3339(due.at))),
        ));
    }
    if crate::cancel::cancelled_before_start(id) {
        tracing::info!(target: "flowcore", "Flow run '{name}' of deployment '{}' was cancelled before it started", d.name);
        return;
    }
    let slot = Arc::new(crate::cancel::CancelSlot::default());
    let launch = Launch {
        id,
        name: name.clone(),
        deployment: d.name.clone(),
        states: states.clone(),
        stored,
        cancelled_because: Arc::clone(cancelled_because),
        cancel: Arc::clone(&slot),
        prior,
    };
    match d.flow.start(&parameters, Some(launch)) {
        Ok((run, _)) => {
            // A store in scope follows the run onto its own tokio task; it is known by id
            // while it goes on, for a cancel from outside to drop it.
            let run = store.keep_in(run);
            let abort = runs.spawn(async move {
                let _forget = ForgetOnEnd(id);
                run.await
            });
            if !crate::cancel::started(id, abort.clone(), slot) {
                abort.abort();
            }
        }
        Err(e) => {
            // Only a request can bring parameters the flow does not take: the deployment's
            // own were checked when serving started.
            let message = format!(
                "its parameters {parameters} do not fit flow '{}': {e}",
                d.flow_name
            );
            tracing::error!(target: "flowcore", "Flow run '{name}' of deployment '{}' failed: {message}", d.name);
            states.push(State::new(StateKind::Failed, now, Some(message)));
            record_states(store, d, id, name, states, stored, parameters);
        }
    }
}

/// Forgets a served run's cancel registration when its task ends, however it ends.
struct ForgetOnEnd(uuid::Uuid);

impl Drop for ForgetOnEnd {
    fn drop(&mut self) {
        crate::cancel::ended(self.0);
    }
}

/// Records a run that never reached its flow call: its states from `stored` on.
fn record_states(
    store: &Store,
    d: &Served,
    id: uuid::Uuid,
    name: String,
    states: Vec<State>,
    stored: usize,
    parameters: Value,
) {
    let mut states = states.into_iter().enumerate().skip(stored);
    let Some((seq, first)) = states.next() else {
        return;
    };
    store.send(Event::FlowRunCreated {
        id,
        name,
        // Set when the flow is called; a run that never reaches its flow call has none.
        tags: Vec::new(),
        flow: std::borrow::Cow::Borrowed(d.flow_name),
        parent_id: None,
        parameters: Some(parameters.to_string()),
        call_seq: None,
        seq: seq as u32,
        state: first,
        resumed: stored > 0,
        deployment: Some(d.name.clone()),
    });
    for (seq, state) in states {
        store.send(Event::Transition {
            kind: RunKind::Flow,
            id,
            position: None,
            seq: seq as u32,
            state,
            attempts: 0,
            cache: CacheStatus::Off,
            output: None,
        });
    }
}

/// A flow run's panic ends its run (recorded Failed by the run itself), never the server.
fn report_panic(d: &Served, ended: Result<FlowRunRecord, tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(target: "flowcore", "A flow run of deployment '{}' panicked; serving goes on", d.name);
    }
}

/// Lets the runs in flight end while the phase is `Draining`, until its deadline; returns when
/// they all ended, the deadline passed, or the phase says to cancel them. `ended` sees each end.
pub(crate) async fn drain<T: 'static>(
    runs: &mut JoinSet<T>,
    phase: &mut watch::Receiver<Phase>,
    mut ended: impl FnMut(Result<T, tokio::task::JoinError>),
) {
    while !runs.is_empty() {
        let Phase::Draining { deadline } = *phase.borrow() else {
            break;
        };
        tokio::select! {
            Some(end) = runs.join_next() => ended(end),
            () = tokio::time::sleep_until(deadline) => break,
            _ = phase.changed() => {}
        }
    }
}

/// Claims the runs requested for these deployments, as soon as this process requests one and
/// twice a second for other processes' requests, and hands each to its deployment's loop.
pub(crate) async fn poll_requests(
    store: RunStore,
    names: Arc<[String]>,
    senders: HashMap<String, mpsc::UnboundedSender<RequestedRun>>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut tick = tokio::time::interval(super::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A memory store is this process's alone: nothing to poll for, and no timer to wake a
    // paused clock twice a second through a simulated day.
    let poll = store.shared_with_other_processes();
    let mut here = store.requests_here();
    let mut warned = false;
    let mut reaped_at: Option<Instant> = None;
    // A full batch may have left more behind: claim again at once.
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                _ = tick.tick(), if poll => {}
                _ = here.changed() => {}
                _ = phase.changed() => {}
            }
        }
        more = false;
        if !matches!(*phase.borrow(), Phase::Serving) {
            return;
        }
        // Workers look for dead workers: their runs are Crashed, and given back to be claimed
        // again (see `crash_retries`) by the claim just below.
        if poll && reaped_at.is_none_or(|at| at.elapsed() >= super::reap_every()) {
            reaped_at = Some(Instant::now());
            if let Err(e) = store.mark_crashed_off_thread().await {
                tracing::warn!(target: "flowcore", "Cannot look for dead workers: {e}; trying again");
            }
        }
        // Runs of this process cancelled from outside are dropped.
        if poll && let Err(e) = store.take_cancel_requests().await {
            tracing::warn!(target: "flowcore", "Cannot look for cancelled runs: {e}; trying again");
        }
        match store.claim_requests(Arc::clone(&names)).await {
            Ok(requested) => {
                warned = false;
                more = names.iter().any(|name| {
                    requested.iter().filter(|r| r.deployment == *name).count() >= CLAIM_BATCH
                });
                for mut run in requested {
                    if run.paused {
                        // Its completed task runs' outputs are reused, as `resume` does.
                        match store.prior_runs_async(run.id).await {
                            Ok(prior) => run.prior = prior,
                            Err(e) => tracing::warn!(
                                target: "flowcore",
                                "Flow run '{}' runs its tasks again: their outputs could not be read ({e})",
                                run.name
                            ),
                        }
                        tracing::info!(
                            target: "flowcore",
                            "Took up flow run '{}' of deployment '{}', paused for input when its process stopped: it goes on from its last completed task",
                            run.name,
                            run.deployment
                        );
                    } else if run.attempt > 1 {
                        tracing::info!(
                            target: "flowcore",
                            "Took over flow run '{}' of deployment '{}': attempt {}, its worker having died",
                            run.name,
                            run.deployment,
                            run.attempt
                        );
                    } else {
                        tracing::info!(
                            target: "flowcore",
                            "Picked up flow run '{}' of deployment '{}', requested by hand",
                            run.name,
                            run.deployment
                        );
                    }
                    if let Some(tx) = senders.get(&run.deployment) {
                        let _ = tx.send(run);
                    }
                }
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(target: "flowcore", "Cannot look for requested runs: {e}; trying again");
            }
            Err(_) => {}
        }
    }
}
