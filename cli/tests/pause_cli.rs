//! `flowcore deployment pause | resume NAME`, run as a real process: what each prints, what the
//! store holds after it, how `deployment ls` (and `--json`) shows a paused deployment, and the
//! refusals, one line on stderr. On SQLite and on PostgreSQL.
//!
//! That a paused schedule starts no run is the runtime's to keep, and `tests/pause.rs` checks it.

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::future::IntoFuture as _;

use flowcore::{Deployment, Store, Timestamp, flow};
use serde_json::Value;
use support::backends::TestStore;
use support::cli::{fails, ok};

store_tests!(pause_and_resume_say_what_they_did_and_ls_shows_it);

#[flow(name = "pause-cli")]
async fn nightly_flow() {}

/// `deployment ls` with the spaces that align its columns collapsed.
fn ls(target: &OsStr) -> Vec<String> {
    ok(target, &["deployment", "ls"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn paused_at(store: &Store, name: &str) -> Option<Timestamp> {
    store
        .deployments()
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap()
        .paused_at
}

async fn pause_and_resume_say_what_they_did_and_ls_shows_it(ts: &TestStore) {
    let target = ts.target();
    let store = ts.store();
    let unknown = |name: &str| {
        format!(
            "flowcore: no deployment named \"{name}\" in the run store {}",
            Store::describe_location(target)
        )
    };
    assert_eq!(
        fails(target, &["deployment", "pause", "nightly"], 1),
        format!(
            "{}; no process has served a deployment with this store yet",
            unknown("nightly")
        )
    );

    // Served once, by this process, then no longer.
    let serving = flowcore::serve([
        Deployment::new("nightly", nightly_flow).every("1d"),
        Deployment::new("on-demand", nightly_flow),
    ])
    .with_shutdown(async {})
    .into_future();
    store.scope(serving).await.unwrap();

    assert_eq!(
        ok(target, &["deployment", "pause", "nightly"]),
        "Paused deployment 'nightly': its schedule starts no runs until \
         `flowcore deployment resume nightly`; runs requested with \
         `flowcore deployment run nightly` still run.\n"
    );
    let first = paused_at(store, "nightly").expect("paused in the store");
    assert_eq!(paused_at(store, "on-demand"), None);
    assert_eq!(
        ls(target),
        [
            "Deployment Flow Schedule Next run Last run Last state Served by",
            "nightly pause-cli every 1day paused not served",
            "on-demand pause-cli when requested not served",
        ]
    );
    let listed: Value = serde_json::from_str(&ok(target, &["deployment", "ls", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "nightly");
    let json_paused: Timestamp = listed[0]["paused_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(json_paused, first);
    assert_eq!(listed[1]["paused_at"], Value::Null);

    // Again: nothing changes, and it says since when.
    let again = ok(target, &["deployment", "pause", "nightly"]);
    assert!(
        again.starts_with("Deployment 'nightly' was paused already since 2"),
        "{again}"
    );
    assert_eq!(paused_at(store, "nightly"), Some(first));

    // A deployment without a schedule may be paused: it changes nothing it does, and it says so.
    assert_eq!(
        ok(target, &["deployment", "pause", "on-demand"]),
        "Paused deployment 'on-demand': its schedule starts no runs until \
         `flowcore deployment resume on-demand`; runs requested with \
         `flowcore deployment run on-demand` still run.\n\
         It has no schedule: it runs only when requested, as before.\n"
    );

    assert_eq!(
        ok(target, &["deployment", "resume", "nightly"]),
        "Resumed deployment 'nightly': its schedule starts runs again from its next time due; \
         the times that passed while it was paused are not made up.\n"
    );
    assert_eq!(paused_at(store, "nightly"), None);
    assert_eq!(
        ok(target, &["deployment", "resume", "nightly"]),
        "Deployment 'nightly' is not paused.\n"
    );
    assert_eq!(
        ls(target)[1..],
        [
            "nightly pause-cli every 1day not served",
            "on-demand pause-cli when requested paused not served",
        ]
    );

    // Refusals: an unknown name points at the list; a missing one is clap's (exit code 2).
    for command in ["pause", "resume"] {
        assert_eq!(
            fails(target, &["deployment", command, "nightlly"], 1),
            format!(
                "{}; `flowcore deployment ls` lists them",
                unknown("nightlly")
            )
        );
    }
    assert_eq!(
        fails(target, &["deployment", "pause"], 2),
        "flowcore: the following required arguments were not provided: <NAME> \
         (see 'flowcore deployment pause --help')"
    );
}
