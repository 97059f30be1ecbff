//! The dashboard over HTTP: every page and API route of `flowcore server start`, against a
//! store filled by real flow runs, as a browser or a script would call them; and its refusals
//! (a port in use, a missing store, a bad address, another host, another site's page, a body
//! that is not JSON); the headers on every answer; and its connections' limits (timeouts, the
//! cap, the bounded shutdown), through raw sockets.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use flowcore::store::RunFilter;
use flowcore::{Deployment, StateKind, Store, flow, task};
use serde_json::Value;
use support::{Dashboard, Running, start_dashboard, start_dashboard_with};

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
/// run at once, and only the deployments test adds runs (Scheduled ones, of `adder`) to it:
/// the tests that count the runs their requests make have their own copy ([`own_store`]).
struct Filled {
    dir: tempfile::TempDir,
    store: Store,
    failed: flowcore::Uuid,
    /// A copy of the store as it was made, for [`own_store`].
    template: std::path::PathBuf,
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
    let template = dir.path().join("template.db");
    rusqlite::Connection::open(dir.path().join("flowcore.db"))
        .unwrap()
        .execute("VACUUM INTO ?1", [template.to_str().unwrap()])
        .unwrap();
    Filled {
        dir,
        store,
        failed,
        template,
    }
});

/// A store of the calling test's own: a copy of the filled store as it was made (its four
/// runs and the deployment `adder`), with the number of flow runs in it, read as another
/// process reads it.
struct OwnStore {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Store,
}

fn own_store() -> OwnStore {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    std::fs::copy(&FILLED.template, &path).unwrap();
    let store = Store::sqlite(&path).unwrap();
    OwnStore {
        _dir: dir,
        path,
        store,
    }
}

impl OwnStore {
    /// The number of flow runs in the store.
    fn runs(&self) -> usize {
        self.store
            .flow_runs(&RunFilter {
                limit: 100_000,
                ..RunFilter::default()
            })
            .unwrap()
            .len()
    }
}

fn store_path() -> std::path::PathBuf {
    FILLED.dir.path().join("flowcore.db")
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

/// When the deployment `name` of `store` was paused, as the store says.
fn paused_at(store: &Store, name: &str) -> Option<flowcore::Timestamp> {
    store
        .deployments()
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no deployment {name}"))
        .paused_at
}

#[test]
fn a_deployment_is_paused_and_resumed_from_its_page_by_post_only() {
    let own = own_store();
    // A name with markup, served once: the page shows it as text, the forms post to its
    // escaped path.
    const MARKUP: &str = "<i>nightly</i>&";
    let serving = flowcore::serve([Deployment::new(MARKUP, || adding(1)).every("1d")])
        .with_shutdown(async {});
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(
            own.store
                .scope(std::future::IntoFuture::into_future(serving)),
        )
        .unwrap();
    let dashboard = start_dashboard(&own.path);
    let page = || get(&format!("{}/deployments", dashboard.url)).1;

    let html = page();
    assert!(
        html.contains(r#"<tr class="deployment" data-deployment="adder">"#),
        "an active deployment has no data-paused: {html}"
    );
    assert!(
        html.contains(r#"action="/deployments/adder/pause""#),
        "{html}"
    );
    assert!(!html.contains(r#"class="paused""#), "{html}");

    // A GET changes nothing; nor does another site's form.
    assert_eq!(dashboard.get("/deployments/adder/pause").status, 405);
    let answer = dashboard.send(
        "POST",
        "/deployments/adder/pause",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(paused_at(&own.store, "adder"), None);

    // The page's own form: the deployment is paused, and the page says so.
    let answer = dashboard.send(
        "POST",
        "/deployments/adder/pause",
        &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        "",
    );
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.header("location"), Some("/deployments"));
    let paused = paused_at(&own.store, "adder").expect("paused in the store");
    let html = page();
    assert!(
        html.contains(r#"<tr class="deployment" data-deployment="adder" data-paused="true">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"action="/deployments/adder/resume""#),
        "{html}"
    );
    assert!(
        !html.contains(r#"action="/deployments/adder/pause""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="paused" title="paused at "#),
        "the Next run column says paused: {html}"
    );
    let listed = get_json(&format!("{}/api/deployments", dashboard.url));
    let adder = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "adder")
        .unwrap();
    let listed_at: flowcore::Timestamp = adder["paused_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(listed_at, paused);

    // The markup name: paused through its escaped path, shown as text.
    let path = "/deployments/%3Ci%3Enightly%3C%2Fi%3E%26/pause";
    assert!(page().contains(&format!(r#"action="{path}""#)));
    assert_eq!(dashboard.send("POST", path, &[], "").status, 303);
    assert!(paused_at(&own.store, MARKUP).is_some());
    let html = page();
    assert!(
        html.contains(r#"data-deployment="&lt;i&gt;nightly&lt;/i&gt;&amp;" data-paused="true""#),
        "{html}"
    );
    assert!(!html.contains("<i>nightly"), "{html}");

    // Resumed, it shows its next run again (none: it is not served) and the pause button.
    assert_eq!(
        dashboard
            .send("POST", "/deployments/adder/resume", &[], "")
            .status,
        303
    );
    assert_eq!(paused_at(&own.store, "adder"), None);
    assert!(page().contains(r#"action="/deployments/adder/pause""#));
    assert_eq!(
        dashboard
            .send("POST", "/deployments/nope/pause", &[], "")
            .status,
        404
    );
    assert_eq!(
        dashboard
            .send("POST", "/deployments/nope/resume", &[], "")
            .status,
        404
    );
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

/// An answer read from a raw socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `{"error": …}` of a JSON error, failing unless the answer is one.
    fn json_error(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let value: Value = serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("the body is not JSON ({e}): {self:?}");
        });
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 1, "{value}");
        let message = object["error"].as_str().unwrap().to_owned();
        assert!(!message.is_empty());
        message
    }
}

impl Dashboard {
    /// `127.0.0.1:PORT`.
    fn addr(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    fn port(&self) -> u16 {
        self.addr().rsplit(':').next().unwrap().parse().unwrap()
    }

    /// A new connection to the dashboard, reads failing after a while rather than hanging.
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }

    /// Sends `method path` with `headers` (and `Host: 127.0.0.1:PORT` unless they have a Host)
    /// and `body` on a new connection, and reads the whole answer.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            request.push_str(&format!("Host: {}\r\n", self.addr()));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if method != "GET" && method != "HEAD" {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("Connection: close\r\n\r\n");
        request.push_str(body);
        self.raw(&request)
    }

    /// Sends `request` as it is on a new connection and reads the answer to the connection's
    /// end.
    fn raw(&self, request: &str) -> Answer {
        let mut stream = self.connect();
        stream.write_all(request.as_bytes()).unwrap();
        read_answer(&mut stream)
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], "")
    }
}

/// An HTTP/1.x answer read to the end of the connection.
fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("read the answer: {e}; read so far: {bytes:?}"));
    parse_answer(&bytes)
}

fn parse_answer(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Reads from `stream` until the dashboard closes it; returns what it sent meanwhile. Fails
/// if it is still open after a minute.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => bytes,
        Err(e) => panic!("the dashboard did not close the connection: {e}; it sent {bytes:?}"),
    }
}

#[test]
fn a_request_for_another_host_is_refused_with_421_and_does_nothing() {
    let own = own_store();
    let dashboard = start_dashboard(&own.path);
    let port = dashboard.port();
    let evil = format!("evil.example:{port}");
    for path in [
        "/".to_owned(),
        "/runs".to_owned(),
        format!("/runs/{}", FILLED.failed),
        "/deployments".to_owned(),
        "/assets/dashboard.js".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let answer = dashboard.send("GET", &path, &[("Host", &evil)], "");
        assert_eq!(answer.status, 421, "{path}: {answer:?}");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{answer:?}"
        );
        assert!(
            answer.body.contains("<h1>Misdirected request</h1>"),
            "{answer:?}"
        );
        assert!(!answer.body.contains("exploding"), "{answer:?}");
    }
    for path in ["/api/stats", "/api/runs", "/api/deployments"] {
        let answer = dashboard.send("GET", path, &[("Host", &evil)], "");
        assert_eq!(answer.status, 421, "{path}: {answer:?}");
        assert!(answer.json_error().contains("evil.example"), "{answer:?}");
    }

    // Nothing is requested, by a form or through the API.
    assert_eq!(own.runs(), 4);
    let answer = dashboard.send(
        "POST",
        "/deployments/adder/run",
        &[
            ("Host", &evil),
            ("Origin", &format!("http://{evil}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    );
    assert_eq!(answer.status, 421, "{answer:?}");
    let answer = dashboard.send(
        "POST",
        "/api/deployments/adder/runs",
        &[("Host", &evil), ("Content-Type", "application/json")],
        "{}",
    );
    assert_eq!(answer.status, 421, "{answer:?}");
    answer.json_error();
    // A request line with a whole URL names its host there.
    let answer = dashboard.raw(&format!(
        "GET http://{evil}/api/runs HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        dashboard.addr()
    ));
    assert_eq!(answer.status, 421, "{answer:?}");
    // HTTP/1.0 without a Host.
    let answer = dashboard.raw("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(answer.status, 421, "{answer:?}");
    assert_eq!(own.runs(), 4);

    // The names of this machine, with the port or none, and no other port.
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let answer = dashboard.send("GET", "/api/stats", &[("Host", &host)], "");
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    for host in [
        format!("localhost:{}", port.wrapping_add(1)),
        format!("127.0.0.2:{port}"),
        "dashboard.internal".to_owned(),
    ] {
        let answer = dashboard.send("GET", "/", &[("Host", &host)], "");
        assert_eq!(answer.status, 421, "{host}: {answer:?}");
    }
}

#[test]
fn allow_host_adds_names_with_any_port_or_the_one_given() {
    let _ = &*FILLED;
    let dashboard = start_dashboard_with(
        &store_path(),
        &[
            "--allow-host",
            "dashboard.internal",
            "--allow-host",
            "proxy.example:8443",
        ],
        &[],
    );
    for (host, status) in [
        ("dashboard.internal", 200),
        ("DASHBOARD.internal:8080", 200),
        ("proxy.example:8443", 200),
        ("proxy.example", 421),
        ("proxy.example:80", 421),
        ("other.internal", 421),
        ("localhost", 200),
    ] {
        let answer = dashboard.send("GET", "/deployments", &[("Host", host)], "");
        assert_eq!(answer.status, status, "{host}: {answer:?}");
    }
    // Its pages' changes: its own origin, over HTTP or HTTPS (a proxy may add TLS).
    for (origin, status) in [
        ("https://dashboard.internal", 404),
        ("http://dashboard.internal:8080", 404),
        ("http://evil.example", 403),
    ] {
        let answer = dashboard.send(
            "POST",
            "/deployments/nope/run",
            &[("Host", "dashboard.internal"), ("Origin", origin)],
            "",
        );
        assert_eq!(answer.status, status, "{origin}: {answer:?}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .args(["server", "start", "--port", "0", "--store"])
        .arg(store_path())
        .args(["--allow-host", "http://dashboard.internal/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "flowcore: --allow-host \"http://dashboard.internal/\" is not a host name: give a name or address, e.g. dashboard.internal or dashboard.internal:8080\n"
    );
}

#[test]
fn a_change_asked_by_another_sites_page_is_refused_with_403_and_runs_nothing() {
    let store = own_store();
    let dashboard = start_dashboard(&store.path);
    let own = dashboard.url.clone();
    let own = own.as_str();
    let own_localhost = own.replace("127.0.0.1", "localhost");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(store.runs(), 4);
    for headers in [
        vec![("Origin", "http://evil.example"), form],
        vec![("Origin", "null"), form],
        // Another server of this machine: port 80, or another port.
        vec![("Origin", "http://127.0.0.1"), form],
        vec![("Origin", "http://localhost:1"), form],
        vec![("Origin", "https://127.0.0.1:1"), form],
        // The Origin decides, whatever follows it.
        vec![
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Referer", own),
        ],
        vec![("Sec-Fetch-Site", "cross-site"), form],
        // A hidden origin (a sandboxed frame's): Sec-Fetch-Site decides, or nothing does.
        vec![("Origin", "null"), ("Sec-Fetch-Site", "cross-site"), form],
        vec![("Origin", "null"), ("Referer", own), form],
        vec![("Sec-Fetch-Site", "same-site"), ("Referer", own)],
        vec![("Referer", "http://evil.example/page.html"), form],
    ] {
        let answer = dashboard.send("POST", "/deployments/adder/run", &headers, "");
        assert_eq!(answer.status, 403, "{headers:?}: {answer:?}");
        assert!(answer.body.contains("<h1>Forbidden</h1>"), "{answer:?}");
        assert!(
            answer
                .body
                .contains("changes are made only from the dashboard&#39;s own pages")
                || answer
                    .body
                    .contains("changes are made only from the dashboard's own pages"),
            "{answer:?}"
        );
        let answer = dashboard.send(
            "POST",
            "/api/deployments/adder/runs",
            &[&headers[..1], &[("Content-Type", "application/json")]].concat(),
            "{}",
        );
        assert_eq!(answer.status, 403, "{headers:?}: {answer:?}");
        assert!(answer.json_error().starts_with("refused: "), "{answer:?}");
    }
    assert_eq!(store.runs(), 4, "no refused request ran");

    // The dashboard's own pages, and scripts that send none of the three.
    let referer = format!("{own}/deployments");
    let mut expected = 4;
    for headers in [
        vec![("Origin", own), form],
        vec![("Origin", own_localhost.as_str()), form],
        vec![("Sec-Fetch-Site", "same-origin"), form],
        vec![("Sec-Fetch-Site", "none")],
        // What a browser sends for the pages' own form, whose referrer policy hides the origin.
        vec![("Origin", "null"), ("Sec-Fetch-Site", "same-origin"), form],
        vec![("Referer", referer.as_str())],
        vec![],
    ] {
        let answer = dashboard.send("POST", "/deployments/adder/run", &headers, "");
        assert_eq!(answer.status, 303, "{headers:?}: {answer:?}");
        expected += 1;
        assert_eq!(store.runs(), expected, "{headers:?}");
    }
    let answer = dashboard.send(
        "POST",
        "/api/deployments/adder/runs",
        &[("Origin", own), ("Content-Type", "application/json")],
        "{}",
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(store.runs(), expected + 1);
}

#[test]
fn the_api_takes_a_body_only_as_json() {
    let store = own_store();
    let dashboard = start_dashboard(&store.path);
    let url = "/api/deployments/adder/runs";
    for headers in [
        vec![],
        vec![("Content-Type", "text/plain")],
        vec![("Content-Type", "application/x-www-form-urlencoded")],
        vec![("Content-Type", "multipart/form-data; boundary=x")],
        vec![("Content-Type", "application/jsonp")],
    ] {
        for body in ["", "{}"] {
            let answer = dashboard.send("POST", url, &headers, body);
            assert_eq!(answer.status, 415, "{headers:?} {body:?}: {answer:?}");
            assert_eq!(
                answer.json_error(),
                "send the body as JSON, with Content-Type: application/json"
            );
        }
    }
    assert_eq!(store.runs(), 4);
    for (content_type, body) in [
        ("application/json", ""),
        ("application/json", "{}"),
        (
            "Application/JSON; charset=utf-8",
            r#"{"parameters": {"n": 3}}"#,
        ),
    ] {
        let before = store.runs();
        let answer = dashboard.send("POST", url, &[("Content-Type", content_type)], body);
        assert_eq!(answer.status, 201, "{content_type} {body:?}: {answer:?}");
        assert_eq!(store.runs(), before + 1);
    }
    assert_eq!(store.runs(), 7);
}

#[test]
fn every_api_error_is_json() {
    let _ = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let json = [("Content-Type", "application/json")];
    for (method, path, headers, body, status, message) in [
        (
            "POST",
            "/api/deployments/adder/runs",
            &json[..],
            "{",
            400,
            "the body is not JSON: ",
        ),
        (
            "POST",
            "/api/deployments/adder/runs",
            &json,
            "[1, 2]",
            422,
            "the body should be {\"parameters\": {\"name\": value, …}}: ",
        ),
        (
            "POST",
            "/api/deployments/adder/runs",
            &json,
            r#"{"parameters": 5}"#,
            422,
            "the body should be",
        ),
        (
            "POST",
            "/api/deployments/adder/runs",
            &[],
            "{}",
            415,
            "send the body as JSON",
        ),
        (
            "GET",
            "/api/runs?limit=many",
            &[],
            "",
            400,
            "Failed to deserialize query string",
        ),
        (
            "GET",
            "/api/runs?offset=-1",
            &[],
            "",
            400,
            "Failed to deserialize query string",
        ),
        (
            "GET",
            "/api/stats?window=month",
            &[],
            "",
            400,
            "unknown window \"month\"",
        ),
        (
            "GET",
            "/api/runs?state=finished",
            &[],
            "",
            400,
            "unknown state",
        ),
        (
            "GET",
            "/api/runs/not-a-uuid",
            &[],
            "",
            404,
            "no flow run with id \"not-a-uuid\"",
        ),
        (
            "GET",
            "/api/runs/%FF",
            &[],
            "",
            400,
            "Invalid UTF-8 in `id`",
        ),
        (
            "GET",
            "/api/no/such/route",
            &[],
            "",
            404,
            "nothing at /api/no/such/route",
        ),
        (
            "GET",
            "/api/deployments/adder/runs",
            &[],
            "",
            405,
            "/api/deployments/adder/runs does not take GET",
        ),
        (
            "DELETE",
            "/api/runs",
            &[],
            "",
            405,
            "/api/runs does not take DELETE",
        ),
    ] {
        let answer = dashboard.send(method, path, headers, body);
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        let error = answer.json_error();
        assert!(error.starts_with(message), "{method} {path}: {error}");
    }
    // The methods a route takes.
    let answer = dashboard.get("/api/deployments/adder/runs");
    assert_eq!(answer.header("allow"), Some("POST"), "{answer:?}");
    // A body past the limit (2 MB) is refused from its length, before it is sent.
    let answer = dashboard.raw(&format!(
        "POST /api/deployments/adder/runs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        dashboard.addr(),
        3 << 20
    ));
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.json_error(), "the body is larger than 2 MiB");
}

/// The headers every answer carries, whatever it is.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// The names of the attributes of every tag of `html` (roughly: values with spaces give
/// words that are not names, never names that are hidden).
fn attribute_names(html: &str) -> Vec<String> {
    html.split('<')
        .skip(1)
        .filter_map(|tag| tag.split('>').next())
        .filter(|tag| !tag.starts_with(['/', '!']))
        .flat_map(|tag| tag.split_whitespace().skip(1))
        .map(|word| word.split('=').next().unwrap().to_ascii_lowercase())
        .collect()
}

#[test]
fn every_answer_carries_the_security_headers_and_pages_have_no_inline_script_or_style() {
    let filled = &*FILLED;
    let dashboard = start_dashboard(&store_path());
    let evil = [("Host", "evil.example")];
    let cross = [("Origin", "http://evil.example")];
    let answers = [
        ("GET", "/".to_owned(), &[][..], 200),
        ("GET", "/runs".to_owned(), &[], 200),
        ("GET", format!("/runs/{}", filled.failed), &[], 200),
        ("GET", "/deployments".to_owned(), &[], 200),
        ("GET", "/assets/dashboard.css".to_owned(), &[], 200),
        ("GET", "/assets/dashboard.js".to_owned(), &[], 200),
        ("GET", "/api/stats".to_owned(), &[], 200),
        ("GET", "/api/runs".to_owned(), &[], 200),
        ("GET", format!("/api/runs/{}", filled.failed), &[], 200),
        ("GET", "/no/such/page".to_owned(), &[], 404),
        ("GET", "/api/nope".to_owned(), &[], 404),
        ("GET", "/runs?state=finished".to_owned(), &[], 400),
        ("PUT", "/deployments".to_owned(), &[], 405),
        ("POST", "/deployments/nope/run".to_owned(), &[], 404),
        ("GET", "/".to_owned(), &evil, 421),
        ("POST", "/deployments/nope/run".to_owned(), &cross, 403),
        ("HEAD", "/".to_owned(), &[], 200),
    ];
    for (method, path, headers, status) in answers {
        let answer = dashboard.send(method, &path, headers, "");
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(
                answer.header(name),
                Some(value),
                "{name} of {method} {path}: {answer:?}"
            );
        }
        let html = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if html && method != "HEAD" {
            // Scripts only from the dashboard's own file, and no inline script or style.
            let scripts: Vec<&str> = answer
                .body
                .match_indices("<script")
                .map(|(at, _)| {
                    let tag = &answer.body[at..];
                    &tag[..tag.find('>').unwrap() + 1]
                })
                .collect();
            assert_eq!(
                scripts,
                [r#"<script src="/assets/dashboard.js" defer>"#],
                "{path}"
            );
            for name in attribute_names(&answer.body) {
                assert!(
                    name != "style" && !name.starts_with("on"),
                    "{path} has an attribute {name}:\n{}",
                    answer.body
                );
            }
        }
    }
    // The states' colours are the stylesheet's.
    let css = dashboard.get("/assets/dashboard.css").body;
    for kind in StateKind::ALL {
        assert!(
            css.contains(&format!(
                ".badge[data-state=\"{}\"] {{ background: {}; color: {}; }}",
                kind.as_str(),
                kind.colour(),
                kind.text_colour()
            )),
            "{kind}: {css}"
        );
    }
}

/// `FLOWCORE_DASHBOARD_…` for a dashboard whose connections time out fast.
const FAST: [(&str, &str); 1] = [("FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS", "300")];

#[test]
fn connections_that_stay_idle_or_send_half_a_request_are_closed_after_the_header_timeout() {
    let _ = &*FILLED;
    let dashboard = start_dashboard_with(&store_path(), &[], &FAST);
    // Nothing sent.
    let mut idle = dashboard.connect();
    // Half a request: its first line and one header, never the blank line.
    let mut half = dashboard.connect();
    half.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", dashboard.addr()).as_bytes())
        .unwrap();
    // A request answered, then nothing more on the kept-alive connection.
    let mut kept = dashboard.connect();
    kept.write_all(
        format!(
            "GET /api/stats HTTP/1.1\r\nHost: {}\r\n\r\n",
            dashboard.addr()
        )
        .as_bytes(),
    )
    .unwrap();

    assert_eq!(
        read_until_closed(&mut idle),
        b"",
        "closed without an answer"
    );
    assert_eq!(
        read_until_closed(&mut half),
        b"",
        "closed without an answer"
    );
    let answered = parse_answer(&read_until_closed(&mut kept));
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(
        answered.body.len(),
        answered
            .header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        "one answer, then the connection closed"
    );
    // The dashboard goes on serving.
    assert_eq!(dashboard.get("/api/stats").status, 200);
}

#[test]
fn a_request_whose_body_does_not_come_is_answered_408() {
    let _ = &*FILLED;
    let dashboard = start_dashboard_with(
        &store_path(),
        &[],
        &[("FLOWCORE_DASHBOARD_REQUEST_TIMEOUT_MS", "300")],
    );
    let mut stream = dashboard.connect();
    stream
        .write_all(
            format!(
                "POST /api/deployments/adder/runs HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                dashboard.addr()
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = parse_answer(&read_until_closed(&mut stream));
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(
        answer.json_error(),
        "the request was not answered within 300ms"
    );
}

#[test]
fn past_the_connection_cap_a_request_waits_and_is_served_once_a_connection_closes() {
    let _ = &*FILLED;
    let dashboard = start_dashboard_with(
        &store_path(),
        &[],
        &[
            ("FLOWCORE_DASHBOARD_MAX_CONNECTIONS", "4"),
            ("FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS", "600000"),
        ],
    );
    // Four idle connections hold every slot (for ten minutes: only closing one frees it).
    let mut idle: Vec<TcpStream> = (0..4).map(|_| dashboard.connect()).collect();
    let mut waiting = dashboard.connect();
    waiting
        .write_all(
            format!(
                "GET /api/stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                dashboard.addr()
            )
            .as_bytes(),
        )
        .unwrap();
    // Not answered while they are open (a correct dashboard never answers here, however long
    // this waits).
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the fifth connection was answered while four were open: {early:?}"
    );
    // One closes: the waiting request is served.
    drop(idle.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let answer = read_answer(&mut waiting);
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn sigterm_stops_the_dashboard_within_the_grace_even_with_half_a_request_open() {
    let _ = &*FILLED;
    // Half a request would be let be for ten minutes: only the grace can end it.
    let dashboard = start_dashboard_with(
        &store_path(),
        &[],
        &[("FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS", "600000")],
    );
    let mut half = dashboard.connect();
    half.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", dashboard.addr()).as_bytes())
        .unwrap();
    let _idle = dashboard.connect();
    // Answered after the two were accepted (in order): both are open.
    assert_eq!(dashboard.get("/api/stats").status, 200);
    dashboard.sigterm();
    let sent = Instant::now();
    let out = dashboard.wait_exit();
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM; the grace is 5 s\n{}",
        support::show(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "flowcore: stopped with 1 connection(s) still open after 5s\n"
    );
    assert_eq!(read_until_closed(&mut half), b"");
}

#[test]
fn sigterm_lets_a_request_under_way_finish_then_exits() {
    let _ = &*FILLED;
    // A grace long enough that exiting before it shows the dashboard did not wait it out.
    let dashboard = start_dashboard_with(
        &store_path(),
        &[],
        &[("FLOWCORE_DASHBOARD_SHUTDOWN_GRACE_MS", "120000")],
    );
    let mut under_way = dashboard.connect();
    under_way
        .write_all(format!("GET /api/stats HTTP/1.1\r\nHost: {}\r\n", dashboard.addr()).as_bytes())
        .unwrap();
    assert_eq!(dashboard.get("/api/stats").status, 200);
    dashboard.sigterm();
    // Its end, whether it comes before or after the dashboard reads the signal.
    under_way.write_all(b"\r\n").unwrap();
    let answer = read_answer(&mut under_way);
    assert_eq!(answer.status, 200, "{answer:?}");
    let answered = Instant::now();
    let addr = dashboard.addr().to_owned();
    let out = dashboard.wait_exit();
    let took = answered.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "exited {took:?} after its last request; the grace is 120 s\n{}",
        support::show(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[test]
fn a_bad_limit_in_the_environment_is_a_one_line_error() {
    let _ = &*FILLED;
    for (var, value, message) in [
        (
            "FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS",
            "soon",
            "flowcore: FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS=\"soon\" is not a whole number\n",
        ),
        (
            "FLOWCORE_DASHBOARD_MAX_CONNECTIONS",
            "0",
            "flowcore: FLOWCORE_DASHBOARD_MAX_CONNECTIONS must be from 1 to 1048576\n",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_flowcore"))
            .args(["server", "start", "--port", "0", "--store"])
            .arg(store_path())
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{var}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "",
            "it never listened"
        );
    }
}
