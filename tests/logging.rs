//! The console format: Prefect-style lines, each run's events labelled with its name; and
//! `init_logging()`'s writer, whose thread writes every line, in order, before the process
//! ends.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use flowcore::{Store, flow, task};
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
    // At `info`, as `init_logging()` filters.
    logged_at(tracing::Level::INFO, fut)
}

fn logged_at<F: std::future::Future>(level: tracing::Level, fut: F) -> (F::Output, Vec<String>) {
    let buffer = Buffer::default();
    let out = buffer.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::Targets::new().with_default(level))
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
        format!("{task} - fetching the thing"),
        format!("{task} - Attempt 1/2 failed: connection refused. Retrying in 15s"),
        format!("{task} - fetching the thing"),
        format!("{task} - Finished in state Completed()"),
        format!("{flow} - Finished in state Completed()"),
        format!("{flow} - Summary"),
    ];
    assert_eq!(rest, expected);
    assert!(lines.iter().any(|l| l.contains("| WARN    | Task run")));
    // The summary's lines are the message's later lines: indented.
    assert_eq!(
        lines.last().unwrap(),
        "    1 task run: 1 Completed · total 15.00s"
    );
}

/// As in Prefect 3, a task run's beginning is a `debug` line: at `info` a task run is one line.
#[test]
fn a_task_run_s_beginning_is_logged_at_debug() {
    let (_, lines) = logged_at(tracing::Level::DEBUG, named_etl("2026-12-07"));
    let beginning = "Task run 'fetch-example.com' - Beginning task run 'fetch-example.com' for task 'named_fetch'";
    let found: Vec<&String> = lines.iter().filter(|l| l.ends_with(beginning)).collect();
    assert_eq!(found.len(), 1, "{lines:#?}");
    assert!(found[0].contains("| DEBUG   | "), "{}", found[0]);
}

#[task(task_run_name = "fetch-{url}")]
async fn named_fetch(url: &str) -> usize {
    tracing::info!("fetching");
    url.len()
}

#[flow(flow_run_name = "etl-{day}")]
async fn named_etl(day: &'static str) -> usize {
    let _ = day;
    named_fetch("example.com").await
}

/// Given names (`task_run_name`, `flow_run_name`) label the runs' log lines and the summary's
/// rows, as default names do.
#[test]
fn given_run_names_label_log_lines_and_the_summary() {
    let ((out, run), lines) = logged(named_etl("2026-12-07").with_run());
    assert_eq!(out, 11);
    let rest: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" | "))
        .map(|l| after_prefix(l))
        .collect();
    assert_eq!(
        rest[..4],
        [
            "Flow run 'etl-2026-12-07' - Beginning flow run 'etl-2026-12-07' for flow 'named_etl'",
            "Task run 'fetch-example.com' - fetching",
            "Task run 'fetch-example.com' - Finished in state Completed()",
            "Flow run 'etl-2026-12-07' - Finished in state Completed()",
        ]
    );
    let summary = run.summary().to_string();
    let first = summary.lines().next().unwrap();
    assert!(
        first.starts_with("Flow run 'etl-2026-12-07' for flow 'named_etl': Completed"),
        "{summary}"
    );
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("fetch-example.com ") && l.contains("Completed")),
        "{summary}"
    );
}

#[task]
async fn summed(i: u32) -> u32 {
    i
}

#[task]
async fn picky(i: u32) -> Result<u32, String> {
    if i % 2 == 1 {
        Err("odd input".into())
    } else {
        Ok(i)
    }
}

#[flow(name = "handles-one-failure")]
async fn handles_one_failure() -> u32 {
    picky(1).await.unwrap_or(0) + picky(2).await.unwrap_or(0)
}

#[flow(name = "long-summary")]
async fn long_summary() -> u32 {
    let mut total = 0;
    for i in 0..3 {
        total += summed(i).await;
    }
    let mapped = flowcore::map(0..5, picky).await;
    total += mapped.into_iter().filter_map(Result::ok).sum::<u32>();
    total += handles_one_failure().await;
    for i in 0..150 {
        total += summed(i).await;
    }
    total
}

/// A flow awaited for its output alone keeps no task run's record, only what its summary
/// shows: the summary it logs is the one its whole record, read back from the store, gives.
#[test]
fn a_flow_awaited_plainly_logs_the_summary_its_whole_record_gives() {
    let store = Store::memory();
    let (out, lines) = logged(store.scope(long_summary()));
    assert_eq!(out, 3 + 2 + 4 + 2 + 149 * 150 / 2);
    let stored = flowcore::testing::only_flow_run(&store);
    assert_eq!(stored.task_runs.len(), 3 + 5 + 150);
    let expected = stored.summary().to_string();

    let heading = format!("Flow run '{}' - Summary", stored.name);
    let start = lines.iter().position(|l| l.ends_with(&heading)).unwrap();
    let logged: Vec<&str> = lines[start + 1..]
        .iter()
        .map_while(|l| l.strip_prefix("    "))
        .collect();
    assert_eq!(logged, expected.lines().collect::<Vec<_>>());
    // What the table is made of: the mapped runs folded where the first was, the subflow's
    // failed task run counted in its line, the first 100 rows and the rest counted.
    let row = |start: &str| logged.iter().find(|l| l.starts_with(start)).copied();
    let folded = row("picky ×5").unwrap();
    assert!(folded.contains("3 Completed, 2 Failed"), "{folded}");
    assert!(folded.ends_with("odd input (and 1 more)"), "{folded}");
    assert_eq!(
        logged.iter().filter(|l| l.starts_with("summed-")).count(),
        99
    );
    assert!(logged.contains(&"… and 54 more task runs"), "{logged:#?}");
    let subflow = row("Subflow run ").unwrap();
    assert!(
        subflow.ends_with(
            "for flow 'handles-one-failure': Completed — 1 task run failed and was handled"
        ),
        "{subflow}"
    );
    assert_eq!(
        logged.last().copied(),
        Some("158 task runs: 156 Completed, 2 Failed · total 0µs")
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

/// An error text as a hostile HTTP body might make it: clear the screen, retitle the window,
/// a link hidden behind the word `link` (OSC 8), a carriage return, a forged log line after a
/// line feed, and CSI as one C1 character.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\r\n\
                       18:02:00.123 | INFO    | Flow run 'x' - Finished in state Completed()\u{9b}";

/// HOSTILE as the console shows it on one line: each control as `\u{…}`, `\r`, `\n`.
const HOSTILE_ONE_LINE: &str = r"\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]8;;http://evil.example\u{1b}\link\u{1b}]8;;\u{1b}\\r\n18:02:00.123 | INFO    | Flow run 'x' - Finished in state Completed()\u{9b}";

#[task(name = "evil\x1b]0;title\x07task")]
async fn log_hostile(body: String) -> Result<(), String> {
    tracing::info!("got {body}");
    tracing::warn!(status = %body, "a field");
    Err(body)
}

#[flow(name = "evil\x1b[2Jflow")]
async fn log_hostile_flow() -> Result<(), String> {
    let _ = log_hostile(HOSTILE.to_owned()).await;
    Ok(())
}

#[test]
fn control_characters_from_user_code_are_printed_escaped() {
    let ((_, run), lines) = logged(log_hostile_flow().with_run());
    let text = lines.join("\n");
    // No control character reaches the terminal; line feeds only end lines.
    assert!(
        !text.chars().any(|c| c != '\n' && c.is_control()),
        "{text:?}"
    );
    // Every line is a log line or the indented continuation of one: none is forged.
    for line in &lines {
        assert!(
            line.starts_with("    ") || (line.len() > 12 && line.as_bytes()[2] == b':'),
            "{line:?}"
        );
    }

    let name = run.task_runs[0].name().to_string();
    let suffix = &name[name.len() - 3..];
    let task = format!(r"Task run 'evil\u{{1b}}]0;title\u{{7}}task-{suffix}'");
    let (first, second) = HOSTILE_ONE_LINE.split_once(r"\n").unwrap();
    let rest: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.starts_with("    ") {
                l
            } else {
                after_prefix(l)
            }
        })
        .collect();
    let at = rest
        .iter()
        .position(|l| *l == format!("{task} - got {first}"))
        .unwrap_or_else(|| panic!("no `got` line in\n{}", rest.join("\n")));
    assert_eq!(rest[at + 1], format!("    {second}"));
    assert_eq!(
        rest[at + 2],
        format!("{task} - a field status={HOSTILE_ONE_LINE}")
    );
    assert_eq!(
        rest[at + 3],
        format!("{task} - Finished in state Failed('{first}")
    );
    assert_eq!(rest[at + 4], format!("    {second}')"));

    // The summary's lines, indented under `Summary`, a row for the task run on one line.
    let summary = rest.iter().position(|l| l.ends_with(" - Summary")).unwrap();
    assert_eq!(
        rest[summary + 1],
        format!(
            r"    Flow run '{}' for flow 'evil\u{{1b}}[2Jflow': Completed — 1 task run failed and was handled",
            run.name
        )
    );
    let row = rest[summary + 3];
    assert!(
        row.starts_with(&format!(
            r"    evil\u{{1b}}]0;title\u{{7}}task-{suffix}  Failed "
        )),
        "{row}"
    );
    assert!(row.ends_with(HOSTILE_ONE_LINE), "{row}");
    assert_eq!(rest[summary + 4], "    1 task run: 1 Failed · total 0µs");
    assert_eq!(rest.len(), summary + 5, "{}", rest.join("\n"));
}

#[test]
fn a_multi_line_message_keeps_its_lines_indented_after_the_first() {
    let (_, lines) = logged(async { tracing::info!("one\n\ntwo\n") });
    let rest: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.contains(" | ") {
                after_prefix(l)
            } else {
                l
            }
        })
        .collect();
    assert_eq!(rest, ["logging - one", "", "    two", ""]);
}

#[derive(Debug)]
struct Hostile(&'static str, Option<Box<Hostile>>);

impl std::fmt::Display for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Hostile {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

#[test]
fn with_colours_the_only_escape_sequences_are_flowcore_s_own() {
    let buffer = Buffer::default();
    let out = buffer.clone();
    let subscriber =
        tracing_subscriber::registry().with(flowcore::logging::layer_to(move || out.clone(), true));
    let error = Hostile("outer\x1b[2J", Some(Box::new(Hostile("inner\x07\n", None))));
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "\x1b]0;t\x07failed"
        )
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let (_, rest) = text.split_once(" | ").unwrap();
    assert_eq!(
        rest,
        "\x1b[31mERROR  \x1b[0m | logging - \\u{1b}]0;t\\u{7}failed \
         \x1b[3merror\x1b[0m\x1b[2m=\x1b[0mouter\\u{1b}[2J error.sources=[inner\\u{7}\\n]\n"
    );
}

/// How many task runs the child's flow run makes, and how many lines it logs after it.
const CHILD_TASK_RUNS: usize = 2_000;
const CHILD_LINES: usize = 20_000;

#[task]
async fn numbered(i: usize) -> usize {
    tracing::info!("number {i}");
    i
}

#[flow(name = "numbered")]
async fn numbered_flow(n: usize) {
    for i in 0..n {
        numbered(i).await;
    }
}

/// Logs through `init_logging()` to its stdout, a pipe: a flow run's lines, then lines outside
/// any run up to the end, which comes by `std::process::exit` when FLOWCORE_TEST_LOG_CHILD is
/// `exit`, else by `main` returning.
#[test]
#[ignore = "run as a child process by init_logging_s_lines_all_reach_a_pipe_in_order_*"]
fn child_logging_to_a_pipe() {
    let Ok(end) = std::env::var("FLOWCORE_TEST_LOG_CHILD") else {
        return;
    };
    flowcore::init_logging();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(Store::memory().scope(numbered_flow(CHILD_TASK_RUNS)));
    for i in 0..CHILD_LINES {
        tracing::info!("line {i}");
    }
    if end == "exit" {
        std::process::exit(0);
    }
}

/// The child's INFO lines, from the level column on: the test harness's own output may share
/// a line with the first.
fn child_info_lines(end: &str) -> Vec<String> {
    let out = support::run(&mut support::child(
        "child_logging_to_a_pipe",
        [("FLOWCORE_TEST_LOG_CHILD", end)],
    ));
    assert!(out.status.success(), "{}", support::show(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once("| INFO    | ")
                .map(|(_, rest)| rest.to_owned())
        })
        .collect()
}

fn assert_every_line_in_order(lines: &[String]) {
    // The flow run's task runs in turn, each logging its number then finishing, all before
    // its summary.
    let task_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Task run 'numbered-"))
        .collect();
    assert_eq!(task_lines.len(), 2 * CHILD_TASK_RUNS);
    for (i, pair) in task_lines.chunks(2).enumerate() {
        let (first, second) = (&pair[0], &pair[1]);
        assert!(first.ends_with(&format!(" - number {i}")), "{first}");
        assert!(
            second.ends_with(" - Finished in state Completed()"),
            "{second}"
        );
        assert_eq!(first.split(" - ").next(), second.split(" - ").next());
    }
    let summary = lines
        .iter()
        .position(|l| l.ends_with(" - Summary"))
        .unwrap();
    let last_task = lines
        .iter()
        .rposition(|l| l.starts_with("Task run 'numbered-"))
        .unwrap();
    assert!(last_task < summary);

    // Then the lines logged after it, every one, in order, the last right before the end.
    let after: Vec<&str> = lines[summary + 1..]
        .iter()
        .map(|l| l.strip_prefix("logging - ").unwrap_or(l))
        .collect();
    let expected: Vec<String> = (0..CHILD_LINES).map(|i| format!("line {i}")).collect();
    assert_eq!(after, expected);
}

#[test]
fn init_logging_s_lines_all_reach_a_pipe_in_order_when_main_returns() {
    assert_every_line_in_order(&child_info_lines("return"));
}

#[test]
fn init_logging_s_lines_all_reach_a_pipe_in_order_at_process_exit() {
    assert_every_line_in_order(&child_info_lines("exit"));
}

#[task]
async fn labelled_leaf(what: &'static str) -> usize {
    tracing::info!("in {what}");
    what.len()
}

#[flow(name = "labelled-inner")]
async fn labelled_inner() -> usize {
    tracing::info!("in the subflow");
    labelled_leaf("b").await
}

#[task]
async fn labelled_spawner() -> usize {
    // A future spawned from a task does not carry the task run's label.
    tokio::spawn(async { tracing::info!("spawned") })
        .await
        .unwrap();
    tracing::info!("after the spawn");
    1
}

#[flow(name = "labelled-outer")]
async fn labelled_outer() -> usize {
    tracing::info!("in the flow");
    let a = labelled_leaf("a").await;
    let b = labelled_inner().await;
    tracing::info!("back in the flow");
    a + b + labelled_spawner().await
}

/// Under `init_logging()` runs have no spans: lines are labelled from the run being polled.
#[test]
#[ignore = "run as a child process by init_logging_labels_the_lines_of_nested_runs"]
fn child_labelled_runs() {
    if std::env::var("FLOWCORE_TEST_LABELS_CHILD").is_err() {
        return;
    }
    flowcore::init_logging();
    let store = Store::memory();
    let (_, run) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store.scope(labelled_outer().with_run()));
    // The lines the store kept, by run: "<run name>: <message>".
    let mut names = std::collections::HashMap::new();
    names.insert(run.id, run.name.clone());
    for t in &run.task_runs {
        names.insert(t.id, t.name().to_string());
    }
    for sub in &run.subflow_runs {
        names.insert(sub.id, sub.name.clone());
        for t in &sub.task_runs {
            names.insert(t.id, t.name().to_string());
        }
    }
    let flow_runs = std::iter::once(run.id).chain(run.subflow_runs.iter().map(|s| s.id));
    for line in flow_runs.flat_map(|id| store.logs(id).unwrap()) {
        if line.message.starts_with("in ") || line.message.contains("spawn") {
            let owner = names.get(&line.run_id).map_or("?", String::as_str);
            println!("kept: {owner}: {}", line.message);
        }
    }
}

#[test]
fn init_logging_labels_the_lines_of_nested_runs() {
    let out = support::run(&mut support::child(
        "child_labelled_runs",
        [("FLOWCORE_TEST_LABELS_CHILD", "1")],
    ));
    assert!(out.status.success(), "{}", support::show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("| INFO    | ").map(|(_, rest)| rest))
        .filter(|l| {
            let message = l.rsplit(" - ").next().unwrap();
            [
                "in the flow",
                "in a",
                "in the subflow",
                "in b",
                "back in the flow",
                "spawned",
            ]
            .contains(&message)
        })
        .collect();
    let label = |l: &str| l.split(" - ").next().unwrap().to_owned();
    assert_eq!(printed.len(), 6, "{text}");
    assert!(printed[0].starts_with("Flow run '") && printed[0].ends_with(" - in the flow"));
    assert!(printed[1].starts_with("Task run 'labelled_leaf-") && printed[1].ends_with(" - in a"));
    assert!(printed[2].starts_with("Flow run '") && printed[2].ends_with(" - in the subflow"));
    assert_ne!(
        label(printed[2]),
        label(printed[0]),
        "the subflow run's own label"
    );
    assert!(printed[3].starts_with("Task run 'labelled_leaf-") && printed[3].ends_with(" - in b"));
    assert_ne!(label(printed[3]), label(printed[1]));
    assert_eq!(
        printed[4],
        format!("{} - back in the flow", label(printed[0])),
        "the flow run's label again once its subflow returned"
    );
    assert_eq!(
        printed[5], "logging - spawned",
        "a spawned future's line has no run: labelled with its target"
    );
    let after = text
        .lines()
        .find(|l| l.ends_with(" - after the spawn"))
        .expect("the spawner's own line");
    assert!(after.contains("| Task run 'labelled_spawner-"), "{after}");
    // The store kept each line with its run.
    let kept: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kept: "))
        .collect();
    let flow = label(printed[0]);
    let flow_name = flow.trim_start_matches("Flow run '").trim_end_matches('\'');
    assert!(
        kept.contains(&format!("{flow_name}: in the flow").as_str()),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|k| k.starts_with("labelled_leaf-") && k.ends_with(": in a")),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|k| k.starts_with("labelled_leaf-") && k.ends_with(": in b")),
        "{kept:?}"
    );
    assert!(kept.iter().all(|k| !k.ends_with("spawned")), "{kept:?}");
}
