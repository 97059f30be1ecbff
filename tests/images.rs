//! The `images` example (SCENARIOS 3): its deployment served every minute on tokio's paused
//! clock, a download answering 404, and the example program run end to end.
//!
//! The tests in this process share one memory store; the flow and its tasks come from the
//! example's own files. The end-to-end tests run `target/debug/examples/images`, which
//! `cargo test` builds first; with a filter such as `cargo test --test images` it does not, so
//! build it with `cargo build --examples`.

mod support;

#[path = "../examples/images/pipeline.rs"]
mod pipeline;
#[path = "../examples/images/service.rs"]
mod service;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use flowcore::schedule::Schedule;
use flowcore::store::RunFilter;
use flowcore::{FlowRunRecord, StateKind, Store, Timestamp};

use pipeline::{Finished, Params};

/// The store of this process: in memory, installed by whichever test comes first.
fn memory_store() -> Store {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        Store::memory()
            .install()
            .expect("no store is installed before the first test")
    });
    let store = Store::current();
    assert_eq!(store.describe(), ":memory:");
    store
}

/// The runs of the deployment `images` in `store`, with their task runs, oldest first.
fn deployment_runs(store: &Store) -> Vec<FlowRunRecord> {
    let filter = RunFilter {
        flow: Some("images".to_owned()),
        limit: 1000,
        ..Default::default()
    };
    let mut runs: Vec<FlowRunRecord> = store
        .flow_runs(&filter)
        .unwrap()
        .into_iter()
        .filter(|run| run.deployment.as_deref() == Some("images"))
        .map(|run| {
            store
                .flow_run(run.id)
                .unwrap()
                .expect("a listed run has a record")
        })
        .collect();
    runs.sort_by_key(|run| run.history[0].at);
    runs
}

/// Checks that `path` is `<out>/<topic>-<n>.png` and holds exactly the photo the service
/// serves under that id.
fn assert_photo(path: &Path, out: &Path, n: usize) {
    assert_eq!(
        path.parent(),
        Some(out),
        "{} is not in {}",
        path.display(),
        out.display()
    );
    let id = path
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_suffix(".png"))
        .unwrap_or_else(|| panic!("{} is not a .png file", path.display()));
    let topic = id
        .strip_suffix(&format!("-{n}"))
        .unwrap_or_else(|| panic!("photo {id} is not photo number {n}"));
    assert!(pipeline::TOPICS.contains(&topic), "unknown topic in {id}");
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(
        bytes,
        service::image_bytes(id),
        "{} differs from the photo served",
        path.display()
    );
}

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Three simulated minutes of the deployment, every minute from 10 s after the start: runs at
/// +10 s, +70 s and +130 s. The API fails its first two photo requests, so the first run's
/// `get_data` retries twice, 15 s apart; the others succeed at once.
#[tokio::test(start_paused = true)]
async fn served_every_minute_the_first_run_retries_the_flaky_api_twice() {
    let store = memory_store();
    let service = service::start(2).await.unwrap();
    assert_eq!(service.fail_first(), 2);
    let out = tempfile::tempdir().unwrap();
    let mut finished = pipeline::finished_runs();

    let first = Timestamp::now()
        .checked_add(Duration::from_secs(10))
        .unwrap();
    let schedule = Schedule::every("1m").map(|s| s.anchored_at(first));
    let deployment = pipeline::deployment(Params {
        api: service.url().to_owned(),
        out_dir: out.path().to_str().unwrap().to_owned(),
    })
    .schedule(schedule);
    let three_minutes = tokio::time::sleep(Duration::from_secs(180));
    flowcore::serve([deployment])
        .with_shutdown(three_minutes)
        .await
        .unwrap();

    let runs = deployment_runs(&store);
    assert_eq!(runs.len(), 3, "runs: {runs:#?}");
    for (k, run) in runs.iter().enumerate() {
        assert_eq!(
            run.history.kinds(),
            [
                StateKind::Scheduled,
                StateKind::Pending,
                StateKind::Running,
                StateKind::Completed
            ],
            "run {k}: {:#?}",
            run.history
        );
        // Exactly on the schedule: a minute apart, from the anchor.
        let scheduled = &run.history[0];
        let due = first
            .checked_add(Duration::from_secs(60 * k as u64))
            .unwrap();
        assert_eq!(scheduled.at, due, "run {k} was scheduled at the wrong time");
        assert!(
            scheduled.message().starts_with("scheduled for "),
            "{scheduled}"
        );
        let started = run.history[1].at.duration_since(scheduled.at);
        assert!(
            started < Duration::from_secs(1),
            "run {k} started {started:?} after its time"
        );

        let tasks: Vec<&str> = run.task_runs.iter().map(|t| &*t.task).collect();
        assert_eq!(tasks, ["get_data", "transform", "store"], "run {k}");
        for task in &run.task_runs[1..] {
            assert_eq!(task.attempts, 1, "{}", task.name());
            assert_eq!(
                task.history.kinds(),
                [StateKind::Pending, StateKind::Running, StateKind::Completed],
                "{}",
                task.name()
            );
        }
    }

    // The first run's get_data: two 503s, each followed by exactly 15 s of waiting.
    let get_data = &runs[0].task_runs[0];
    assert_eq!(get_data.attempts, 3);
    assert_eq!(
        get_data.history.kinds(),
        [
            StateKind::Pending,
            StateKind::Running,
            StateKind::Retrying,
            StateKind::Running,
            StateKind::Retrying,
            StateKind::Running,
            StateKind::Completed,
        ]
    );
    for (attempt, i) in [(1, 2), (2, 4)] {
        let (retrying, running) = (&get_data.history[i], &get_data.history[i + 1]);
        assert_eq!(
            retrying.message(),
            format!(
                "attempt {attempt}/11 failed: the photo API answered 503 Service Unavailable; \
                 retrying in 15s"
            )
        );
        assert_eq!(running.message(), format!("attempt {}/11", attempt + 1));
        assert_eq!(
            running.at.duration_since(retrying.at),
            Duration::from_secs(15)
        );
    }
    // The later runs' get_data: one attempt each.
    for run in &runs[1..] {
        let get_data = &run.task_runs[0];
        assert_eq!(get_data.attempts, 1, "{}", get_data.name());
        assert_eq!(
            get_data.history.kinds(),
            [StateKind::Pending, StateKind::Running, StateKind::Completed]
        );
    }
    assert_eq!(service.photo_requests(), 2 + 3);
    assert_eq!(service.image_requests(), 3);

    // Each run reported the file it saved; each file is the photo the API served.
    let mut reported: Vec<Finished> = Vec::new();
    while let Ok(run) = finished.try_recv() {
        // Other tests of this process run the flow too, into other directories.
        if run
            .saved
            .as_ref()
            .is_some_and(|s| s.path.parent() == Some(out.path()))
        {
            reported.push(run);
        }
    }
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let reported_names: Vec<&str> = reported.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(reported_names, names);
    for (k, run) in reported.iter().enumerate() {
        assert_eq!(run.state.kind, StateKind::Completed);
        let saved = run.saved.as_ref().unwrap();
        assert_photo(&saved.path, out.path(), k + 1);
        assert_eq!(saved.bytes, std::fs::metadata(&saved.path).unwrap().len());
    }
    assert_eq!(files_in(out.path()).len(), 3, "{:?}", files_in(out.path()));

    let deployment = store
        .deployments()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "images")
        .expect("the deployment is recorded");
    assert_eq!(deployment.flow, "images");
    assert_eq!(deployment.served_by, None, "serving has stopped");
    let last: Vec<(&str, StateKind)> = deployment
        .last_runs
        .iter()
        .map(|r| (r.name.as_str(), r.state))
        .collect();
    let newest_first: Vec<(&str, StateKind)> = names
        .iter()
        .rev()
        .map(|&name| (name, StateKind::Completed))
        .collect();
    assert_eq!(last, newest_first);
}

/// Starts a photo API on 127.0.0.1 whose every photo is at `image_url`; returns its URL.
async fn start_photo_api(image_url: String) -> String {
    let app = axum::Router::new().route(
        "/photos/random",
        axum::routing::get(move || {
            let raw = image_url.clone();
            async move {
                axum::Json(serde_json::json!({
                    "id": "missing", "topic": "cats", "urls": { "raw": raw },
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn an_image_answering_404_fails_store_and_the_flow_run() {
    let store = memory_store();
    let service = service::start(0).await.unwrap();
    let missing = format!("{}/images/missing.png", service.url());
    let api = start_photo_api(missing.clone()).await;
    let out = tempfile::tempdir().unwrap();

    let out_dir = out.path().to_str().unwrap().to_owned();
    let (saved, run) = pipeline::images(api, out_dir).with_run().await;
    let expected = format!("downloading {missing} failed with status code 404 Not Found");
    assert_eq!(saved.unwrap_err().to_string(), expected);

    assert_eq!(run.state().kind, StateKind::Failed);
    assert_eq!(run.error(), Some(expected.as_str()));
    let tasks: Vec<(&str, StateKind)> = run
        .task_runs
        .iter()
        .map(|t| (&*t.task, t.state().kind))
        .collect();
    assert_eq!(
        tasks,
        [
            ("get_data", StateKind::Completed),
            ("transform", StateKind::Completed),
            ("store", StateKind::Failed),
        ]
    );
    let store_run = &run.task_runs[2];
    assert_eq!(store_run.attempts, 1);
    assert_eq!(
        store_run.history.kinds(),
        [StateKind::Pending, StateKind::Running, StateKind::Failed]
    );
    assert_eq!(store_run.error(), Some(expected.as_str()));
    assert_eq!(service.image_requests(), 1);

    // The store recorded the same.
    store.flush().await.unwrap();
    let recorded = store
        .flow_run(run.id)
        .unwrap()
        .expect("the run is recorded");
    assert_eq!(recorded.state().kind, StateKind::Failed);
    let recorded_store = recorded.task_runs_of("store").next().unwrap();
    assert_eq!(recorded_store.state().kind, StateKind::Failed);
    assert!(recorded_store.error().unwrap().contains("404"));

    // No file, not even a partial one.
    assert_eq!(files_in(out.path()), Vec::<String>::new());
}

#[tokio::test]
async fn transform_fails_on_an_answer_without_an_image_url() {
    memory_store();
    let answer = serde_json::json!({ "id": "cats-1", "urls": { "small": "http://x/cats-1.png" } });
    let error = pipeline::transform(answer).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"the photo API's answer has no image URL at urls.raw: {"id":"cats-1","urls":{"small":"http://x/cats-1.png"}}"#
    );
    let ok = pipeline::transform(serde_json::json!({ "urls": { "raw": "http://x/a.png" } })).await;
    assert_eq!(ok.unwrap(), "http://x/a.png");
}

// The example program, run as a user would.

/// Longest the example may run: two runs a second apart take about two seconds.
const TIME_LIMIT: Duration = Duration::from_secs(60);

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the example with `args` and `FLOWCORE_HOME=home`, without colours, for at most
/// [`TIME_LIMIT`].
fn run_example(args: &[&str], home: &Path) -> Output {
    let mut child = Command::new(support::example_binary("images"))
        .args(args)
        .env("FLOWCORE_HOME", home)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    // Read both pipes on their own threads so that a full pipe never blocks the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap().unwrap_or_default();
            panic!("the example ran longer than {TIME_LIMIT:?}; it printed:\n{stdout}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap().expect("stdout is UTF-8"),
        stderr: err.join().unwrap().expect("stderr is UTF-8"),
    }
}

#[test]
fn the_example_saves_one_image_per_run_and_stops_after_two_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, out) = (tmp.path().join("home"), tmp.path().join("out"));
    let output = run_example(
        &[
            "--every",
            "1s",
            "--runs",
            "2",
            "--fail-first",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
        &home,
    );
    let shown = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        output.stdout, output.stderr
    );
    assert!(output.status.success(), "{}\n{shown}", output.status);
    let lines: Vec<&str> = output.stdout.lines().collect();

    let store_line = format!("Run store: {}", home.join("flowcore.db").display());
    assert!(lines.contains(&store_line.as_str()), "{shown}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Photo API: http://127.0.0.1:")
                && l.ends_with(" (started by this program)")),
        "{shown}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Waiting for next scheduled run at ")),
        "{shown}"
    );

    // "Saved <path> (<bytes> bytes) in run '<name>'", one line per run.
    let saved: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Saved "))
        .collect();
    assert_eq!(saved.len(), 2, "{shown}");
    let mut names = Vec::new();
    for (k, line) in saved.iter().enumerate() {
        let parsed = line
            .strip_prefix("Saved ")
            .and_then(|rest| rest.split_once(" ("))
            .and_then(|(path, rest)| {
                let (bytes, rest) = rest.split_once(" bytes) in run '")?;
                Some((path, bytes.parse::<u64>().ok()?, rest.strip_suffix('\'')?))
            });
        let Some((path, bytes, name)) = parsed else {
            panic!("unexpected line {line:?}\n{shown}");
        };
        assert_photo(Path::new(path), &out, k + 1);
        assert_eq!(bytes, std::fs::metadata(path).unwrap().len());
        names.push(name.to_owned());
    }
    assert_eq!(files_in(&out).len(), 2, "{:?}", files_in(&out));
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "Done: 2 runs finished, 2 images saved in {}; the photo API got 2 photo requests \
                 and 2 image downloads",
                out.display()
            )
            .as_str()
        ),
        "{shown}"
    );
    assert_eq!(output.stderr, "");

    // The runs named are the deployment's, in the example's own store.
    let store = Store::open_existing(home.join("flowcore.db")).unwrap();
    let runs = deployment_runs(&store);
    let recorded: Vec<(&str, StateKind, StateKind)> = runs
        .iter()
        .map(|r| (r.name.as_str(), r.history[0].kind, r.state().kind))
        .collect();
    let expected: Vec<(&str, StateKind, StateKind)> = names
        .iter()
        .map(|n| (n.as_str(), StateKind::Scheduled, StateKind::Completed))
        .collect();
    assert_eq!(recorded, expected);
    // Every second, on the second (a run that took over a second would skip the next one).
    for run in &runs {
        assert_eq!(
            run.history[0].at.as_micros() % 1_000_000,
            0,
            "{:?}",
            run.history
        );
    }
    assert!(runs[1].history[0].at > runs[0].history[0].at);
}

#[test]
fn the_example_refuses_a_bad_option_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["--every", "soon"][..],
            r#"images: --every: bad interval "soon": expected number at 0; write it like "30s", "5m" or "1h 30m" (see --help)"#,
        ),
        (
            &["--runs", "0"][..],
            "images: --runs must be at least 1 (see --help)",
        ),
        (
            &["--fail-first", "-1"][..],
            r#"images: --fail-first: "-1" is not a whole number (see --help)"#,
        ),
        (&["--out"][..], "images: --out needs a value (see --help)"),
        (
            &["--verbose"][..],
            "images: unknown option --verbose (see --help)",
        ),
    ] {
        let output = run_example(args, tmp.path());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", output.stderr);
        assert_eq!(output.stderr, format!("{message}\n"), "{args:?}");
        assert_eq!(output.stdout, "", "{args:?}");
    }
    assert_eq!(
        files_in(tmp.path()),
        Vec::<String>::new(),
        "nothing was written"
    );
}
