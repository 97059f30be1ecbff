//! Deployments as the store keeps them, and flow runs requested by hand.
//!
//! A process serving deployments writes one row per deployment (its flow, schedule, default
//! parameters, next run) and one row per deployment it serves: any number of processes, on
//! any number of hosts, may serve the same deployment, and together they are its workers.
//! Each scheduled time is taken by one worker (a row keyed by deployment and time, inserted by
//! the first), and `flowcore deployment run` (or the dashboard) requests a run by writing a
//! flow run in state `Scheduled` with the deployment's name and no process, which one worker
//! claims (sets its process, counts the claim) and runs as that very flow run, so the name
//! printed by the CLI is the run's name. A run whose worker died is `Crashed`, and given back
//! `Scheduled` for another worker to claim, as its next attempt, up to the deployment's
//! crash retries.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::StateKind;

/// How many runs requested by hand a worker claims of a deployment at once: enough that a claim
/// is not a transaction per run, few enough that a burst is shared by every worker polling (a
/// worker whose batch came back full claims again at once).
pub(crate) const CLAIM_BATCH: usize = 10;

/// The message of a requested run's `Scheduled` state.
pub(crate) const REQUESTED: &str = "requested by hand";

/// Runs of a deployment that [`DeploymentInfo::last_runs`] lists, at most.
pub(crate) const LAST_RUNS: usize = 5;

/// A deployment as `flowcore deployment ls` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeploymentInfo {
    /// The deployment's name, unique in the store.
    pub name: String,
    /// The flow it runs.
    pub flow: String,
    /// When it runs, as [`Schedule`](crate::schedule::Schedule) displays it; `None` when it
    /// runs only when requested.
    pub schedule: Option<String>,
    /// The parameters a run gets unless the request gives others, as a JSON object.
    pub parameters: Value,
    /// What happens when a run is due while another is going: `skip`, `queue` or `allow`.
    pub overlap: String,
    /// A process serving it, if one is: the last to start serving it.
    pub served_by: Option<ServedBy>,
    /// Every process serving it: its workers, oldest first.
    pub workers: Vec<ServedBy>,
    /// When its next scheduled run is due, while it is served. It keeps counting while the
    /// deployment is paused: the time its schedule would run next.
    pub next_run_at: Option<Timestamp>,
    /// When its schedule was paused ([`Store::pause_deployment`](crate::Store::pause_deployment));
    /// `None` while the schedule runs.
    pub paused_at: Option<Timestamp>,
    /// Its newest runs, newest first (at most five).
    pub last_runs: Vec<DeploymentRun>,
}

/// The process serving a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServedBy {
    /// Its process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
}

/// One run of a deployment, in [`DeploymentInfo::last_runs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeploymentRun {
    /// The flow run's id.
    pub id: Uuid,
    /// The flow run's name.
    pub name: String,
    /// Its current state.
    pub state: StateKind,
    /// When it was scheduled or requested.
    pub created_at: Timestamp,
}

/// A flow run requested by hand, waiting in state `Scheduled` for a process serving its
/// deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RequestedRun {
    /// The flow run's id.
    pub id: Uuid,
    /// The flow run's name, already given.
    pub name: String,
    /// The deployment it is a run of.
    pub deployment: String,
    /// The flow it runs.
    pub flow: String,
    /// Its parameters: the deployment's, with the request's on top.
    pub parameters: Value,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// Which claim of the run this is: 1, or more for a run taken over after its worker died.
    pub attempt: u32,
    /// The run's states so far, when it was taken over: its next attempt goes on from them.
    #[serde(skip)]
    pub(crate) history: Vec<crate::state::State>,
    /// Whether it is a run paused for input that its process let go (`flowcore::pause`).
    #[serde(skip)]
    pub(crate) paused: bool,
    /// For a paused run: what it did before its process stopped, by call position.
    #[serde(skip)]
    pub(crate) prior: std::collections::BTreeMap<u32, crate::store::PriorRun>,
}

/// Whether a deployment's schedule was paused or resumed by the call that asked, or was so
/// already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Changed,
    Already,
}

/// What a serving process writes of a deployment.
#[derive(Clone, Debug)]
pub(crate) struct DeploymentRow {
    pub name: String,
    pub flow: String,
    pub schedule: Option<String>,
    pub parameters: Value,
    pub overlap: &'static str,
    /// How many times a run whose worker died is claimed again.
    pub crash_retries: u32,
}

/// Who runs a deployment's scheduled time, as the worker that asked learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// This worker: it took the time. `going` runs of the deployment are unfinished in the
    /// store, of any worker (for [`Overlap::Skip`](crate::serve::Overlap::Skip)).
    Mine { going: usize },
    /// Another worker took it first.
    Taken,
    /// Nobody: the deployment is paused, and its scheduled times pass without a run.
    Paused,
}

/// A process serving deployments or background tasks, as `flowcore worker ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The process's id in the store: a fresh one at every start.
    pub id: Uuid,
    /// Its process id on its host.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat (every 5 s while it runs).
    pub heartbeat_at: Timestamp,
    /// The deployments it serves, by name.
    pub deployments: Vec<String>,
    /// How many flow runs it holds: claimed and not finished.
    pub runs_held: usize,
    /// The background tasks it serves, by name.
    pub tasks: Vec<String>,
    /// How many delayed task runs it holds: claimed and not finished.
    pub task_runs_held: usize,
}

/// The deployment's parameters with `overrides` (`key=value`, as typed on a command line) on
/// top. A value is read as the JSON type of the parameter's default: a string parameter takes
/// the text as it is, a number parameter needs a number, and so on; a parameter without a
/// default (or a `null` one) takes any JSON, or else the text.
pub(crate) fn parameters_with(
    deployment: &str,
    defaults: &Value,
    overrides: &[(String, String)],
) -> Result<Value, String> {
    let mut merged = match defaults {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, text) in overrides {
        let Some(default) = merged.get(key) else {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err(if known.is_empty() {
                format!("deployment '{deployment}' takes no parameters, but got '{key}'")
            } else {
                format!(
                    "deployment '{deployment}' has no parameter '{key}'; its parameters are: {}",
                    known.join(", ")
                )
            });
        };
        let value = parse_as(default, text).map_err(|expected| {
            format!(
                "parameter '{key}' of deployment '{deployment}' takes {expected} (its default is {default}), not {text:?}"
            )
        })?;
        merged.insert(key.clone(), value);
    }
    Ok(Value::Object(merged))
}

/// `text` as a value of the same JSON type as `default`, or what was expected.
fn parse_as(default: &Value, text: &str) -> Result<Value, &'static str> {
    let json = || serde_json::from_str::<Value>(text.trim());
    match default {
        Value::String(_) => Ok(Value::String(text.to_owned())),
        Value::Bool(_) => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("true or false"),
        },
        Value::Number(n) if n.is_u64() => match json() {
            Ok(v @ Value::Number(_)) if v.is_u64() => Ok(v),
            _ => Err("a whole number of 0 or more"),
        },
        Value::Number(n) if n.is_i64() => match json() {
            Ok(v @ Value::Number(_)) if v.is_i64() || v.is_u64() => Ok(v),
            _ => Err("a whole number"),
        },
        Value::Number(_) => match json() {
            Ok(v @ Value::Number(_)) => Ok(v),
            _ => Err("a number"),
        },
        Value::Array(_) => match json() {
            Ok(v @ Value::Array(_)) => Ok(v),
            _ => Err("a JSON array like [1, 2]"),
        },
        Value::Object(_) => match json() {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err("a JSON object like {\"a\": 1}"),
        },
        Value::Null => Ok(json().unwrap_or_else(|_| Value::String(text.to_owned()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(overrides: &[(&str, &str)]) -> Result<Value, String> {
        let defaults = json!({"url": "http://127.0.0.1/", "every": 30, "delta": -1, "ratio": 0.5,
            "verbose": false, "tags": [], "token": null});
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parameters_with("monitor", &defaults, &overrides)
    }

    #[test]
    fn values_are_read_as_their_defaults_type() {
        let p = with(&[
            ("url", "123"),
            ("every", "5"),
            ("delta", "-3"),
            ("ratio", "2"),
            ("verbose", "true"),
            ("tags", r#"["a"]"#),
            ("token", "abc"),
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"url": "123", "every": 5, "delta": -3, "ratio": 2, "verbose": true,
                "tags": ["a"], "token": "abc"})
        );
    }

    #[test]
    fn a_wrong_type_or_an_unknown_name_is_refused_with_what_is_expected() {
        assert_eq!(
            with(&[("every", "soon")]).unwrap_err(),
            "parameter 'every' of deployment 'monitor' takes a whole number of 0 or more (its default is 30), not \"soon\""
        );
        assert!(with(&[("every", "-1")]).is_err());
        assert!(
            with(&[("verbose", "yes")])
                .unwrap_err()
                .contains("true or false")
        );
        assert_eq!(
            with(&[("ur", "x")]).unwrap_err(),
            "deployment 'monitor' has no parameter 'ur'; its parameters are: delta, every, ratio, tags, token, url, verbose"
        );
        assert_eq!(
            parameters_with("hello", &json!({}), &[("x".into(), "1".into())]).unwrap_err(),
            "deployment 'hello' takes no parameters, but got 'x'"
        );
    }
}
