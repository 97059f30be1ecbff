//! The records of finished runs: what the program can read, serialize and keep.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::names::TaskRunName;
use crate::state::{State, StateKind};
use crate::summary::Summary;

/// A run's states, oldest first. Never empty: every run starts `Pending`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History(SmallVec<[State; INLINE_STATES]>);

/// States a history holds without allocating: Pending, Running and a final state, the
/// history of nearly every task run. A flow of a million task runs keeps a million histories.
const INLINE_STATES: usize = 3;

impl History {
    /// A history that entered Pending at `at`, with room for the usual Running and final
    /// state.
    pub(crate) fn starting_at(at: Timestamp) -> Self {
        let mut states = SmallVec::new();
        states.push(State::new(StateKind::Pending, at, None));
        History(states)
    }

    /// A history read back from a store.
    pub(crate) fn from_states(states: Vec<State>) -> Self {
        History(SmallVec::from_vec(states))
    }

    /// Puts `state` at position `seq`, dropping any states after it: a store applying a
    /// transition it may have seen before.
    pub(crate) fn place(&mut self, seq: u32, state: &State) {
        self.0.truncate(seq as usize);
        self.0.push(state.clone());
    }

    pub(crate) fn push(&mut self, state: State) {
        self.0.push(state);
    }

    /// Makes room for `additional` more states.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.0.reserve_exact(additional);
    }

    /// The latest state. A history read back from a damaged store could be empty; it then
    /// reads as Pending.
    pub fn current(&self) -> &State {
        static EMPTY: State = State {
            kind: StateKind::Pending,
            at: Timestamp::from_micros(0),
            message: None,
        };
        self.0.last().unwrap_or(&EMPTY)
    }

    /// When the first attempt started running; `None` if the run never ran (a cache hit).
    pub fn started_at(&self) -> Option<Timestamp> {
        self.0
            .iter()
            .find(|s| s.kind == StateKind::Running)
            .map(|s| s.at)
    }

    /// When the run reached its final state; `None` while it is still going.
    pub fn ended_at(&self) -> Option<Timestamp> {
        let last = self.current();
        last.is_final().then_some(last.at)
    }

    /// Time from the first attempt's start to the final state (zero for a cache hit); `None`
    /// while the run is still going.
    pub fn duration(&self) -> Option<Duration> {
        let end = self.ended_at()?;
        Some(
            self.started_at()
                .map_or(Duration::ZERO, |s| end.duration_since(s)),
        )
    }

    /// The error message of a failed run.
    pub fn error(&self) -> Option<&str> {
        let last = self.current();
        if last.is_failed() || last.kind == StateKind::Crashed {
            Some(last.message())
        } else {
            None
        }
    }

    /// The kinds of states in order, handy in tests: `[Pending, Running, Completed]`.
    pub fn kinds(&self) -> Vec<StateKind> {
        self.0.iter().map(|s| s.kind).collect()
    }
}

impl Deref for History {
    type Target = [State];

    fn deref(&self) -> &[State] {
        &self.0
    }
}

/// Whether a cached task's result came from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CacheStatus {
    /// The task has no `cache_for`.
    #[default]
    Off,
    /// No valid entry: the body ran and its result was stored.
    Miss,
    /// A valid entry: the body did not run.
    Hit,
    /// `refresh_cache = true`: the body ran and replaced the entry.
    Refreshed,
    /// A resumed flow run reused the output of this task's completed run: the body did not run.
    Resumed,
}

impl CacheStatus {
    /// `"hit"`, `"miss"`, `"refreshed"`, `"resumed"`, or `""` when caching is off.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Off => "",
            CacheStatus::Miss => "miss",
            CacheStatus::Hit => "hit",
            CacheStatus::Refreshed => "refreshed",
            CacheStatus::Resumed => "resumed",
        }
    }
}

/// Everything recorded about one task run.
///
/// Serializes to JSON with its derived fields (`name`, `state`, `duration_secs`, `error`) as
/// well as the stored ones, for scripts that read the record.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TaskRunRecord {
    /// The task run's id.
    pub id: Uuid,
    /// The task's name, from `#[task(name = …)]` or the function.
    pub task: Cow<'static, str>,
    /// The name `#[task(task_run_name = …)]` gave this run; `None` for the default name
    /// ([`name`](Self::name) shows whichever it has).
    #[serde(default)]
    pub given_name: Option<String>,
    /// The flow run it ran in; `None` for a task called outside any flow.
    pub flow_run_id: Option<Uuid>,
    /// The task's tags, then its flow run's.
    #[serde(default)]
    pub tags: Cow<'static, [Cow<'static, str>]>,
    /// Every state, oldest first.
    pub history: History,
    /// Attempts made (0 for a cache hit).
    pub attempts: u32,
    /// Whether the result came from the cache.
    #[serde(default)]
    pub cache: CacheStatus,
    /// The task runs this one depended on: those whose output it was given (data), and those
    /// it was told to wait for (`wait_for`). See [`Upstream`].
    #[serde(default)]
    pub upstream: Upstreams,
    /// For a task run started by [`map`](crate::map): its input's position.
    #[serde(default)]
    pub map_index: Option<u32>,
}

/// An edge of the task graph: a task run that another one depended on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Upstream {
    /// The upstream task run's id.
    pub id: Uuid,
    /// Why the downstream run depended on it.
    pub kind: EdgeKind,
    /// For a `wait_for` edge: whether the downstream ran even if the upstream failed
    /// ([`allow_failure`](crate::allow_failure)).
    #[serde(default)]
    pub allow_failure: bool,
}

/// A task run's upstream edges ([`Upstream`]), oldest first, read as a slice:
/// `run.upstream.len()`, `run.upstream[0].id`, `for edge in &run.upstream`. None or one, as
/// nearly every task run has, are kept in place, without an allocation of their own: a flow of
/// a million task runs each given the last one's output kept a million of those.
///
/// ```
/// use flowcore::{EdgeKind, Upstream, Upstreams, Uuid};
///
/// let edge = Upstream { id: Uuid::nil(), kind: EdgeKind::Data, allow_failure: false };
/// let edges: Upstreams = vec![edge].into();
/// assert_eq!(edges.len(), 1);
/// assert_eq!(edges, [edge]);
/// assert_eq!(serde_json::to_string(&Upstreams::default()).unwrap(), "[]");
/// ```
#[derive(Clone, Default)]
pub struct Upstreams(Edges);

/// Always in its shortest form: no edge, one, or more.
#[derive(Clone, Default)]
enum Edges {
    #[default]
    None,
    One(Upstream),
    Many(Box<[Upstream]>),
}

impl Upstreams {
    /// The edges as a slice.
    pub fn as_slice(&self) -> &[Upstream] {
        self
    }

    pub(crate) fn push(&mut self, edge: Upstream) {
        self.0 = match std::mem::take(&mut self.0) {
            Edges::None => Edges::One(edge),
            Edges::One(first) => Edges::Many(Box::new([first, edge])),
            Edges::Many(edges) => {
                let mut edges = edges.into_vec();
                edges.push(edge);
                Edges::Many(edges.into_boxed_slice())
            }
        };
    }

    /// Keeps the edges `keep` says yes to, in order.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&Upstream) -> bool) {
        let mut edges = self.to_vec();
        edges.retain(keep);
        *self = edges.into();
    }
}

impl Deref for Upstreams {
    type Target = [Upstream];

    fn deref(&self) -> &[Upstream] {
        match &self.0 {
            Edges::None => &[],
            Edges::One(edge) => std::slice::from_ref(edge),
            Edges::Many(edges) => edges,
        }
    }
}

impl std::ops::DerefMut for Upstreams {
    fn deref_mut(&mut self) -> &mut [Upstream] {
        match &mut self.0 {
            Edges::None => &mut [],
            Edges::One(edge) => std::slice::from_mut(edge),
            Edges::Many(edges) => edges,
        }
    }
}

impl From<Vec<Upstream>> for Upstreams {
    fn from(edges: Vec<Upstream>) -> Self {
        edges.as_slice().into()
    }
}

impl From<&[Upstream]> for Upstreams {
    fn from(edges: &[Upstream]) -> Self {
        Upstreams(match edges {
            [] => Edges::None,
            [edge] => Edges::One(*edge),
            many => Edges::Many(many.into()),
        })
    }
}

impl FromIterator<Upstream> for Upstreams {
    fn from_iter<I: IntoIterator<Item = Upstream>>(edges: I) -> Self {
        edges.into_iter().collect::<Vec<_>>().into()
    }
}

impl<'a> IntoIterator for &'a Upstreams {
    type Item = &'a Upstream;
    type IntoIter = std::slice::Iter<'a, Upstream>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Upstreams {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Upstreams {}

impl PartialEq<[Upstream]> for Upstreams {
    fn eq(&self, other: &[Upstream]) -> bool {
        self[..] == *other
    }
}

impl<const N: usize> PartialEq<[Upstream; N]> for Upstreams {
    fn eq(&self, other: &[Upstream; N]) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq<Vec<Upstream>> for Upstreams {
    fn eq(&self, other: &Vec<Upstream>) -> bool {
        self[..] == other[..]
    }
}

impl Serialize for Upstreams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self[..].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Upstreams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Upstream>::deserialize(d).map(Upstreams::from)
    }
}

/// Why one task run depended on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EdgeKind {
    /// An argument of the downstream run was the upstream's output, or an element of it.
    Data,
    /// The downstream run was told to wait for the upstream (`.wait_for(…)`).
    WaitFor,
}

impl EdgeKind {
    /// Its name as stored and serialized: `"data"`, `"wait_for"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Data => "data",
            EdgeKind::WaitFor => "wait_for",
        }
    }
}

impl TaskRunRecord {
    /// The run's name: the one `task_run_name` gave it, else `"extract-a8e"`, the task's name
    /// and the last digits of the id.
    pub fn name(&self) -> TaskRunName<'_> {
        TaskRunName::new(&self.task, self.id, self.given_name.as_deref())
    }

    /// The latest state.
    pub fn state(&self) -> &State {
        self.history.current()
    }

    /// See [`History::duration`].
    pub fn duration(&self) -> Option<Duration> {
        self.history.duration()
    }

    /// See [`History::error`].
    pub fn error(&self) -> Option<&str> {
        self.history.error()
    }
}

impl Serialize for TaskRunRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            id: Uuid,
            name: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            given_name: Option<&'a str>,
            task: &'a str,
            flow_run_id: Option<Uuid>,
            tags: &'a [Cow<'static, str>],
            state: StateKind,
            attempts: u32,
            cache: CacheStatus,
            upstream: &'a [Upstream],
            map_index: Option<u32>,
            duration_secs: Option<f64>,
            error: Option<&'a str>,
            history: &'a History,
        }
        Repr {
            id: self.id,
            name: self.name().to_string(),
            given_name: self.given_name.as_deref(),
            task: &self.task,
            flow_run_id: self.flow_run_id,
            tags: &self.tags,
            state: self.state().kind,
            attempts: self.attempts,
            cache: self.cache,
            upstream: &self.upstream,
            map_index: self.map_index,
            duration_secs: self.duration().map(|d| d.as_secs_f64()),
            error: self.error(),
            history: &self.history,
        }
        .serialize(s)
    }
}

/// Everything recorded about one flow run: its states and all its task runs and subflow runs.
///
/// Get it with [`FlowCall::with_run`](crate::FlowCall::with_run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FlowRunRecord {
    /// The flow run's id.
    pub id: Uuid,
    /// Its readable name, `"enchanted-peacock"`.
    pub name: String,
    /// The flow's name, from `#[flow(name = …)]` or the function.
    pub flow: Cow<'static, str>,
    /// Its tags: the flow's (`#[flow(tags = …)]`), then its parent flow run's. Its task runs
    /// carry them too.
    #[serde(default)]
    pub tags: Vec<String>,
    /// For a subflow, the run of the flow that called it.
    pub parent_id: Option<Uuid>,
    /// Every state of the flow run, oldest first.
    pub history: History,
    /// Attempts of the flow's body.
    pub attempts: u32,
    /// Task runs in the order they finished.
    pub task_runs: Vec<TaskRunRecord>,
    /// Flow runs started from this one, in the order they finished.
    pub subflow_runs: Vec<FlowRunRecord>,
    /// Why the run store does not hold this run as recorded here, if it does not: `"disk
    /// full"` when the store committed nothing for longer than its
    /// [write timeout](crate::Store::write_timeout), or why runs are kept in memory only when the
    /// store could not be opened at all. `None` once the run's final state is committed. The
    /// summary says it too: `Completed · not recorded: disk full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recorded: Option<String>,
}

impl FlowRunRecord {
    /// The latest state.
    pub fn state(&self) -> &State {
        self.history.current()
    }

    /// See [`History::duration`].
    pub fn duration(&self) -> Option<Duration> {
        self.history.duration()
    }

    /// See [`History::error`].
    pub fn error(&self) -> Option<&str> {
        self.history.error()
    }

    /// The task runs of the task named `task`, in the order they finished.
    pub fn task_runs_of<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a TaskRunRecord> {
        self.task_runs.iter().filter(move |r| r.task == task)
    }

    /// How many task runs ended in each state.
    pub fn task_run_counts(&self) -> BTreeMap<StateKind, usize> {
        let mut counts = BTreeMap::new();
        for run in &self.task_runs {
            *counts.entry(run.state().kind).or_insert(0) += 1;
        }
        counts
    }

    /// The end-of-run summary: a table of task runs, counts per state, total time.
    /// It is what the flow logs when it finishes; `to_string()` renders it.
    pub fn summary(&self) -> Summary<'_> {
        Summary::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(n: u64) -> Upstream {
        Upstream {
            id: Uuid::from_u64_pair(0, n),
            kind: EdgeKind::Data,
            allow_failure: false,
        }
    }

    #[test]
    fn edges_read_back_as_they_were_given_however_they_were_made() {
        for n in 0..5 {
            let given: Vec<Upstream> = (0..n).map(edge).collect();
            let mut pushed = Upstreams::default();
            for e in &given {
                pushed.push(*e);
            }
            let collected: Upstreams = given.iter().copied().collect();
            for edges in [Upstreams::from(given.clone()), pushed, collected] {
                assert_eq!(edges, given);
                assert_eq!(edges.as_slice(), given.as_slice());
                let json = serde_json::to_string(&edges).unwrap();
                assert_eq!(json, serde_json::to_string(&given).unwrap());
                assert_eq!(serde_json::from_str::<Upstreams>(&json).unwrap(), edges);
                assert_eq!(format!("{edges:?}"), format!("{given:?}"));
            }
        }
        let mut edges: Upstreams = (0..4).map(edge).collect();
        edges.retain(|e| e.id != edge(1).id && e.id != edge(3).id);
        assert_eq!(edges, [edge(0), edge(2)]);
    }

    /// Nearly every task run has no edge or one: kept in place, in 24 bytes.
    #[test]
    fn one_edge_is_kept_in_place() {
        assert!(matches!(Upstreams::from(vec![edge(1)]).0, Edges::One(_)));
        assert!(matches!(Upstreams::default().0, Edges::None));
        assert_eq!(size_of::<Upstreams>(), 24);
    }
}
