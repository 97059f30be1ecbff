//! Several processes serving one deployment, as the `flowcore` command and the dashboard show
//! them: `worker ls` (and `--json`), the "Served by" of `deployment ls`, the dashboard's
//! workers page, `/api/workers` and deployments page, as workers start, stop, and are killed;
//! and a run requested by hand, which one of them runs, once.
//!
//! Workers are this test binary again (`child_worker`), each with a host name of its own
//! (`FLOWCORE_HOST`), as are the readers (`READER_HOST`): a reader judges a worker of another
//! host by its heartbeat, so a killed worker is gone once its short lease (`LEASE`) has run
//! out since its last heartbeat.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowcore::{Deployment, Store, Timestamp, flow, task};
use serde_json::Value;
use support::{Dashboard, Running, env_path, show, start_dashboard_with, wait_until};

/// The deployment every worker serves.
const DEPLOYMENT: &str = "greet";

/// The workers' lease: a killed worker is taken for dead this long after its last heartbeat
/// (every sixth of it).
const LEASE: &str = "2s";

/// The host name of the CLI and the dashboard: none of the workers', so that they judge every
/// worker by its heartbeat, as a reader on another machine does.
const READER_HOST: &str = "test-reader";

/// A host name with markup in it: the dashboard must show it as text.
const MARKUP_HOST: &str = "<i>host-c</i>&";

const NO_WORKERS: &str =
    "No workers: no live process serves a deployment or a background task with this store.\n";

#[task]
async fn greet_step(host: String) -> String {
    format!("hello from {host}")
}

/// Writes its worker's host to the `RAN` file, so that the test counts the runs of it.
#[flow(name = "greeting")]
async fn greeting() -> String {
    let host = std::env::var("FLOWCORE_HOST").unwrap_or_default();
    support::append_line(&env_path("RAN").expect("RAN"), &host);
    greet_step(host).await
}

/// A worker: serves `greet` on `WORKER_STORE` until its `STOP` file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of cli/tests/workers_cli.rs"]
async fn child_worker() {
    let Some(target) = std::env::var_os("WORKER_STORE") else {
        return;
    };
    Store::open(target).unwrap().install().unwrap();
    let stop = env_path("STOP").expect("STOP");
    let stopped = async move {
        while !stop.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    println!("WORKER_READY");
    let served = flowcore::serve([Deployment::new(DEPLOYMENT, greeting)])
        .with_shutdown(stopped)
        .await;
    match served {
        Ok(()) => println!("WORKER_STOPPED"),
        Err(e) => println!("WORKER_FAILED {e}"),
    }
}

/// A worker process known as `host`, and its `STOP` file.
struct Worker {
    host: &'static str,
    running: Running,
    stop: PathBuf,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.running.child.id()
    }

    /// Stops it through its `STOP` file and waits for it to exit, cleanly.
    fn stop(self) {
        std::fs::write(&self.stop, "stop").unwrap();
        let out = self.running.finish();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("WORKER_STOPPED"),
            "{}",
            show(&out)
        );
    }
}

/// Starts a worker known as `host` and waits until `flowcore worker ls` lists it last, after
/// the workers before it: each is then younger than those, whatever the machine's speed.
fn start_worker(store: &Path, dir: &Path, host: &'static str, before: &[&Worker]) -> Worker {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let stop = dir.join(format!("stop-{}", STARTED.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = support::child(
        "child_worker",
        [
            ("WORKER_STORE", store.as_os_str()),
            ("STOP", stop.as_os_str()),
            ("RAN", dir.join("ran").as_os_str()),
            ("FLOWCORE_HOST", host.as_ref()),
            ("FLOWCORE_LEASE", LEASE.as_ref()),
            ("NO_COLOR", "1".as_ref()),
        ],
    );
    let mut running = Running::spawn(&mut cmd);
    running.wait_for_line("WORKER_READY");
    let worker = Worker {
        host,
        running,
        stop,
    };
    let mut all = before.to_vec();
    all.push(&worker);
    wait_for_workers(store, &all);
    worker
}

/// Waits until `flowcore worker ls --json` lists exactly `workers`, in this order; returns the
/// list.
fn wait_for_workers(store: &Path, workers: &[&Worker]) -> Vec<Value> {
    let want: Vec<(String, u64)> = workers
        .iter()
        .map(|w| (w.host.to_owned(), u64::from(w.pid())))
        .collect();
    wait_until(&format!("worker ls to list {want:?}"), None, || {
        let listed = workers_json(store);
        (hosts_and_pids(&listed) == want).then_some(listed)
    })
}

fn hosts_and_pids(listed: &[Value]) -> Vec<(String, u64)> {
    listed
        .iter()
        .map(|w| {
            (
                w["host"].as_str().unwrap().to_owned(),
                w["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The command and the dashboard.

/// `flowcore --store STORE ARGS…` from another host, uncoloured; its output, whatever it is.
fn run_cli(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("NO_COLOR", "1")
        .env("FLOWCORE_HOST", READER_HOST)
        .env_remove("FLOWCORE_LEASE")
        .env_remove("FLOWCORE_STORE")
        .output()
        .expect("run flowcore")
}

/// `flowcore --store STORE ARGS…`, which must succeed without a word on stderr; its stdout.
fn flowcore(store: &Path, args: &[&str]) -> String {
    let out = run_cli(store, args);
    assert!(out.status.success(), "flowcore {args:?}: {}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "flowcore {args:?} wrote to stderr"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn workers_json(store: &Path) -> Vec<Value> {
    let text = flowcore(store, &["worker", "ls", "--json"]);
    match serde_json::from_str(&text) {
        Ok(Value::Array(list)) => list,
        _ => panic!("not a JSON array: {text}"),
    }
}

/// Each line with its dates and times replaced by `<date>` and `<time>`, and the spaces that
/// align columns collapsed to one (cli/src/table.rs's own tests check the alignment).
fn normalize(text: &str) -> String {
    let is_date = |w: &str| {
        w.len() == 10
            && w.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                _ => c.is_ascii_digit(),
            })
    };
    let is_time = |w: &str| {
        w.len() == 8
            && w.char_indices().all(|(i, c)| match i {
                2 | 5 => c == ':',
                _ => c.is_ascii_digit(),
            })
    };
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| match w {
                    w if is_date(w) => "<date>",
                    w if is_time(w) => "<time>",
                    w => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `flowcore worker ls` prints for `listed` (as its `--json` gave them), normalized.
fn worker_table(listed: &[Value]) -> String {
    // A worker serving no background task leaves its Tasks cell empty.
    let mut lines =
        vec!["Worker Host Pid Started Last heartbeat Runs held Deployments Tasks".to_owned()];
    for w in listed {
        lines.push(format!(
            "{} {} {} <date> <time> <date> <time> 0 {DEPLOYMENT}",
            w["id"].as_str().unwrap(),
            w["host"].as_str().unwrap(),
            w["pid"]
        ));
    }
    lines.join("\n")
}

/// What `flowcore deployment ls` prints with `served_by` in the Served by column, and the last
/// run and its state if there is one, normalized.
fn deployment_table(last: Option<&str>, served_by: &str) -> String {
    let last = last
        .map(|name| format!(" {name} Completed"))
        .unwrap_or_default();
    format!(
        "Deployment Flow Schedule Next run Last run Last state Served by\n\
         {DEPLOYMENT} greeting when requested{last} {served_by}"
    )
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` of the dashboard, which must answer 200 with the security policy; its body.
fn get(dashboard: &Dashboard, path: &str) -> String {
    let response = client()
        .get(format!("{}{path}", dashboard.url))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let policy = response.headers().get("content-security-policy").cloned();
    let body = response.text().unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    assert!(
        policy.is_some_and(|p| p.to_str().unwrap().starts_with("default-src 'none'")),
        "{path} has no content security policy"
    );
    body
}

/// The text of an HTML fragment: its tags left out, its entities read.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = &rest[rest.find('>').map_or(rest.len(), |end| end + 1)..];
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The HTML of the element that starts with `start`, up to `end`.
fn element<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in:\n{html}"));
    let rest = &html[at..];
    &rest[..rest.find(end).unwrap() + end.len()]
}

/// The text of each `td` of a table row, by its first class.
fn cells(row: &str) -> Vec<(String, String)> {
    row.match_indices("<td")
        .map(|(at, _)| {
            let td = element(&row[at..], "<td", "</td>");
            let class = td
                .split_once("class=\"")
                .map(|(_, c)| c.split(['"', ' ']).next().unwrap().to_owned())
                .unwrap_or_default();
            let inner = &td[td.find('>').unwrap() + 1..td.len() - "</td>".len()];
            (class, text_of(inner))
        })
        .collect()
}

/// Checks that the dashboard shows the workers `flowcore worker ls --json` listed as `listed`
/// (on its workers page and `/api/workers`), and `served_by` as who serves the deployment.
fn check_dashboard(dashboard: &Dashboard, listed: &[Value], served_by: &str) {
    // The API is the command's JSON; only the heartbeats moved on since.
    let api: Vec<Value> =
        serde_json::from_str(&get(dashboard, "/api/workers")).expect("/api/workers is JSON");
    let without_heartbeat = |list: &[Value]| -> Vec<Value> {
        list.iter()
            .map(|w| {
                let mut w = w.clone();
                w.as_object_mut().unwrap().remove("heartbeat_at");
                w
            })
            .collect()
    };
    assert_eq!(without_heartbeat(&api), without_heartbeat(listed));

    let html = get(dashboard, "/workers");
    assert!(
        html.contains(r#"<a href="/workers" class="here">Workers</a>"#),
        "the navigation links the page: {html}"
    );
    let table = element(&html, r#"<table id="workers">"#, "</table>");
    let rows: Vec<&str> = table
        .match_indices(r#"<tr class="worker""#)
        .map(|(at, _)| element(&table[at..], "<tr", "</tr>"))
        .collect();
    assert_eq!(rows.len(), listed.len(), "{table}");
    for (row, w) in rows.iter().zip(listed) {
        let id = w["id"].as_str().unwrap();
        assert!(
            row.starts_with(&format!(r#"<tr class="worker" data-worker-id="{id}">"#)),
            "{row}"
        );
        let cells = cells(row);
        let classes: Vec<&str> = cells.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            classes,
            [
                "id",
                "host",
                "pid",
                "started",
                "heartbeat",
                "runs-held",
                "deployments",
                "tasks"
            ]
        );
        let started: Timestamp = w["started_at"].as_str().unwrap().parse().unwrap();
        let shown = started
            .to_datetime()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        assert_eq!(cells[0].1, id);
        assert_eq!(cells[1].1, w["host"].as_str().unwrap());
        assert_eq!(cells[2].1, w["pid"].to_string());
        assert_eq!(cells[3].1, shown);
        assert!(
            cells[4].1.ends_with(" s ago)") && cells[4].1.contains(" UTC ("),
            "{:?}",
            cells[4]
        );
        assert_eq!(cells[5].1, "0");
        assert_eq!(cells[6].1, DEPLOYMENT);
        assert_eq!(cells[7].1, "");
    }
    if listed.is_empty() {
        assert!(table.contains(NO_WORKERS.trim_end()), "{table}");
    }
    // Every host name is text, never markup.
    assert!(!html.contains("<i>"), "{html}");

    let html = get(dashboard, "/deployments");
    let row = element(
        &html,
        &format!(r#"<tr class="deployment" data-deployment="{DEPLOYMENT}">"#),
        "</tr>",
    );
    let served = element(row, r#"<td class="served-by">"#, "</td>");
    assert_eq!(text_of(served), served_by, "{served}");
    assert!(!html.contains("<i>"), "{html}");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn worker_ls_says_so_when_no_process_serves_a_deployment() {
    let dir = support::tempdir();
    let store = dir.path().join("flowcore.db");
    drop(Store::sqlite(&store).unwrap());
    assert_eq!(flowcore(&store, &["worker", "ls"]), NO_WORKERS);
    assert_eq!(flowcore(&store, &["worker", "ls", "--json"]), "[]\n");

    let dashboard = start_dashboard_with(&store, &[], &[("FLOWCORE_HOST", READER_HOST)]);
    let html = get(&dashboard, "/workers");
    let table = element(&html, r#"<table id="workers">"#, "</table>");
    assert!(
        table.contains(&format!(
            r#"<td class="empty" colspan="8">{}</td>"#,
            NO_WORKERS.trim_end()
        )),
        "{table}"
    );
    assert_eq!(get(&dashboard, "/api/workers"), "[]");
}

#[test]
fn workers_are_listed_as_they_start_stop_and_die_and_a_requested_run_runs_once() {
    let dir = support::tempdir();
    let store = dir.path().join("flowcore.db");
    let dashboard = {
        drop(Store::sqlite(&store).unwrap());
        start_dashboard_with(&store, &[], &[("FLOWCORE_HOST", READER_HOST)])
    };

    // Two workers, host-a the older.
    let a = start_worker(&store, dir.path(), "host-a", &[]);
    let b = start_worker(&store, dir.path(), "host-b", &[&a]);
    let listed = workers_json(&store);
    assert_eq!(
        hosts_and_pids(&listed),
        [
            ("host-a".to_owned(), u64::from(a.pid())),
            ("host-b".to_owned(), u64::from(b.pid()))
        ]
    );
    let now = Timestamp::wall_now();
    for w in &listed {
        let mut keys: Vec<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "deployments",
                "heartbeat_at",
                "host",
                "id",
                "pid",
                "runs_held",
                "started_at",
                "task_runs_held",
                "tasks"
            ]
        );
        let _: flowcore::Uuid = w["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(w["deployments"], serde_json::json!([DEPLOYMENT]));
        assert_eq!(w["runs_held"], 0);
        assert_eq!(w["tasks"], serde_json::json!([]));
        assert_eq!(w["task_runs_held"], 0);
        let started: Timestamp = w["started_at"].as_str().unwrap().parse().unwrap();
        let heartbeat: Timestamp = w["heartbeat_at"].as_str().unwrap().parse().unwrap();
        assert!(started <= heartbeat, "{w}");
        assert!(
            now.duration_since(heartbeat) < Duration::from_secs(10),
            "a live worker's heartbeat is recent: {w}"
        );
    }
    assert_ne!(listed[0]["id"], listed[1]["id"]);
    assert_eq!(
        normalize(&flowcore(&store, &["worker", "ls"])),
        worker_table(&listed)
    );
    let both = format!(
        "2 workers: pid {} on host-a, pid {} on host-b",
        a.pid(),
        b.pid()
    );
    assert_eq!(
        normalize(&flowcore(&store, &["deployment", "ls"])),
        deployment_table(None, &both)
    );
    check_dashboard(&dashboard, &listed, &both);

    // A run requested by hand: one worker claims it and runs it, once.
    let out = run_cli(&store, &["deployment", "run", DEPLOYMENT, "--watch"]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first = stdout.lines().next().unwrap();
    let (name, id) = first
        .strip_prefix("Created flow run '")
        .and_then(|rest| rest.split_once(&format!("' of deployment '{DEPLOYMENT}' (id ")))
        .unwrap_or_else(|| panic!("{stdout}"));
    let id: flowcore::Uuid = id.trim_end_matches(')').parse().unwrap();
    assert_eq!(
        normalize(&stdout),
        format!(
            "{first}\n\
             <date> <time> Scheduled requested by hand\n\
             <date> <time> Pending\n\
             <date> <time> Running\n\
             <date> <time> Completed\n\
             Flow run '{name}' finished in state Completed"
        )
    );
    let ran = support::lines(&dir.path().join("ran"));
    assert_eq!(ran.len(), 1, "the flow ran once: {ran:?}");
    assert!(ran[0] == "host-a" || ran[0] == "host-b", "{ran:?}");
    let count = |sql: &str| support::count(&store, sql, [id.as_bytes().as_slice()]);
    assert_eq!(
        count("SELECT COUNT(*) FROM flow_runs WHERE deployment = 'greet' OR id = ?1"),
        1
    );
    assert_eq!(
        count("SELECT claims FROM flow_runs WHERE id = ?1"),
        1,
        "claimed once"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM states WHERE run_id = ?1 AND kind = 'Completed'"),
        1
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = ?1 AND task = 'greet_step'
                 AND state = 'Completed'"
        ),
        1
    );
    // Run by the worker whose host it wrote.
    let by: String = support::raw(&store)
        .query_row(
            "SELECT p.host FROM flow_runs r JOIN processes p ON p.id = r.process_id
             WHERE r.id = ?1",
            [id.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by, ran[0]);
    // Done: neither holds it.
    let listed = workers_json(&store);
    assert_eq!(
        normalize(&flowcore(&store, &["worker", "ls"])),
        worker_table(&listed)
    );
    assert_eq!(listed.len(), 2);

    // Stopped: gone at once, from everything.
    a.stop();
    let listed = workers_json(&store);
    assert_eq!(
        hosts_and_pids(&listed),
        [("host-b".to_owned(), u64::from(b.pid()))]
    );
    assert_eq!(
        normalize(&flowcore(&store, &["worker", "ls"])),
        worker_table(&listed)
    );
    let only_b = format!("pid {} on host-b", b.pid());
    assert_eq!(
        normalize(&flowcore(&store, &["deployment", "ls"])),
        deployment_table(Some(name), &only_b)
    );
    check_dashboard(&dashboard, &listed, &only_b);

    // A younger worker, whose host name has markup in it: the command prints it as it is, the
    // dashboard as text.
    let c = start_worker(&store, dir.path(), MARKUP_HOST, &[&b]);
    let listed = workers_json(&store);
    assert_eq!(
        normalize(&flowcore(&store, &["worker", "ls"])),
        worker_table(&listed)
    );
    let b_and_c = format!(
        "2 workers: pid {} on host-b, pid {} on {MARKUP_HOST}",
        b.pid(),
        c.pid()
    );
    assert_eq!(
        normalize(&flowcore(&store, &["deployment", "ls"])),
        deployment_table(Some(name), &b_and_c)
    );
    check_dashboard(&dashboard, &listed, &b_and_c);
    let html = get(&dashboard, "/deployments");
    assert!(
        html.contains(&format!(
            r#"<span class="worker" data-pid="{pid}" data-host="&lt;i&gt;host-c&lt;/i&gt;&amp;">pid {pid} on &lt;i&gt;host-c&lt;/i&gt;&amp;</span>"#,
            pid = c.pid()
        )),
        "{html}"
    );
    assert!(
        get(&dashboard, "/workers")
            .contains(r#"<td class="host">&lt;i&gt;host-c&lt;/i&gt;&amp;</td>"#),
        "the host is escaped on the workers page"
    );

    // Killed: gone once its lease has run out since its last heartbeat.
    let b_pid = b.pid();
    b.running.kill();
    let killed_at = Instant::now();
    let listed = wait_for_workers(&store, &[&c]);
    let gone = killed_at.elapsed();
    println!("the killed worker was gone {gone:?} after the kill (lease {LEASE})");
    assert!(
        gone < Duration::from_secs(15),
        "a killed worker with a lease of {LEASE} was listed for {gone:?}"
    );
    assert_eq!(
        normalize(&flowcore(&store, &["worker", "ls"])),
        worker_table(&listed)
    );
    let only_c = format!("pid {} on {MARKUP_HOST}", c.pid());
    let deployments = flowcore(&store, &["deployment", "ls"]);
    assert_eq!(
        normalize(&deployments),
        deployment_table(Some(name), &only_c)
    );
    assert!(
        !deployments.contains(&format!("pid {b_pid} ")),
        "{deployments}"
    );
    check_dashboard(&dashboard, &listed, &only_c);

    // The last one stopped: no workers, and the deployment is not served.
    c.stop();
    assert_eq!(flowcore(&store, &["worker", "ls"]), NO_WORKERS);
    assert_eq!(
        normalize(&flowcore(&store, &["deployment", "ls"])),
        deployment_table(Some(name), "not served")
    );
    check_dashboard(&dashboard, &[], "not served");
}

#[test]
fn the_workers_routes_answer_only_the_dashboards_hosts_and_only_get() {
    let dir = support::tempdir();
    let store = dir.path().join("flowcore.db");
    drop(Store::sqlite(&store).unwrap());
    let dashboard = start_dashboard_with(&store, &[], &[("FLOWCORE_HOST", READER_HOST)]);
    for path in ["/workers", "/api/workers"] {
        let response = client()
            .get(format!("{}{path}", dashboard.url))
            .header("Host", "evil.example")
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 421, "{path}");
        let json = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.to_str().unwrap().starts_with("application/json"));
        assert_eq!(json, path.starts_with("/api/"), "{path}");

        let response = client()
            .post(format!("{}{path}", dashboard.url))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{path}");
    }
    let response = client()
        .get(format!("{}/api/workers", dashboard.url))
        .send()
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}
