//! SCENARIOS 2: ETL into SQLite, with a cache that outlives the process.
//!
//! `extract` fetches 10 consumer complaints as JSON over HTTP, `transform` keeps a few fields of
//! each, `create_table` makes sure the SQLite table exists (submitted, so it runs meanwhile)
//! and `load` inserts the rows once the table is there. The state handler `alert_failed`
//! prints "Failed!" whenever a task run or the flow run fails. The task graph reads
//! extract → transform → load, with load also waiting for create_table:
//! `cargo run --example visualize` draws it.
//!
//! `extract` is cached for a day (`cache_for = "1d"`). Cached results live in the run store, a
//! SQLite file shared by every process (`$FLOWCORE_HOME/flowcore.db`; under `cargo run` in this
//! repository, `target/flowcore-home`), so running the example a second time the same day
//! shows `extract` in state Cached, and the service is not called again.
//!
//! Unless `--source` names the complaints service, the program starts one itself on
//! 127.0.0.1; nothing leaves the machine.
//!
//! ```sh
//! cargo run --example etl                      # database in $TMPDIR/flowcore-examples/etl.db
//! cargo run --example etl                      # again: extract is Cached, no request is made
//! cargo run --example etl -- /path/to/etl.db   # the database where you choose
//! cargo run --example etl -- --source http://127.0.0.1:8000/complaints   # another service
//! ```

mod pipeline;
mod service;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use flowcore::StateKind;

use pipeline::{LOADED, etl};
use service::start_complaints_server;

const USAGE: &str = "usage: etl [--source URL] [DATABASE]

  DATABASE      the SQLite file to load the complaints into
                (default: $TMPDIR/flowcore-examples/etl.db)
  --source URL  the complaints service to extract from (default: one this program starts)";

/// The command line: `[--source URL] [DATABASE]`.
struct Args {
    source: Option<String>,
    db: PathBuf,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut source = None;
        let mut db = None;
        let mut args = std::env::args_os().skip(1);
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("-h" | "--help") => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                Some("--source") => {
                    let url = args.next().context("--source needs a URL")?;
                    let url = url
                        .into_string()
                        .ok()
                        .context("--source: the URL is not UTF-8")?;
                    source = Some(url);
                }
                Some(flag) if flag.starts_with("--source=") => {
                    source = Some(flag["--source=".len()..].to_owned());
                }
                Some(flag) if flag.starts_with('-') => {
                    anyhow::bail!("unknown option {flag}\n\n{USAGE}");
                }
                _ if db.is_some() => anyhow::bail!("more than one database given\n\n{USAGE}"),
                _ => db = Some(PathBuf::from(arg)),
            }
        }
        let db = db.unwrap_or_else(|| {
            std::env::temp_dir()
                .join("flowcore-examples")
                .join("etl.db")
        });
        Ok(Args { source, db })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flowcore::init_logging();
    let Args { source, db } = Args::parse()?;

    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!("SQLite database: {}", db.display());
    // Where flowcore keeps the runs and the cached results (the default store, opened now).
    println!("Run store: {}", flowcore::Store::current().describe());
    let (url, requests) = match source {
        Some(url) => {
            println!("Complaints service: {url}");
            (url, None)
        }
        None => {
            let (url, requests) = start_complaints_server().await?;
            println!("Complaints service: {url} (started by this program)");
            (url, Some(requests))
        }
    };
    println!();

    let (loaded, run) = etl(&url, db.clone()).with_run().await;
    loaded?;

    println!();
    if let Some(extract) = run.task_runs_of("extract").next() {
        let state = extract.state();
        if state.kind == StateKind::Cached {
            println!(
                "extract ended in state {state}: taken from the cache, the service was not called"
            );
        } else {
            println!(
                "extract ended in state {state}: fetched from the service and cached for a \
                 day; run the example again to take it from the cache"
            );
        }
    }
    if let Some(requests) = requests {
        let requests = requests.load(Ordering::SeqCst);
        let plural = if requests == 1 { "" } else { "s" };
        println!("The complaints service received {requests} request{plural}");
    }
    let rows = count_rows(&db).await?;
    println!("{} holds {rows} rows in table complaints", db.display());
    println!(
        "The rows loaded are kept with the run as the table artifact '{LOADED}': \
         flowcore artifact show {LOADED}"
    );
    Ok(())
}

async fn count_rows(db: &Path) -> anyhow::Result<i64> {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db)?;
        Ok(conn.query_row("SELECT COUNT(*) FROM complaints", [], |row| row.get(0))?)
    })
    .await?
}
