//! `flowcore deployment pause | resume NAME`: stop a deployment's schedule from starting runs,
//! and let it start them again. The pause is a time in the deployment's row, which every
//! process serving it reads at each scheduled time; runs requested by hand are not affected.

use flowcore::store::DeploymentInfo;
use flowcore::terminal::escape_controls;
use flowcore::{Store, StoreError};

use crate::Failure;
use crate::args::DeploymentName;
use crate::format;

/// `flowcore deployment pause NAME`
pub fn pause(store: &Store, args: &DeploymentName) -> Result<String, Failure> {
    let paused_now = store
        .pause_deployment(&args.name)
        .map_err(|e| unknown(store, e))?;
    let d = find(store, &args.name)?;
    let name = escape_controls(&args.name);
    if !paused_now {
        let since = d
            .paused_at
            .map(|at| format!(" since {}", format::date_time(at)))
            .unwrap_or_default();
        return Ok(format!("Deployment '{name}' was paused already{since}.\n"));
    }
    let mut text = format!(
        "Paused deployment '{name}': its schedule starts no runs until `flowcore deployment resume {name}`; runs requested with `flowcore deployment run {name}` still run.\n"
    );
    if d.schedule.is_none() {
        text.push_str("It has no schedule: it runs only when requested, as before.\n");
    }
    Ok(text)
}

/// `flowcore deployment resume NAME`
pub fn resume(store: &Store, args: &DeploymentName) -> Result<String, Failure> {
    let resumed = store
        .resume_deployment(&args.name)
        .map_err(|e| unknown(store, e))?;
    let name = escape_controls(&args.name);
    if !resumed {
        return Ok(format!("Deployment '{name}' is not paused.\n"));
    }
    let d = find(store, &args.name)?;
    let mut text = format!(
        "Resumed deployment '{name}': its schedule starts runs again from its next time due; the times that passed while it was paused are not made up.\n"
    );
    // The serving process kept counting the times while it was paused: this one is due next.
    if let Some(next) = d.next_run_at {
        text.push_str(&format!("Next run: {}\n", format::date_time(next)));
    }
    Ok(text)
}

/// The deployment just paused or resumed, as the store lists it.
fn find(store: &Store, name: &str) -> Result<DeploymentInfo, Failure> {
    store
        .deployments()?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Failure::new(format!("deployment {name:?} was removed from the store")))
}

/// An unknown deployment, pointing at the command that lists the known ones (when there are
/// some: otherwise the store's own words say there are none).
fn unknown(store: &Store, e: StoreError) -> Failure {
    match e {
        StoreError::UnknownDeployment { name, .. }
            if store.deployments().is_ok_and(|all| !all.is_empty()) =>
        {
            Failure::new(format!(
                "no deployment named {name:?} in the run store {}; `flowcore deployment ls` lists them",
                store.describe()
            ))
        }
        other => other.into(),
    }
}
