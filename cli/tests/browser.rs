//! The dashboard (`flowcore server start`) in a real browser: headless Chromium driven through
//! ChromeDriver (WebDriver, with the `fantoccini` client), against the real CLI binary serving a
//! store that real flow runs filled. See `/work/notes/dashboard-contract.md` for the routes, DOM
//! ids and classes checked here.
//!
//! What it does, in one test (the steps share one store, one browser and one dashboard):
//!
//! 1. Installs a temporary SQLite store in this process and runs flows into it: three that
//!    complete and one that fails, its task's error being
//!    `<script>window.__pwned = 1</script> boom` (a would-be stored XSS).
//! 2. Serves the deployment `e2e-hello` from this process (`flowcore::serve` with a shutdown
//!    channel), so that the dashboard's "Run now" has a server to run it.
//! 3. Starts `flowcore server start --store PATH --port 0` and reads its URL from the startup
//!    line `flowcore dashboard at http://127.0.0.1:PORT/ (store PATH)`.
//! 4. Starts ChromeDriver on a free port and opens a session of headless Chromium with a fresh
//!    profile directory.
//! 5. Home page (`/?window=day`): the per-state counts and the total equal the store's; the
//!    chart is there; the latest runs list the failed run with its name, flow and badge; a
//!    screenshot is decoded and must not be blank (it is saved as `target/tmp/browser/home.png`
//!    and its path printed). Clicking the failed run's link opens `/runs/<id>`: its name, state
//!    and `#run-error`, which shows the script tag as text; no page (home, run, runs list) ran
//!    the injected script, and none holds a `<script>` element with it. The runs list shows the
//!    run, and its state filter keeps only failed runs. An unknown run is a "Not found" page.
//! 6. Deployments page: clicking "Run now" on `e2e-hello` lands on the new run's page, which
//!    reloads itself until the run (executed by this process's `serve`) shows `Completed`; the
//!    store has that run, of deployment `e2e-hello`; the home page lists it in the latest runs.
//!    All of it under the dashboard's content security policy (no inline script or style): the
//!    state colours of the screenshot come from its stylesheet, the reloads from its script.
//! 7. Another site's pages: a small server of this test on another port of 127.0.0.1, which
//!    Chromium reaches as `evil.example` (`--host-resolver-rules`), serves a page whose script
//!    submits a form to the dashboard's "Run now", and one whose script POSTs to the API with
//!    `fetch`. Both are refused (the form lands on a "Forbidden" page) and the store has exactly
//!    as many runs after as before. The dashboard's own pages under `evil.example`, the name
//!    pointed at it as DNS rebinding would, are a "Misdirected request" page.
//! 8. Cleans up: closes the WebDriver session, kills ChromeDriver, stops the dashboard with
//!    SIGTERM (it must exit cleanly) and the deployment server with its shutdown channel.
//!
//! On a failure in the browser part the test saves the page's screenshot and source as
//! `target/tmp/browser/failure.{png,html}` and prints their paths before failing; assertion
//! messages show the page's URL and the part of its source around what was looked for.
//!
//! Needs Chromium and ChromeDriver of the same version at `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (Debian: `apt-get install chromium chromium-driver`). Without them
//! it says so and checks nothing, unless `FLOWCORE_BROWSER_TEST=required` (as `.ci/run` sets,
//! after installing them): then it fails. It takes a few seconds
//! (most of it Chromium's start and the "Run now" run being picked up and shown).
//!
//! Every wait has a deadline; the only sleeps are polling intervals.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::future::IntoFuture as _;
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use flowcore::store::RunFilter;
use flowcore::{Deployment, StateKind, Store, Uuid, flow, task};
use futures::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use support::Running;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The failed task's error: a script tag that sets `window.__pwned` if the page runs it.
const XSS: &str = "<script>window.__pwned = 1</script> boom";

/// How long a page may take to show what is looked for, ChromeDriver to start, or the run
/// started with "Run now" to be shown Completed.
const WAIT: Duration = Duration::from_secs(30);

/// How often the waits here look again.
const POLL: Duration = Duration::from_millis(100);

/// The deployment served by this process.
const DEPLOYMENT: &str = "e2e-hello";

/// The other site's name, which Chromium resolves to 127.0.0.1.
const EVIL: &str = "evil.example";

#[task]
async fn greet(who: String) -> String {
    format!("hello, {who}")
}

#[flow(name = "e2e-hello")]
async fn hello_flow() -> String {
    greet("browser".to_owned()).await
}

#[task]
async fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[flow(name = "e2e-sum")]
async fn sum_flow() -> u32 {
    let ab = add(1, 2).await;
    add(ab, 3).await
}

#[task]
async fn explode() -> Result<u32, String> {
    Err(XSS.to_owned())
}

#[flow(name = "e2e-explode")]
async fn explode_flow() -> Result<u32, String> {
    let n = explode().await?;
    Ok(n + 1)
}

/// What the browser part checks the pages against.
struct Expected {
    /// The dashboard's URL, ending in `/`.
    base: String,
    store: Store,
    /// The number of runs in each state, by state name, before "Run now".
    counts: BTreeMap<String, usize>,
    failed_id: Uuid,
    failed_name: String,
    /// Every run id before "Run now".
    ids: HashSet<Uuid>,
    /// The other site's server: `http://evil.example:PORT/`.
    attacker: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_a_browser_shows_runs_escapes_errors_and_runs_a_deployment() {
    let started = Instant::now();
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|tool| !Path::new(tool).exists())
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "{} missing: this test drives a real headless Chromium through ChromeDriver. \
             Install both (Debian: `apt-get update && apt-get install -y chromium chromium-driver`)",
            missing.join(" and ")
        );
        // CI installs them and sets this, so that there the test can only pass by running.
        assert!(
            std::env::var("FLOWCORE_BROWSER_TEST").as_deref() != Ok("required"),
            "{message}"
        );
        eprintln!("SKIPPED (FLOWCORE_BROWSER_TEST is not `required`): {message}");
        return;
    }
    let dir = support::tempdir();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&artifacts).unwrap();

    // 1. Real runs in a store on disk.
    let db = dir.path().join("flowcore.db");
    let store = Store::sqlite(&db).expect("create the store");
    store.clone().install().expect("install the store");
    for _ in 0..2 {
        assert_eq!(hello_flow().await, "hello, browser");
    }
    assert_eq!(sum_flow().await, 6);
    let (out, failed) = explode_flow().with_run().await;
    assert_eq!(out, Err(XSS.to_owned()));
    store.flush().await.expect("flush the store");

    let all = RunFilter {
        limit: 1000,
        ..RunFilter::default()
    };
    let runs = store.flow_runs(&all).expect("list the runs");
    assert_eq!(runs.len(), 4, "{runs:#?}");
    let mut counts = BTreeMap::new();
    for run in &runs {
        *counts.entry(run.state.to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("Completed".to_owned(), 3), ("Failed".to_owned(), 1)])
    );
    let failed_summary = runs.iter().find(|r| r.id == failed.id).unwrap();
    assert_eq!(failed_summary.state, StateKind::Failed);
    assert!(
        failed_summary.error.as_deref().unwrap_or("").contains(XSS),
        "the store should hold the failed run's error: {failed_summary:#?}"
    );

    // 2. A deployment served from this process, for "Run now".
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        flowcore::serve([Deployment::new(DEPLOYMENT, hello_flow)])
            .with_shutdown(async move {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    poll("the deployment to be listed as served", WAIT, async || {
        assert!(!serving.is_finished(), "serving the deployment ended early");
        let deployments = store.deployments().expect("list the deployments");
        deployments
            .iter()
            .any(|d| d.name == DEPLOYMENT && d.served_by.is_some())
            .then_some(())
    })
    .await;

    // 3. The dashboard, as a child process.
    let mut dashboard = Dashboard(Some(Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_flowcore"))
            .args(["server", "start", "--store"])
            .arg(&db)
            .args(["--port", "0"])
            .env("FLOWCORE_HOME", dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )));
    let line = tokio::task::block_in_place(|| {
        dashboard
            .0
            .as_mut()
            .unwrap()
            .wait_for_line("flowcore dashboard at")
    });
    let base = dashboard_url(&line, &db);
    println!("dashboard at {base}");

    // 4. ChromeDriver and a browser session.
    let chromedriver = ChromeDriver::start(dir.path());
    let client = chromedriver
        .session(&dir.path().join("chromium-profile"))
        .await;
    println!("browser session after {:?}", started.elapsed());

    // 5., 6. and 7., with a screenshot and the source of the page kept if they fail.
    let attacker = Attacker::start(&base);
    let expected = Expected {
        base,
        store: store.clone(),
        counts,
        failed_id: failed.id,
        failed_name: failed.name.clone(),
        ids: runs.iter().map(|r| r.id).collect(),
        attacker: format!("http://{EVIL}:{}/", attacker.port),
    };
    let outcome = AssertUnwindSafe(browse(&client, &expected, &artifacts))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        keep_failure(&client, &artifacts).await;
    }

    // 8. Clean up: the session, ChromeDriver, the dashboard, the deployment server.
    if let Err(e) = client.close().await {
        eprintln!("closing the WebDriver session failed: {e}");
    }
    drop(chromedriver);
    let dashboard_out = dashboard.stop();
    let _ = stop_tx.send(());
    let served = tokio::time::timeout(WAIT, serving).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(
        dashboard_out.status.success(),
        "the dashboard should exit cleanly on SIGTERM: {}\n{}",
        dashboard_out.status,
        support::show(&dashboard_out)
    );
    match served {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("serving the deployment failed: {e}"),
        Ok(Err(e)) => panic!("serving the deployment panicked: {e}"),
        Err(_) => panic!("serving the deployment did not stop within {WAIT:?}"),
    }
    println!("done in {:?}", started.elapsed());
}

/// Steps 5 and 6: everything done in the browser.
async fn browse(client: &Client, expected: &Expected, artifacts: &Path) {
    let base = &expected.base;

    // Home page: counts, chart, latest runs, a screenshot that is not blank.
    goto(client, &format!("{base}?window=day")).await;
    let mut shown = BTreeMap::new();
    for span in find_all(client, "#counts span.count").await {
        let state = attr(client, &span, "data-state").await;
        let text = span.text().await.expect("read a count");
        let n: usize = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the count for {state} is {text:?}, not a number"));
        assert!(
            shown.insert(state.clone(), n).is_none(),
            "two counts for {state}"
        );
    }
    assert_eq!(
        shown,
        expected.counts,
        "the home page's counts (#counts span.count) should be the store's\n{}",
        context(client, "counts").await
    );
    let total: usize = expected.counts.values().sum();
    let shown_total = text(client, "#counts #total-count").await;
    assert_eq!(
        shown_total.trim(),
        total.to_string(),
        "#total-count\n{}",
        context(client, "total-count").await
    );
    let chart = find(client, "svg#runs-chart").await;
    let (_, _, width, height) = chart.rectangle().await.expect("the chart's size");
    assert!(
        width > 50.0 && height > 20.0,
        "the chart should be drawn, it is {width}x{height}\n{}",
        context(client, "runs-chart").await
    );
    let row = format!(
        "#latest-runs tr.run[data-run-id=\"{}\"]",
        expected.failed_id
    );
    assert_eq!(
        text(client, &format!("{row} a.run-link")).await,
        expected.failed_name
    );
    assert_eq!(text(client, &format!("{row} td.flow")).await, "e2e-explode");
    let badge = find(client, &format!("{row} span.badge")).await;
    assert_eq!(attr(client, &badge, "data-state").await, "Failed");
    assert_eq!(badge.text().await.unwrap(), "Failed");
    assert_eq!(
        find_all(client, "#latest-runs tr.run").await.len(),
        expected.ids.len(),
        "the latest runs should list every run\n{}",
        context(client, "latest-runs").await
    );
    not_pwned(client).await;

    let png = client.screenshot().await.expect("take a screenshot");
    let path = artifacts.join("home.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot of the home page: {}", path.display());
    let colours = colours(&png);
    assert!(
        colours.len() >= 50,
        "the screenshot {} looks blank: {} distinct colours",
        path.display(),
        colours.len()
    );
    for state in [StateKind::Completed, StateKind::Failed] {
        let hex = state.colour();
        assert!(
            colours.contains(&rgb(hex)),
            "the screenshot {} has no pixel of {state}'s colour {hex} ({} colours)",
            path.display(),
            colours.len()
        );
    }

    // The failed run, by its link: its error shown as text, the script not run.
    find(client, &format!("{row} a.run-link"))
        .await
        .click()
        .await
        .expect("click the failed run's link");
    let run_path = format!("/runs/{}", expected.failed_id);
    wait_for_path(client, |p| p == run_path).await;
    assert_eq!(text(client, "h1#run-name").await, expected.failed_name);
    let state = find(client, "#run-state").await;
    assert_eq!(attr(client, &state, "data-state").await, "Failed");
    let error = text(client, "#run-error").await;
    assert!(
        error.contains(XSS),
        "#run-error should show the error as text, {XSS:?}; it shows {error:?}\n{}",
        context(client, "run-error").await
    );
    let task_row = find(client, "table#task-runs tr.task-run").await;
    let task_name = task_row.find(Locator::Css("td.task-name")).await.unwrap();
    assert!(task_name.text().await.unwrap().contains("explode"));
    let task_badge = task_row.find(Locator::Css("span.badge")).await.unwrap();
    assert_eq!(attr(client, &task_badge, "data-state").await, "Failed");
    let body = find(client, "body").await;
    assert_eq!(
        attr(client, &body, "data-final").await,
        "true",
        "a failed run is final"
    );
    not_pwned(client).await;

    // The runs list, and its state filter.
    goto(client, &format!("{base}runs")).await;
    find(
        client,
        &format!("table#runs tr.run[data-run-id=\"{}\"]", expected.failed_id),
    )
    .await;
    assert_eq!(
        find_all(client, "table#runs tr.run").await.len(),
        expected.ids.len()
    );
    not_pwned(client).await;
    goto(client, &format!("{base}runs?state=Failed")).await;
    let rows = find_all(client, "table#runs tr.run").await;
    assert_eq!(
        rows.len(),
        1,
        "/runs?state=Failed should list the one failed run\n{}",
        context(client, "runs").await
    );
    assert_eq!(
        attr(client, &rows[0], "data-run-id").await,
        expected.failed_id.to_string()
    );
    not_pwned(client).await;

    // An unknown run.
    goto(client, &format!("{base}runs/{}", Uuid::nil())).await;
    assert_eq!(text(client, "h1").await, "Not found");

    // "Run now": the new run's page follows the run until it is Completed.
    goto(client, &format!("{base}deployments")).await;
    let deployment_row = format!("tr.deployment[data-deployment=\"{DEPLOYMENT}\"]");
    find(client, &format!("table#deployments {deployment_row}")).await;
    find(client, &format!("{deployment_row} button.run-now"))
        .await
        .click()
        .await
        .expect("click Run now");
    let new_path = wait_for_path(client, |p| {
        p.strip_prefix("/runs/")
            .is_some_and(|id| Uuid::parse_str(id).is_ok())
    })
    .await;
    let new_id = Uuid::parse_str(new_path.strip_prefix("/runs/").unwrap()).unwrap();
    assert!(
        !expected.ids.contains(&new_id),
        "Run now should land on a new run, not {new_path}"
    );
    println!("Run now made the run {new_id}");
    let mut seen = Vec::new();
    let waited = poll(
        "the new run's page to show it Completed",
        WAIT,
        async || {
            // The page reloads itself: an element may be gone before it is read.
            let state = client.find(Locator::Css("#run-state")).await.ok()?;
            let state = state.attr("data-state").await.ok()??;
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            (state == "Completed").then_some(())
        },
    )
    .await;
    if waited.is_none() {
        panic!(
            "the new run's page never showed it Completed within {WAIT:?}; it showed {seen:?} \
             (the store has it as {:?})\n{}",
            expected.store.flow_run_summary(new_id),
            context(client, "run-state").await
        );
    }
    println!("the new run's page showed the states {seen:?}");
    let body = find(client, "body").await;
    assert_eq!(attr(client, &body, "data-final").await, "true");
    let summary = expected
        .store
        .flow_run_summary(new_id)
        .expect("read the new run")
        .unwrap_or_else(|| panic!("the store has no run {new_id}"));
    assert_eq!(summary.deployment.as_deref(), Some(DEPLOYMENT));
    assert_eq!(summary.flow, "e2e-hello");
    assert_eq!(summary.state, StateKind::Completed);
    assert_eq!(text(client, "h1#run-name").await, summary.name);
    not_pwned(client).await;

    // The home page lists it.
    goto(client, base).await;
    let new_row = format!("#latest-runs tr.run[data-run-id=\"{new_id}\"]");
    let new_badge = find(client, &format!("{new_row} span.badge")).await;
    assert_eq!(attr(client, &new_badge, "data-state").await, "Completed");
    assert_eq!(
        text(client, &format!("{new_row} a.run-link")).await,
        summary.name
    );
    not_pwned(client).await;

    other_sites(client, expected).await;
}

/// Step 7: pages of another site ask the dashboard to run a deployment, and it refuses; its
/// own pages, under another site's name, are refused too.
async fn other_sites(client: &Client, expected: &Expected) {
    let all = RunFilter {
        limit: 1000,
        ..RunFilter::default()
    };
    let count = || expected.store.flow_runs(&all).expect("list the runs").len();
    // The runs so far, and the one "Run now" made (Completed: nothing more is coming).
    let before = count();
    assert_eq!(before, expected.ids.len() + 1);

    // A form that the page's script submits as soon as it loads.
    goto(client, &format!("{}form.html", expected.attacker)).await;
    let run_now = format!("/deployments/{DEPLOYMENT}/run");
    wait_for_path(client, |p| p == run_now).await;
    let url = client.current_url().await.unwrap();
    assert_eq!(
        url.host_str(),
        Some("127.0.0.1"),
        "the form posted to the dashboard"
    );
    assert_eq!(
        text(client, "h1").await,
        "Forbidden",
        "the dashboard refuses another site's form\n{}",
        context(client, "<h1").await
    );
    assert_eq!(count(), before, "another site's form ran the deployment");

    // A POST with fetch, as another site's script may send without asking (text/plain).
    goto(client, &format!("{}fetch.html", expected.attacker)).await;
    let settled = poll("the other site's fetch to settle", WAIT, async || {
        let title = client.title().await.ok()?;
        title.starts_with("fetch ").then_some(title)
    })
    .await
    .expect("the other site's page never finished its fetch");
    // Not even an opaque answer: the dashboard's answers are for its own origin only
    // (`Cross-Origin-Resource-Policy: same-origin`), so the browser withholds it.
    assert_eq!(settled, "fetch failed TypeError: Failed to fetch");
    assert_eq!(count(), before, "another site's fetch ran the deployment");

    // The dashboard under the other site's name (DNS rebinding): nothing of it shown.
    let port = expected
        .base
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap();
    goto(client, &format!("http://{EVIL}:{port}/")).await;
    assert_eq!(text(client, "h1").await, "Misdirected request");
    assert!(
        client
            .find_all(Locator::Css("#latest-runs"))
            .await
            .unwrap()
            .is_empty(),
        "the dashboard answered another site's name\n{}",
        context(client, "<body").await
    );
    assert_eq!(count(), before);
}

/// The other site: a server of this test on another port of 127.0.0.1 (for Chromium,
/// `evil.example`), serving `form.html`, whose script submits a form to the dashboard's "Run
/// now", and `fetch.html`, whose script POSTs to the dashboard's API and puts what it got in
/// the page's title. It answers until the test process ends.
struct Attacker {
    port: u16,
}

impl Attacker {
    fn start(dashboard: &str) -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the other site's port");
        let port = listener.local_addr().unwrap().port();
        let form = format!(
            "<!doctype html><title>win a prize</title>\
             <form id=f method=post action=\"{dashboard}deployments/{DEPLOYMENT}/run\">\
             <input type=hidden name=x value=1></form>\
             <script>document.getElementById('f').submit()</script>"
        );
        let fetch = format!(
            "<!doctype html><title>loading</title><script>\
             fetch('{dashboard}api/deployments/{DEPLOYMENT}/runs', {{method: 'POST', \
             mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body: '{{}}'}})\
             .then(r => {{ document.title = 'fetch ' + r.type + ' ' + r.status; }}, \
             e => {{ document.title = 'fetch failed ' + e; }});</script>"
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match std::io::Read::read(&mut stream, &mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/form.html" => ("200 OK", form.as_str()),
                    "/fetch.html" => ("200 OK", fetch.as_str()),
                    _ => ("404 Not Found", "not here"),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
            }
        });
        Attacker { port }
    }
}

/// The dashboard's URL from the rest of its startup line, which must be
/// `http://127.0.0.1:PORT/ (store PATH)`.
fn dashboard_url(rest: &str, db: &Path) -> String {
    let (url, store) = rest.split_once(' ').unwrap_or_else(|| {
        panic!("the startup line should be `flowcore dashboard at URL (store PATH)`: {rest:?}")
    });
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.strip_suffix('/'))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| {
            panic!("the dashboard's URL should be http://127.0.0.1:PORT/: {rest:?}")
        });
    assert_ne!(port, 0, "--port 0 should pick a free port: {rest:?}");
    let canonical = db.canonicalize().unwrap();
    assert!(
        [db, canonical.as_path()]
            .iter()
            .any(|p| store == format!("(store {})", p.display())),
        "the startup line should end with `(store {})`: {rest:?}",
        db.display()
    );
    url.to_owned()
}

/// The dashboard child process: SIGKILLed if the test fails before stopping it.
struct Dashboard(Option<Running>);

impl Dashboard {
    /// Stops it with SIGTERM and returns what it printed.
    fn stop(mut self) -> std::process::Output {
        let running = self.0.take().unwrap();
        let pid = running.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}: {status}");
        tokio::task::block_in_place(|| running.finish_unchecked())
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            let _ = running.kill();
        }
    }
}

/// A ChromeDriver child process, its output in a log file; killed when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts ChromeDriver on a free port of 127.0.0.1 and waits until it accepts connections.
    fn start(dir: &Path) -> ChromeDriver {
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let file = File::create(&log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        let mut driver = ChromeDriver { child, port, log };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!(
                    "{CHROMEDRIVER} exited ({status}) before accepting connections:\n{}",
                    driver.log()
                );
            }
            assert!(
                start.elapsed() < WAIT,
                "{CHROMEDRIVER} did not accept connections on port {port} within {WAIT:?}:\n{}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        driver
    }

    /// A new session of headless Chromium with the fresh profile directory `profile`.
    async fn session(&self, profile: &Path) -> Client {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--window-size=1280,1000",
                    // The other site's name, pointed at this machine.
                    format!("--host-resolver-rules=MAP {EVIL} 127.0.0.1"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await;
        match connect {
            Ok(client) => client,
            Err(e) => panic!(
                "could not open a Chromium session through ChromeDriver: {e}\n{}",
                self.log()
            ),
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} ---\n{text}", self.log.display())
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Calls `check` every [`POLL`] until it returns `Some`, for at most `deadline`; `None` then.
async fn poll<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > deadline {
            eprintln!("gave up after {deadline:?} waiting for {what}");
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn goto(client: &Client, url: &str) {
    if let Err(e) = client.goto(url).await {
        panic!("open {url}: {e}");
    }
}

/// Waits until the browser is at a page whose path passes `ok`; returns the path.
async fn wait_for_path(client: &Client, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let found = poll("the browser to open the page", WAIT, async || {
        let url = client.current_url().await.ok()?;
        last = url.to_string();
        ok(url.path()).then(|| url.path().to_owned())
    })
    .await;
    match found {
        Some(path) => path,
        None => panic!(
            "the browser stayed at {last}\n{}",
            context(client, "<body").await
        ),
    }
}

/// The element `css` matches, waiting for it; fails showing the page.
async fn find(client: &Client, css: &str) -> Element {
    match client
        .wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "no `{css}` on the page ({e})\n{}",
            context(client, key_of(css)).await
        ),
    }
}

/// Every element `css` matches, once the first is there.
async fn find_all(client: &Client, css: &str) -> Vec<Element> {
    find(client, css).await;
    client
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find `{css}`: {e}"))
}

/// The text of the element `css` matches, as the browser renders it.
async fn text(client: &Client, css: &str) -> String {
    find(client, css)
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("read the text of `{css}`: {e}"))
}

async fn attr(client: &Client, element: &Element, name: &str) -> String {
    match element.attr(name).await {
        Ok(Some(value)) => value,
        Ok(None) => panic!(
            "an element has no {name} attribute: {}\n{}",
            element.html(false).await.unwrap_or_default(),
            context(client, "<body").await
        ),
        Err(e) => panic!("read the attribute {name}: {e}"),
    }
}

/// The word of a CSS selector to show the page's source around: its last id or class.
fn key_of(css: &str) -> &str {
    css.rsplit([' ', '#', '.', '['])
        .find(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '-'))
        .unwrap_or("<body")
}

/// The page's URL and its source around the first `key` (or its start), for a failure message.
async fn context(client: &Client, key: &str) -> String {
    let url = client
        .current_url()
        .await
        .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
    let source = client.source().await.unwrap_or_default();
    let at = source.find(key).unwrap_or(0);
    let mut start = at.saturating_sub(800);
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 1200).min(source.len());
    while !source.is_char_boundary(end) {
        end += 1;
    }
    format!(
        "--- page {url}, source around {key:?} ---\n{}\n---",
        &source[start..end]
    )
}

/// Fails if the page ran the injected script, or holds it as a script element.
async fn not_pwned(client: &Client) {
    let ran = client
        .execute("return window.__pwned !== undefined", vec![])
        .await
        .expect("run a script in the page");
    let url = client.current_url().await.unwrap();
    assert_eq!(
        ran,
        Value::Bool(false),
        "the page {url} ran the injected script"
    );
    let injected = client
        .execute(
            "return Array.from(document.scripts).some(s => s.text.includes('__pwned'))",
            vec![],
        )
        .await
        .expect("run a script in the page");
    assert_eq!(
        injected,
        Value::Bool(false),
        "the page {url} has the injected <script> element\n{}",
        context(client, "__pwned").await
    );
}

/// The distinct colours of a PNG image, as RGB.
fn colours(png_bytes: &[u8]) -> HashSet<[u8; 3]> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of a sane size")];
    let info = reader.next_frame(&mut buf).expect("decode the screenshot");
    assert!(
        info.width >= 100 && info.height >= 100,
        "the screenshot is {}x{}",
        info.width,
        info.height
    );
    let step = info.color_type.samples();
    assert!(
        step >= 3,
        "the screenshot is not in colour: {:?}",
        info.color_type
    );
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// `#rrggbb` as RGB.
fn rgb(hex: &str) -> [u8; 3] {
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
    [channel(1), channel(3), channel(5)]
}

/// Saves the page's screenshot and source beside the other artifacts, for a failure.
async fn keep_failure(client: &Client, artifacts: &Path) {
    let url = client.current_url().await.map(|u| u.to_string());
    eprintln!("the browser part failed at {url:?}");
    if let Ok(png) = client.screenshot().await {
        let path = artifacts.join("failure.png");
        if std::fs::write(&path, png).is_ok() {
            eprintln!("screenshot: {}", path.display());
        }
    }
    if let Ok(source) = client.source().await {
        let path = artifacts.join("failure.html");
        if std::fs::write(&path, source).is_ok() {
            eprintln!("page source: {}", path.display());
        }
    }
}
