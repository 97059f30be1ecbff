//! A deployment: a name, a flow with its parameters, a schedule, and what to do when runs
//! would overlap.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::flow::{FlowBody, FlowCall};
use crate::launch::{self, Launch};
use crate::record::FlowRunRecord;
use crate::schedule::{Schedule, ScheduleError};

/// A flow served under a name, with its parameters and its schedule: what
/// [`serve`](crate::serve()) runs, and what `flowcore deployment run NAME` requests a run of.
///
/// The flow is given as a closure that makes the flow call: `|| hello()` for a flow without
/// parameters, or `|p: Params| monitor(p.url, p.every)` for one whose parameters come in a
/// serde struct. [`parameters`](Deployment::parameters) gives their values; a run requested
/// by hand may replace some of them (`--param url=…`).
///
/// ```
/// use flowcore::{flow, Deployment, Overlap};
/// use serde::{Deserialize, Serialize};
///
/// #[flow]
/// async fn monitor(url: String) -> Result<(), String> {
///     Ok(())
/// }
///
/// #[derive(Serialize, Deserialize)]
/// struct Monitor {
///     url: String,
/// }
///
/// let deployment = Deployment::new("monitor", |p: Monitor| monitor(p.url))
///     .parameters(Monitor { url: "http://127.0.0.1:8080/health".into() })
///     .every("30s")
///     .overlap(Overlap::Skip);
/// assert_eq!(deployment.name(), "monitor");
/// ```
#[must_use = "a deployment does nothing until it is served with `flowcore::serve`"]
pub struct Deployment {
    pub(crate) name: String,
    pub(crate) flow: ErasedFlow,
    pub(crate) parameters: Result<Value, String>,
    pub(crate) schedule: Option<Result<Schedule, ScheduleError>>,
    pub(crate) overlap: Overlap,
    pub(crate) late_after: Duration,
    pub(crate) crash_retries: u32,
}

/// What happens when a deployment's run is due while an earlier run of it is still going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overlap {
    /// The due run is skipped, and the log says so (the default). A run requested by hand is
    /// never skipped: it waits, as with `Queue`.
    #[default]
    Skip,
    /// The due run waits for the earlier ones to end, then starts (marked `Late` if it starts
    /// more than `late_after` after its time).
    Queue,
    /// The due run starts at once, beside the earlier ones.
    Allow,
}

impl Overlap {
    /// `"skip"`, `"queue"` or `"allow"`, as the store and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How late a run may start before it is marked `Late`, unless
/// [`late_after`](Deployment::late_after) says otherwise: Prefect's default.
pub const LATE_AFTER: Duration = Duration::from_secs(15);

impl Deployment {
    /// A deployment named `name` (unique among those a store has) of the flow `flow` calls.
    /// Without a schedule it runs only when requested (`flowcore deployment run NAME`).
    ///
    /// When serving starts, `flow` is called once with the deployment's parameters and the
    /// flow call it returns is dropped unpolled (nothing runs): that checks the parameters and
    /// tells the flow's name.
    pub fn new<M>(name: impl Into<String>, flow: impl DeploymentFlow<M>) -> Deployment {
        Deployment {
            name: name.into(),
            flow: flow.erase(),
            parameters: Ok(Value::Object(Default::default())),
            schedule: None,
            overlap: Overlap::default(),
            late_after: LATE_AFTER,
            crash_retries: CRASH_RETRIES,
        }
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values of the flow's parameters: a value that serializes to a JSON object with one
    /// field per parameter, usually the struct the flow closure takes. Without it the flow's
    /// parameter struct is read from `{}`, which works when every field has a serde default.
    pub fn parameters(mut self, parameters: impl Serialize) -> Deployment {
        self.parameters = serde_json::to_value(parameters)
            .map_err(|e| format!("its parameters do not serialize: {e}"))
            .and_then(|v| match v {
                Value::Object(_) => Ok(v),
                other => Err(format!(
                    "its parameters must serialize to a JSON object (a struct with named fields), not {other}"
                )),
            });
        self
    }

    /// Runs every `interval` ("30s", "5m", "1h 30m"), at multiples of it from the Unix epoch
    /// (an interval of a minute runs at each whole minute). A bad interval is reported by
    /// [`serve`](crate::serve()) when it starts, naming the deployment.
    pub fn every(self, interval: &str) -> Deployment {
        self.schedule(Schedule::every(interval))
    }

    /// Runs on a cron line: crontab's five fields (`"*/5 * * * *"`), or six with seconds
    /// first, in UTC.
    #[cfg(feature = "schedules")]
    pub fn cron(self, line: &str) -> Deployment {
        self.schedule(Schedule::cron(line))
    }

    /// Runs on a cron line in a named time zone (`"Europe/Paris"`), daylight saving included.
    #[cfg(feature = "schedules")]
    pub fn cron_in(self, line: &str, zone: &str) -> Deployment {
        self.schedule(Schedule::cron(line).and_then(|s| s.in_time_zone(zone)))
    }

    /// Runs on `schedule` (see [`Schedule`]: intervals with an anchor, cron lines in a time
    /// zone, fixed times), given as a `Schedule` or as the `Result` that makes one: an error is
    /// reported when serving starts, naming the deployment.
    pub fn schedule(mut self, schedule: impl IntoSchedule) -> Deployment {
        self.schedule = Some(schedule.into_schedule());
        self
    }

    /// What to do when a run is due while an earlier one is still going (default
    /// [`Overlap::Skip`]).
    pub fn overlap(mut self, overlap: Overlap) -> Deployment {
        self.overlap = overlap;
        self
    }

    /// How long after its time a run may start before it is marked `Late` (default 15 s, as
    /// in Prefect).
    pub fn late_after(mut self, late_after: Duration) -> Deployment {
        self.late_after = late_after;
        self
    }

    /// How many times a run whose worker died (killed, its host gone, cut off from the store
    /// past its lease) is run again by another worker, as the same flow run's next attempt
    /// (default 1, at most 10). The run is `Crashed` first, naming the worker; with no retry
    /// left it stays so.
    pub fn crash_retries(mut self, retries: u32) -> Deployment {
        self.crash_retries = retries.min(MAX_CRASH_RETRIES);
        self
    }
}

/// [`Deployment::crash_retries`]' default: a run survives the death of one worker.
pub const CRASH_RETRIES: u32 = 1;

/// The most [`Deployment::crash_retries`] takes: a run that kills every worker it lands on
/// (it exhausts the memory, say) stops there.
pub const MAX_CRASH_RETRIES: u32 = 10;

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.name)
            .field("parameters", &self.parameters)
            .field("schedule", &self.schedule)
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

/// A [`Schedule`], or the `Result` of making one: what [`Deployment::schedule`] takes.
pub trait IntoSchedule: crate::sealed::IntoSchedule {
    /// The schedule, or why there is none.
    fn into_schedule(self) -> Result<Schedule, ScheduleError>;
}

impl crate::sealed::IntoSchedule for Schedule {}

impl crate::sealed::IntoSchedule for Result<Schedule, ScheduleError> {}

impl IntoSchedule for Schedule {
    fn into_schedule(self) -> Result<Schedule, ScheduleError> {
        Ok(self)
    }
}

impl IntoSchedule for Result<Schedule, ScheduleError> {
    fn into_schedule(self) -> Result<Schedule, ScheduleError> {
        self
    }
}

/// A flow run started by a deployment, with the name of its flow.
pub(crate) type Started = (
    Pin<Box<dyn Future<Output = FlowRunRecord> + Send>>,
    Option<&'static str>,
);

type Launcher = dyn Fn(&Value, Option<Launch>) -> Result<Started, String> + Send + Sync;

/// A deployment's flow closure, with its parameter type erased: it makes the flow call from
/// JSON parameters.
#[doc(hidden)]
#[derive(Clone)]
pub struct ErasedFlow(Arc<Launcher>);

impl ErasedFlow {
    /// Makes the flow call with these parameters, handing it `launch`; the call is not
    /// polled yet.
    pub(crate) fn start(
        &self,
        parameters: &Value,
        launch: Option<Launch>,
    ) -> Result<Started, String> {
        (self.0)(parameters, launch)
    }
}

/// A closure that makes a flow call, taking nothing or one parameter struct: what
/// [`Deployment::new`] accepts. `M` tells the two apart; it is inferred.
pub trait DeploymentFlow<M>: crate::sealed::DeploymentFlow<M> + Send + Sync + 'static {
    #[doc(hidden)]
    fn erase(self) -> ErasedFlow;
}

impl<F, B> crate::sealed::DeploymentFlow<()> for F
where
    F: Fn() -> FlowCall<B> + Send + Sync + 'static,
    B: FlowBody + Send + 'static,
    B::Output: Send,
{
}

impl<F, P, B> crate::sealed::DeploymentFlow<(P,)> for F
where
    F: Fn(P) -> FlowCall<B> + Send + Sync + 'static,
    P: DeserializeOwned,
    B: FlowBody + Send + 'static,
    B::Output: Send,
{
}

impl<F, B> DeploymentFlow<()> for F
where
    F: Fn() -> FlowCall<B> + Send + Sync + 'static,
    B: FlowBody + Send + 'static,
    B::Output: Send,
{
    fn erase(self) -> ErasedFlow {
        ErasedFlow(Arc::new(move |_: &Value, launch| {
            let (call, flow) = launch::with(launch, || self().with_run());
            Ok((Box::pin(async move { call.await.1 }), flow))
        }))
    }
}

impl<F, P, B> DeploymentFlow<(P,)> for F
where
    F: Fn(P) -> FlowCall<B> + Send + Sync + 'static,
    P: DeserializeOwned,
    B: FlowBody + Send + 'static,
    B::Output: Send,
{
    fn erase(self) -> ErasedFlow {
        ErasedFlow(Arc::new(move |parameters: &Value, launch| {
            let parameters = P::deserialize(parameters).map_err(|e| e.to_string())?;
            let (call, flow) = launch::with(launch, || self(parameters).with_run());
            Ok((Box::pin(async move { call.await.1 }), flow))
        }))
    }
}
