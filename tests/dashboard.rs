//! The dashboard over HTTP: every page and API route of `flowcore server start`, against a
//! store filled by real flow runs, as a browser or a script would call them; and its refusals
//! (a port in use, a missing store, a bad address).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use flowcore::store::RunFilter;
use flowcore::{Deployment, StateKind, Store, flow, task};
use serde_json::Value;
use support::Running;

/// The error of the failing task: it must reach the pages as text, never as markup.
const INJECTED: &str = "<script>window.__pwned = 1</script> boom & <b>bold</b>";

#[task]
async fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[task]
async fn explode() -> Result<u32, String> {
    Err(INJECTED.to_owned())
}

#[flow(name = "adding")]
async fn adding(n: u32) -> u32 {
    let x = add(n, 1).await;
    add(x, 2).await
}

#[flow(name = "exploding")]
async fn exploding() -> Result<u32, String> {
    explode().await
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Adding {
    n: u32,
}

/// A store with 3 Completed runs of `adding`, 1 Failed run of `exploding`, and the
/// deployment `adder` (served once, no longer served). Made once per test binary; the tests
/// run at once, and only the deployments test adds runs (Scheduled ones, of `adder`).
struct Filled {
    dir: tempfile::TempDir,
    store: Store,
    failed: flowcore::Uuid,
}

static FILLED: LazyLock<Filled> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(dir.path().join("flowcore.db")).unwrap();
    store.clone().install().unwrap();
    // Log lines reach the store through the logging layer.
    flowcore::init_logging();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failed = runtime.block_on(async {
        for n in 0..3 {
            adding(n).await;
        }
        let (_, run) = exploding().with_run().await;
        flowcore::serve([
            Deployment::new("adder", |a: Adding| adding(a.n)).parameters(Adding { n: 10 })
        ])
        .with_shutdown(async {})
        .await
        .unwrap();
        store.flush().await.unwrap();
        run.id
    });
    Filled { dir, store, failed }
});

fn store_path() -> std::path::PathBuf {
    FILLED.dir.path().join("flowcore.db")
}

/// A running dashboard on a free port, and its base URL.
struct Dashboard {
    running: Running,
    url: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.running.child.kill();
        let _ = self.running.child.wait();
    }
}

fn start_dashboard(store: &Path) -> Dashboard {
    let mut running = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_flowcore"))
            .args(["server", "start", "--port", "0", "--store"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let rest = running.wait_for_line("flowcore dashboard at");
    let url = rest
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{rest}");
    assert!(
        rest.ends_with(&format!("(store {})", store.display())),
        "{rest}"
    );
    Dashboard { running, url }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The text of the first element with this attribute marker, e.g. `data-state="Completed">`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in:\n{html}"));
    let rest = &html[at + marker.len()..];
    &rest[..rest.find('<').unwrap()]
}

#[test]
fn the_home_page_counts_runs_by_state_as_the_store_does() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let (status, html) = get(&format!("{}/?window=day", dashboard.url));
    assert_eq!(status, 200, "{html}");
    let runs = filled
        .store
        .flow_runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .unwrap();
    let completed = runs
        .iter()
        .filter(|r| r.state == StateKind::Completed)
        .count();
    assert_eq!(completed, 3);
    assert_eq!(
        text_after(&html, r#"<span class="count" data-state="Completed">"#),
        "3"
    );
    assert_eq!(
        text_after(&html, r#"<span class="count" data-state="Failed">"#),
        "1"
    );
    // The total is every run in the window: the ones above, and any the deployments test
    // requested meanwhile (Scheduled), each counted once.
    let shown: usize = html
        .match_indices(r#"<span class="count" data-state=""#)
        .map(|(at, _)| {
            let rest = &html[at..];
            let number = &rest[rest.find('>').unwrap() + 1..];
            number[..number.find('<').unwrap()]
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        text_after(&html, r#"<span id="total-count">"#),
        shown.to_string()
    );
    assert!(shown >= 4);
    assert!(html.contains(r#"<svg id="runs-chart""#), "{html}");
    for run in &runs {
        assert!(
            html.contains(&format!(r#"<tr class="run" data-run-id="{}">"#, run.id)),
            "latest runs lists {}",
            run.name
        );
    }
    // The same numbers from the API.
    let stats = get_json(&format!("{}/api/stats?window=hour", dashboard.url));
    assert_eq!(stats["counts"]["Completed"], 3);
    assert_eq!(stats["counts"]["Failed"], 1);
    assert!(stats["total"].as_u64().unwrap() >= 4);
    assert_eq!(stats["window"], "hour");
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 13);
    let total_in_buckets: u64 = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["counts"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total_in_buckets, stats["total"].as_u64().unwrap());

    let (status, html) = get(&format!("{}/?window=month", dashboard.url));
    assert_eq!(status, 400);
    assert!(
        html.contains("unknown window &quot;month&quot;; use hour, day or week")
            || html.contains("unknown window \"month\"; use hour, day or week"),
        "{html}"
    );
}

#[test]
fn a_failed_run_shows_its_error_as_text_with_its_history_task_runs_and_logs() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let (status, html) = get(&format!("{}/runs/{}", dashboard.url, filled.failed));
    assert_eq!(status, 200, "{html}");
    assert!(
        !html.contains("<script>window.__pwned"),
        "the error is escaped:\n{html}"
    );
    assert!(!html.contains("<b>bold</b>"));
    assert!(
        html.contains(
            "&lt;script&gt;window.__pwned = 1&lt;/script&gt; boom &amp; &lt;b&gt;bold&lt;/b&gt;"
        ),
        "{html}"
    );
    assert!(
        html.contains(r#"<pre id="run-error">&lt;script&gt;"#),
        "{html}"
    );
    assert!(html.contains(r#"data-state="Failed""#));
    assert!(html.contains(r#"<body data-final="true">"#), "{html}");
    for part in [
        r#"<ol id="history">"#,
        r#"<svg id="timeline""#,
        r#"<svg id="task-graph""#,
        r#"<table id="task-runs">"#,
        r#"<td class="task-name">explode-"#,
        r#"<div id="logs">"#,
        r#"class="log-line""#,
    ] {
        assert!(html.contains(part), "{part} in:\n{html}");
    }

    // The API gives the same run, whole.
    let run = get_json(&format!("{}/api/runs/{}", dashboard.url, filled.failed));
    assert_eq!(run["state"], "Failed");
    assert_eq!(run["error"], INJECTED);
    assert_eq!(run["task_runs"][0]["task"], "explode");
    assert!(!run["logs"].as_array().unwrap().is_empty());
    let state = get_json(&format!(
        "{}/api/runs/{}/state",
        dashboard.url, filled.failed
    ));
    assert_eq!(state["state"], "Failed");
    assert_eq!(state["final"], true);
    assert_eq!(state["task_runs"], 1);

    // Unknown or malformed ids: a 404 page, or a JSON error from the API.
    for path in [
        format!("/runs/{}", flowcore::Uuid::nil()),
        "/runs/not-a-uuid".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let (status, html) = get(&format!("{}{path}", dashboard.url));
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("<h1>Not found</h1>"), "{path}: {html}");
    }
    let response = client()
        .get(format!(
            "{}/api/runs/{}",
            dashboard.url,
            flowcore::Uuid::nil()
        ))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let error: Value = response.json().unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("no flow run with id"),
        "{error}"
    );
}

#[test]
fn the_runs_list_filters_by_flow_and_state_and_pages() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let (status, html) = get(&format!("{}/runs?state=Failed", dashboard.url));
    assert_eq!(status, 200);
    assert_eq!(html.matches(r#"<tr class="run""#).count(), 1, "{html}");
    assert!(html.contains(&filled.failed.to_string()));
    let (_, html) = get(&format!(
        "{}/runs?flow=adding&state=Completed&window=day",
        dashboard.url
    ));
    assert_eq!(html.matches(r#"<tr class="run""#).count(), 3, "{html}");
    assert!(!html.contains(r#"id="next-page""#));
    let (status, html) = get(&format!("{}/runs?state=finished", dashboard.url));
    assert_eq!(status, 400);
    assert!(html.contains("unknown state"), "{html}");

    let api = get_json(&format!(
        "{}/api/runs?flow=adding&state=Completed&limit=2",
        dashboard.url
    ));
    assert_eq!(api["runs"].as_array().unwrap().len(), 2);
    let next = get_json(&format!(
        "{}/api/runs?flow=adding&state=Completed&limit=2&offset=2",
        dashboard.url
    ));
    assert_eq!(next["runs"].as_array().unwrap().len(), 1);
    assert_ne!(api["runs"][0]["id"], next["runs"][0]["id"]);
}

#[test]
fn deployments_are_listed_and_run_now_requests_a_run_through_the_store() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let (status, html) = get(&format!("{}/deployments", dashboard.url));
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<tr class="deployment" data-deployment="adder">"#),
        "{html}"
    );
    assert!(html.contains("not served"));
    assert!(
        html.contains(r#"action="/deployments/adder/run""#),
        "{html}"
    );
    let listed = get_json(&format!("{}/api/deployments", dashboard.url));
    assert_eq!(listed[0]["name"], "adder");
    assert_eq!(listed[0]["parameters"]["n"], 10);

    // The button's form: a run in state Scheduled, then its page.
    let response = client()
        .post(format!("{}/deployments/adder/run", dashboard.url))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id: flowcore::Uuid = location.strip_prefix("/runs/").unwrap().parse().unwrap();
    let requested = filled.store.flow_run_summary(id).unwrap().unwrap();
    assert_eq!(requested.state, StateKind::Scheduled);
    assert_eq!(requested.deployment.as_deref(), Some("adder"));
    let (_, html) = get(&format!("{}{location}", dashboard.url));
    assert!(
        html.contains(r#"<body data-final="false">"#),
        "a run still to come is followed"
    );

    // The API, with parameters read as their types.
    let created = client()
        .post(format!("{}/api/deployments/adder/runs", dashboard.url))
        .json(&serde_json::json!({"parameters": {"n": "7"}}))
        .send()
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().unwrap();
    assert_eq!(created["parameters"]["n"], 7);
    let id: flowcore::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        filled.store.flow_run_summary(id).unwrap().unwrap().name,
        created["name"]
    );
    for (url, body, status, message) in [
        (
            "/api/deployments/adder/runs",
            serde_json::json!({"parameters": {"n": "seven"}}),
            400,
            "parameter 'n' of deployment 'adder' takes a whole number of 0 or more (its default is 10), not \"seven\"",
        ),
        (
            "/api/deployments/nope/runs",
            serde_json::json!({}),
            404,
            "no deployment named \"nope\"",
        ),
    ] {
        let response = client()
            .post(format!("{}{url}", dashboard.url))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{url}");
        let error: Value = response.json().unwrap();
        assert!(
            error["error"].as_str().unwrap().starts_with(message),
            "{url}: {error}"
        );
    }
    let (status, _) = {
        let r = client()
            .post(format!("{}/deployments/nope/run", dashboard.url))
            .send()
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 404);
}

#[test]
fn assets_are_served_from_the_binary() {
    let dashboard = start_dashboard(&store_path());
    for (path, kind) in [
        ("/assets/dashboard.css", "text/css"),
        ("/assets/dashboard.js", "text/javascript"),
    ] {
        let response = client()
            .get(format!("{}{path}", dashboard.url))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(!response.text().unwrap().is_empty());
    }
}

#[test]
fn a_port_in_use_a_missing_store_and_a_bad_host_are_one_line_errors() {
    let _ = &*FILLED;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flowcore"))
            .args(args)
            .output()
            .unwrap()
    };
    let store = store_path();
    let store = store.to_str().unwrap();
    let out = run(&["server", "start", "--store", store, "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("flowcore: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("pick another port with --port"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let out = run(&["dashboard", "--store", "/nonexistent/flowcore.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "flowcore: no run store at /nonexistent/flowcore.db; run a flow first, or point --store / FLOWCORE_HOME at one\n"
    );

    let out = run(&["dashboard", "--store", store, "--host", "localhost:80"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an IP address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn listening_beyond_this_machine_warns_that_there_is_no_login() {
    let _ = &*FILLED;
    let mut running = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_flowcore"))
            .args(["dashboard", "--host", "0.0.0.0", "--port", "0", "--store"])
            .arg(store_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let rest = running.wait_for_line("flowcore dashboard at");
    assert!(rest.starts_with("http://0.0.0.0:"), "{rest}");
    let out = running.kill();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("flowcore: warning: serving the dashboard on 0.0.0.0, reachable from other machines; it has no login"),
        "{stderr}"
    );
}
