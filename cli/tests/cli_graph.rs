//! `flowcore runs graph`, run as a real process against a run store that this test binary
//! fills by running a real flow: the DOT and Mermaid it prints, `--output`, SVG through
//! Graphviz when it is installed, and the one-line failures when the run is unknown or
//! Graphviz is missing or fails.
//!
//! The exact drawings are checked by the unit tests of `flowcore::graph`; these check that the
//! command draws the run it is given, with the edges the store kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use flowcore::{FlowRunRecord, Store, flow, task};

// Values above 256: small integers are never taken for one task's output passed to another.
#[task]
async fn extract(day: u32) -> u32 {
    day * 1000
}

#[task]
async fn transform(rows: u32) -> u32 {
    rows + 1
}

#[task]
async fn prepare() -> Result<(), String> {
    Ok(())
}

#[task]
async fn load(total: u32) -> Result<u32, String> {
    Ok(total)
}

#[flow(name = "graph-etl")]
async fn etl(day: u32) -> Result<u32, String> {
    let prepared = prepare().submit();
    let rows = extract(day).await;
    let total = transform(rows).await;
    load(total).wait_for(&prepared).await
}

/// The store, and the flow run in it as the store recorded it.
struct Fixture {
    db: PathBuf,
    run: FlowRunRecord,
}

/// The store, filled once for the whole test binary: a process records to one installed
/// store.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A fixed directory under target/, emptied first: a TempDir in a static would never
        // be dropped, and so never removed, anyway.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-graph-store");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("flowcore.db");
        let store = Store::sqlite(&db).unwrap();
        store.clone().install().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let id = runtime.block_on(async {
            let (out, run) = etl(3).with_run().await;
            assert_eq!(out, Ok(3001));
            store.flush().await.unwrap();
            run.id
        });
        let run = store.flow_run(id).unwrap().expect("flushed");
        assert_eq!(run.task_runs.len(), 4);
        Fixture { db, run }
    })
}

/// `flowcore --store <fixture store> runs graph ARGS…`, uncoloured, with PATH set to `path`
/// when given.
fn graph_in(path: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowcore"));
    command
        .arg("--store")
        .arg(&fixture().db)
        .args(["runs", "graph"])
        .args(args)
        .env("NO_COLOR", "1")
        // A FLOWCORE_HOME where no store is, in case --store were ignored.
        .env(
            "FLOWCORE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-no-home"),
        );
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command.output().unwrap()
}

/// `flowcore … runs graph ARGS…`, which must succeed without a word on stderr; its stdout.
fn graph(args: &[&str]) -> String {
    let out = graph_in(None, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runs graph {args:?} failed: {stderr}");
    assert_eq!(stderr, "", "runs graph {args:?} wrote to stderr");
    String::from_utf8(out.stdout).unwrap()
}

/// `flowcore … runs graph ARGS…` with PATH set to `path`, which must fail with exit code 1,
/// nothing on stdout and one line on stderr; that line, without its newline.
fn failure_in(path: Option<&Path>, args: &[&str]) -> String {
    let out = graph_in(path, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "runs graph {args:?}: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "runs graph {args:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_owned()
}

fn title(run: &FlowRunRecord) -> String {
    format!("flow run '{}' of flow 'graph-etl'", run.name)
}

/// Whether Graphviz's `dot` is on this machine's PATH.
fn dot_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join("dot").is_file())
}

#[test]
fn mermaid_has_the_title_the_header_and_a_node_per_task_run() {
    let run = &fixture().run;
    let text = graph(&[&run.name, "--format", "mermaid"]);
    let header = format!("---\ntitle: \"{}\"\n---\nflowchart LR\n", title(run));
    assert!(text.starts_with(&header), "{text}");
    for (i, task_run) in run.task_runs.iter().enumerate() {
        let node = format!("\n    n{i}[\"{}\"]\n", task_run.name());
        assert!(text.contains(&node), "no {node:?} in {text}");
    }
    assert!(
        text.contains(
            "\n    classDef completed fill:#2e7d32,color:#ffffff\n    class n0,n1,n2,n3 completed\n"
        ),
        "{text}"
    );
}

#[test]
fn dot_is_the_default_and_has_the_title_and_a_node_per_task_run() {
    let run = &fixture().run;
    let text = graph(&[&run.name, "--format", "dot"]);
    assert_eq!(graph(&[&run.name]), text);
    // The run's id finds it as well as its name.
    assert_eq!(graph(&[&run.id.to_string()]), text);
    assert!(text.starts_with("digraph {\n"), "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    let graph_line = format!("    graph [rankdir=LR, label=\"{}\",", title(run));
    assert!(text.contains(&graph_line), "{text}");
    for (i, task_run) in run.task_runs.iter().enumerate() {
        let node = format!(
            "\n    n{i} [label=\"{}\", fillcolor=\"#2e7d32\"",
            task_run.name()
        );
        assert!(text.contains(&node), "no {node:?} in {text}");
    }
}

#[test]
fn output_writes_the_file_and_prints_nothing() {
    let run = &fixture().run;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.mmd");
    let file_arg = file.to_str().unwrap();
    let printed = graph(&[&run.name, "--format", "mermaid", "--output", file_arg]);
    assert_eq!(printed, "");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        graph(&[&run.name, "--format", "mermaid"])
    );

    let dir_arg = dir.path().to_str().unwrap();
    assert_eq!(
        failure_in(None, &[&run.name, "--output", dir_arg]),
        format!("flowcore: cannot write the graph to {dir_arg}: it is a directory")
    );
}

#[test]
fn an_unknown_run_is_one_line_naming_the_store() {
    let db = fixture().db.to_str().unwrap();
    for format in ["dot", "mermaid", "svg"] {
        assert_eq!(
            failure_in(None, &["no-such-run", "--format", format]),
            format!("flowcore: no flow run named or with id \"no-such-run\" in the run store {db}")
        );
    }
}

#[test]
fn svg_without_graphviz_says_how_to_install_it() {
    let run = &fixture().run;
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        failure_in(Some(empty.path()), &[&run.name, "--format", "svg"]),
        "flowcore: Graphviz's `dot` is not installed; install it with `apt-get install graphviz` \
         (or use --format dot or --format mermaid)"
    );
    // The formats that need no Graphviz still work without it.
    let out = graph_in(Some(empty.path()), &[&run.name, "--format", "mermaid"]);
    assert!(out.status.success(), "{out:?}");
}

#[cfg(unix)]
#[test]
fn a_failing_graphviz_is_reported_in_one_line() {
    use std::os::unix::fs::PermissionsExt as _;

    let run = &fixture().run;
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("dot");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Error: <stdin>: syntax error in line 1' >&2\necho '  near x' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        failure_in(Some(bin.path()), &[&run.name, "--format", "svg"]),
        "flowcore: Graphviz's `dot` failed: Error: <stdin>: syntax error in line 1 near x"
    );
}

#[test]
fn svg_through_graphviz_when_it_is_installed() {
    if !dot_installed() {
        eprintln!("Graphviz's `dot` is not on PATH: SVG output not checked");
        return;
    }
    let run = &fixture().run;
    let svg = graph(&[&run.name, "--format", "svg"]);
    assert!(svg.starts_with("<?xml") || svg.contains("<svg"), "{svg}");
    // Graphviz writes each node's id as its title (and escapes the `-` in the names).
    for i in 0..run.task_runs.len() {
        assert!(svg.contains(&format!("<title>n{i}</title>")), "{svg}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.svg");
    let printed = graph(&[
        &run.name,
        "--format",
        "svg",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(printed, "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), svg);
}

#[test]
fn the_graph_has_the_data_and_wait_for_edges_the_store_kept() {
    let run = &fixture().run;
    let text = graph(&[&run.name, "--format", "mermaid"]);
    // Node ids follow the record's order: name each edge by its tasks.
    let task_of = |id: &str| {
        let index: usize = id.trim_start_matches('n').parse().unwrap();
        run.task_runs[index].task.to_string()
    };
    let mut edges: Vec<String> = text
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [from, arrow @ ("-->" | "-.->"), to] => {
                    Some(format!("{} {arrow} {}", task_of(from), task_of(to)))
                }
                _ => None,
            },
        )
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "extract --> transform",
            "prepare -.-> load",
            "transform --> load"
        ],
        "{text}"
    );
}
