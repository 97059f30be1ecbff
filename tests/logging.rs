//! The console format: Prefect-style lines, each run's events labelled with its name.

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowcore::{flow, task};
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

/// Runs `fut` on a current-thread runtime with flowcore's format writing into a buffer; returns
/// the output and the lines written.
fn logged<F: std::future::Future>(fut: F) -> (F::Output, Vec<String>) {
    let buffer = Buffer::default();
    let out = buffer.clone();
    let subscriber = tracing_subscriber::registry()
        .with(flowcore::logging::layer_to(move || out.clone(), false));
    let output = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(fut)
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (output, text.lines().map(str::to_owned).collect())
}

/// `HH:MM:SS.mmm | LEVEL   | rest`: the rest, after checking the prefix's shape.
fn after_prefix(line: &str) -> &str {
    let (time, rest) = line.split_once(" | ").expect("a time column");
    assert_eq!(time.len(), 12, "{line}");
    assert!(
        time.chars().enumerate().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        }),
        "{line}"
    );
    let (level, rest) = rest.split_once(" | ").expect("a level column");
    assert_eq!(level.len(), 7, "the level is padded to 7: {line}");
    rest
}

#[task(retries = 1, retry_delay = "15s")]
async fn log_fetch(fail_first: bool) -> Result<u32, String> {
    tracing::info!("fetching the thing");
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if fail_first && n == 0 {
        Err("connection refused".into())
    } else {
        Ok(n)
    }
}

#[flow(name = "logged")]
async fn logged_flow() -> Result<u32, String> {
    tracing::info!("inside the flow");
    log_fetch(true).await
}

#[test]
fn runs_label_their_events_as_prefect_does() {
    let (out, lines) = logged(logged_flow().with_run());
    let (result, run) = out;
    assert_eq!(result, Ok(1));
    let flow = format!("Flow run '{}'", run.name);
    let task = format!("Task run '{}'", run.task_runs[0].name());

    let rest: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" | "))
        .map(|l| after_prefix(l))
        .collect();
    let expected = [
        format!(
            "{flow} - Beginning flow run '{}' for flow 'logged'",
            run.name
        ),
        format!("{flow} - inside the flow"),
        format!(
            "{task} - Beginning task run '{}' for task 'log_fetch'",
            run.task_runs[0].name()
        ),
        format!("{task} - fetching the thing"),
        format!("{task} - Attempt 1/2 failed: connection refused. Retrying in 15s"),
        format!("{task} - fetching the thing"),
        format!("{task} - Finished in state Completed()"),
        format!("{flow} - Finished in state Completed()"),
        format!("{flow} - Summary"),
    ];
    assert_eq!(rest, expected);
    assert!(lines.iter().any(|l| l.contains("| WARN    | Task run")));
    assert_eq!(
        lines.last().unwrap(),
        "1 task run: 1 Completed · total 15.00s"
    );
}

#[task]
async fn log_broken() -> Result<(), String> {
    Err("status code 503".into())
}

#[test]
fn a_failed_run_is_logged_at_error_level() {
    let (_, lines) = logged(log_broken());
    let failed = lines
        .iter()
        .find(|l| l.contains("Finished in state"))
        .unwrap();
    assert!(
        failed.contains("| ERROR   | Task run 'log_broken-"),
        "{failed}"
    );
    assert!(
        failed.ends_with(" - Finished in state Failed('status code 503')"),
        "{failed}"
    );
}
