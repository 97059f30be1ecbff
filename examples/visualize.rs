//! Draws the task graph of the ETL flow (the `etl` example's): runs it once against its own
//! complaints service on 127.0.0.1, then writes the graph of that run as Graphviz DOT and as a
//! Mermaid flowchart, and as SVG when Graphviz is installed.
//!
//! ```sh
//! cargo run --example visualize             # files in $TMPDIR/flowcore-examples/
//! cargo run --example visualize -- OUT_DIR
//! ```
//!
//! The graph reads extract → transform → load, with a dashed edge create_table ⇢ load: `load`
//! waits for `create_table` though no value passes between them. The same graph of any stored
//! run comes from `flowcore runs graph RUN --format dot|mermaid|svg`.

#[path = "etl/pipeline.rs"]
mod pipeline;
#[path = "etl/service.rs"]
mod service;

use std::path::PathBuf;

use anyhow::Context as _;
use flowcore::graph::TaskGraph;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flowcore::init_logging();
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("flowcore-examples"));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let (url, _requests) = service::start_complaints_server().await?;
    let db = out_dir.join("visualize-etl.db");
    let (loaded, run) = pipeline::etl(&url, db).with_run().await;
    loaded?;

    let graph = TaskGraph::from_record(&run);
    let title = format!("flow run '{}' of flow '{}'", run.name, run.flow);
    let dot = graph.to_dot(&title);
    let mermaid = graph.to_mermaid(&title);
    let dot_path = out_dir.join("etl.dot");
    let mermaid_path = out_dir.join("etl.mmd");
    std::fs::write(&dot_path, &dot)
        .with_context(|| format!("cannot write {}", dot_path.display()))?;
    std::fs::write(&mermaid_path, &mermaid)
        .with_context(|| format!("cannot write {}", mermaid_path.display()))?;

    println!();
    println!("{mermaid}");
    println!("Wrote {}", dot_path.display());
    println!("Wrote {}", mermaid_path.display());
    let svg_path = out_dir.join("etl.svg");
    match std::process::Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(&svg_path)
        .arg(&dot_path)
        .status()
    {
        Ok(status) if status.success() => println!("Wrote {}", svg_path.display()),
        Ok(status) => println!("Graphviz's `dot` failed ({status}); no SVG written"),
        Err(_) => println!(
            "No SVG: Graphviz's `dot` is not installed; install it with `apt-get install graphviz`"
        ),
    }
    Ok(())
}
