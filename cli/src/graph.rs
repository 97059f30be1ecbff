//! `flowcore runs graph`: a flow run's task graph, as Graphviz DOT, Mermaid or SVG.
//!
//! The drawing's labels hold task and run names as they are: a file, or a pipe into `dot`,
//! gets them unchanged. Only a drawing printed on a terminal has its control characters
//! escaped, its own line feeds kept (the labels hold theirs as `\n` or `<br/>`).

use std::io::{ErrorKind, IsTerminal as _, Write as _};
use std::process::{Command, Stdio};

use flowcore::Store;
use flowcore::graph::TaskGraph;
use flowcore::terminal::{LineFeeds, escape_controls_with};

use crate::Failure;
use crate::args::{GraphFormat, RunsGraph};
use crate::runs;

/// What to say when Graphviz is missing: how to get it, and the formats that need no Graphviz.
const NO_DOT: &str = "Graphviz's `dot` is not installed; install it with \
                      `apt-get install graphviz` (or use --format dot or --format mermaid)";

/// `flowcore runs graph`. With `--output`, writes the file and prints nothing.
pub fn graph(store: &Store, args: &RunsGraph) -> Result<String, Failure> {
    // Checked first, so that a mistyped path fails before Graphviz runs for nothing.
    if let Some(path) = &args.output
        && path.is_dir()
    {
        return Err(Failure::new(format!(
            "cannot write the graph to {}: it is a directory",
            path.display()
        )));
    }
    let record = runs::load(store, &args.run)?;
    let graph = TaskGraph::from_record(&record);
    let title = format!("flow run '{}' of flow '{}'", record.name, record.flow);
    let drawing = match args.format {
        GraphFormat::Dot => graph.to_dot(&title).into_bytes(),
        GraphFormat::Mermaid => graph.to_mermaid(&title).into_bytes(),
        GraphFormat::Svg => svg(&graph.to_dot(&title))?,
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &drawing).map_err(|e| {
                Failure::new(format!("cannot write the graph to {}: {e}", path.display()))
            })?;
            Ok(String::new())
        }
        // Only an SVG could be anything but UTF-8, and Graphviz writes UTF-8.
        None => String::from_utf8(drawing)
            .map(|text| for_stdout(text, std::io::stdout().is_terminal()))
            .map_err(|_| Failure::new("Graphviz's `dot` wrote an SVG that is not UTF-8")),
    }
}

/// The drawing as printed: its control characters escaped when a terminal shows it, as they
/// are when a program reads it.
fn for_stdout(drawing: String, terminal: bool) -> String {
    if !terminal {
        return drawing;
    }
    match escape_controls_with(&drawing, LineFeeds::Keep) {
        std::borrow::Cow::Owned(escaped) => escaped,
        std::borrow::Cow::Borrowed(_) => drawing,
    }
}

/// `dot_text` drawn by Graphviz's `dot -Tsvg`, found on PATH.
fn svg(dot_text: &str) -> Result<Vec<u8>, Failure> {
    let spawned = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(Failure::new(NO_DOT)),
        Err(e) => return Err(Failure::new(format!("cannot run Graphviz's `dot`: {e}"))),
    };
    let stdin = child.stdin.take();
    // The input is written from another thread while this one reads the output: written
    // first, a `dot` that fills its stderr pipe (with warnings) before reading all its input
    // would wait for this process, and this process for it.
    let output = std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Some(mut stdin) = stdin {
                // A `dot` that stops reading has failed, and its stderr and exit status say
                // why; the broken pipe adds nothing.
                let _ = stdin.write_all(dot_text.as_bytes());
            }
        });
        child.wait_with_output()
    })
    .map_err(|e| Failure::new(format!("cannot run Graphviz's `dot`: {e}")))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Err(Failure::new(if why.is_empty() {
        format!("Graphviz's `dot` failed ({})", output.status)
    } else {
        format!("Graphviz's `dot` failed: {}", why.join(" "))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawing_is_escaped_for_a_terminal_only() {
        let dot = "digraph {\n  n0 [label=\"a\\n\x1b]0;t\x07\"];\n}\n".to_owned();
        assert_eq!(
            for_stdout(dot.clone(), true),
            "digraph {\n  n0 [label=\"a\\n\\u{1b}]0;t\\u{7}\"];\n}\n"
        );
        assert_eq!(for_stdout(dot.clone(), false), dot);
    }
}
