//! The log lines of runs are kept in the run store by `flowcore::logging::recorder()`, whatever
//! else the subscriber does: a program with its own format adds that layer and its runs' lines
//! are kept; one without it is told, once, through its own subscriber, that they are not.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowcore::{flow, task, testing};
use support::{child, run_ok};
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[task]
async fn load_rows(n: u32) -> u32 {
    tracing::info!(rows = n, "loaded the rows");
    n
}

#[flow(name = "loading")]
async fn loading() -> u32 {
    tracing::warn!("the source is slow today");
    load_rows(10).await
}

/// A subscriber of the program's own: tracing-subscriber's plain format, not flowcore's.
fn own_format(out: &Buffer) -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> {
    let out = out.clone();
    tracing_subscriber::fmt::layer()
        .with_writer(move || out.clone())
        .with_ansi(false)
}

#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_of_your_own_with_the_recorder_keeps_the_runs_lines_in_the_store() {
    let printed = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(own_format(&printed))
        .with(flowcore::logging::recorder());
    let _logging = tracing::subscriber::set_default(subscriber);
    let ((out, run), store) = testing::isolated(loading().with_run()).await;
    assert_eq!(out, 10);

    let lines: Vec<(flowcore::Uuid, String, String)> = store
        .logs(run.id)
        .unwrap()
        .into_iter()
        .map(|l| (l.run_id, l.level, l.message))
        .collect();
    let task_run = run.task_runs[0].id;
    assert!(
        lines.contains(&(
            run.id,
            "WARN".to_owned(),
            "the source is slow today".to_owned()
        )),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&(
            task_run,
            "INFO".to_owned(),
            "loaded the rows rows=10".to_owned()
        )),
        "{lines:#?}"
    );
    // Its own format printed them as it prints everything.
    let text = printed.text();
    assert!(text.contains("the source is slow today"), "{text}");
    assert!(text.contains("loaded the rows rows=10"), "{text}");
    assert!(!text.contains("recorder()"), "no warning: {text}");
}

/// A layer that takes its time over each line, as a slow one of a program's own may.
struct SlowLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SlowLayer {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_run_s_final_line_is_kept_with_the_time_of_its_final_state() {
    // The slow layer sees each line before the recorder: a line timed when it is kept would
    // be 3 ms after the state it reports.
    let subscriber = tracing_subscriber::registry()
        .with(SlowLayer)
        .with(flowcore::logging::recorder());
    let _logging = tracing::subscriber::set_default(subscriber);
    let ((_, run), store) = testing::isolated(loading().with_run()).await;
    let task_run = &run.task_runs[0];
    // A flow run's lines include its task runs'.
    let finished = |id| {
        store
            .logs(run.id)
            .unwrap()
            .into_iter()
            .find(|l| l.run_id == id && l.message.starts_with("Finished in state"))
            .unwrap_or_else(|| panic!("no final line of {id}"))
    };
    assert_eq!(finished(task_run.id).at, task_run.state().at);
    assert_eq!(finished(run.id).at, run.state().at);
}

/// Child of `a_subscriber_without_the_recorder_is_told_once_that_lines_are_not_kept`: a global
/// subscriber of its own, without the recorder; runs two flows and prints what it logged.
#[tokio::test(flavor = "current_thread")]
#[ignore = "run as a child process by a_subscriber_without_the_recorder_is_told_once_that_lines_are_not_kept"]
async fn child_without_recorder() {
    if std::env::var_os("NO_RECORDER_CHILD").is_none() {
        return;
    }
    let printed = Buffer::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(own_format(&printed)),
    )
    .unwrap();
    let ((_, first), store) = testing::isolated(loading().with_run()).await;
    let (_, second) = store.scope(loading().with_run()).await;
    let kept = store.logs(first.id).unwrap().len() + store.logs(second.id).unwrap().len();
    println!("KEPT {kept}");
    for line in printed.text().lines() {
        println!("PRINTED {line}");
    }
}

#[test]
fn a_subscriber_without_the_recorder_is_told_once_that_lines_are_not_kept() {
    let out = run_ok(&mut child(
        "child_without_recorder",
        [("NO_RECORDER_CHILD", "1")],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(support::marker(&out, "KEPT"), "0");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("flowcore::logging::recorder()"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].contains(
            "WARN flowcore: The tracing subscriber in use has no flowcore::logging::recorder() layer: the log lines of runs are printed but not kept in the run store"
        ),
        "{stdout}"
    );
    // It still printed the runs' lines, twice each.
    assert_eq!(
        stdout.matches("the source is slow today").count(),
        2,
        "{stdout}"
    );
}

/// The memory store keeps the latest thousand flow runs: the log lines (and artifacts) of those
/// it forgets go with them, so a long-running process that logs does not keep every line.
#[tokio::test(flavor = "current_thread")]
async fn the_memory_store_forgets_the_lines_of_the_flow_runs_it_forgets() {
    let subscriber = tracing_subscriber::registry().with(flowcore::logging::recorder());
    let _logging = tracing::subscriber::set_default(subscriber);
    let store = flowcore::Store::memory();
    let mut runs = Vec::new();
    for _ in 0..3_000 {
        let (_, run) = store.scope(loading().with_run()).await;
        runs.push(run);
    }
    // A flow run's lines and its task runs'.
    let lines = |run: &flowcore::FlowRunRecord| store.logs(run.id).unwrap().len();
    let per_run = lines(&runs[2_999]);
    assert!(per_run >= 3, "the latest flow run's lines are kept");
    assert!(runs[2_000..].iter().all(|r| lines(r) == per_run));
    // Forgotten flow runs' lines are taken out together, once the lines have doubled.
    assert!(
        runs[..500].iter().all(|r| lines(r) == 0),
        "the first flow runs' lines went with them"
    );
    let kept: usize = runs.iter().map(lines).sum();
    assert!(
        kept <= 2 * 1_000 * per_run,
        "{kept} lines kept for the latest 1,000 flow runs, {per_run} each"
    );
}
