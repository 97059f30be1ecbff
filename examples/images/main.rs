//! SCENARIOS 3: an image downloader with retries, served on a schedule.
//!
//! `get_data` asks a photo API for a random photo of a random topic, with
//! `retries = 10, retry_delay = "15s"` because the API is flaky; `transform` takes the image
//! URL from the JSON answer; `store` streams the image's bytes to a file, and fails on a
//! status other than 200. The flow is served as the deployment `images`, running every
//! minute: between runs the log says "Waiting for next scheduled run at …", and each finished
//! run prints the file it saved.
//!
//! The photo API is a small server this program starts on 127.0.0.1; nothing leaves the
//! machine. It answers its first two photo requests 503 Service Unavailable (`--fail-first`),
//! so the first run's `get_data` fails twice and completes on its third attempt, 30 s after
//! the first: the log shows "Retrying in 15s" twice.
//!
//! ```sh
//! cargo run --example images                # every minute, until Ctrl-C
//! cargo run --example images -- --runs 3    # stop after 3 runs
//! cargo run --example images -- --every 5s --runs 2 --fail-first 0 --out /tmp/images
//!
//! # Meanwhile, in another terminal: a run now, besides the scheduled ones.
//! cargo run -p flowcore-cli -- deployment run images
//! ```

mod pipeline;
mod service;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use flowcore::schedule::Schedule;
use tokio::sync::{broadcast, watch};

use pipeline::{Finished, Params};

const USAGE: &str = "usage: images [--every INTERVAL] [--runs N] [--fail-first N] [--out DIR]

  --every INTERVAL  how often the flow runs (default 1m; \"30s\", \"5m\", \"1h 30m\")
  --runs N          stop once N runs have finished (default: serve until Ctrl-C)
  --fail-first N    how many photo requests the local photo API answers 503 (default 2)
  --out DIR         where the images go (default $TMPDIR/flowcore-examples/images)";

/// The command line.
struct Args {
    every: Schedule,
    runs: Option<usize>,
    fail_first: usize,
    out: String,
}

impl Args {
    /// The options in `args`; `None` for `--help`.
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Args>, String> {
        let mut every = Schedule::every("1m").expect("one minute is an interval");
        let mut runs = None;
        let mut fail_first = 2;
        let mut out = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|a| format!("argument {a:?} is not UTF-8"))?;
            if arg == "-h" || arg == "--help" {
                return Ok(None);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            if !matches!(
                flag.as_str(),
                "--every" | "--runs" | "--fail-first" | "--out"
            ) {
                return Err(if flag.starts_with('-') {
                    format!("unknown option {flag}")
                } else {
                    format!("unexpected argument {arg:?}")
                });
            }
            let value = match inline {
                Some(value) => value.to_owned(),
                None => args
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .into_string()
                    .map_err(|v| format!("{flag}: {v:?} is not UTF-8"))?,
            };
            match flag.as_str() {
                "--every" => {
                    every = Schedule::every(&value).map_err(|e| format!("--every: {e}"))?
                }
                "--runs" => match count(&flag, &value)? {
                    0 => return Err("--runs must be at least 1".to_owned()),
                    n => runs = Some(n),
                },
                "--fail-first" => fail_first = count(&flag, &value)?,
                _ if value.is_empty() => return Err("--out needs a directory".to_owned()),
                _ => out = Some(value),
            }
        }
        let out = match out {
            Some(out) => out,
            None => {
                let dir = std::env::temp_dir()
                    .join("flowcore-examples")
                    .join("images");
                dir.into_os_string().into_string().map_err(|d| {
                    format!("the temporary directory {d:?} is not UTF-8; give --out")
                })?
            }
        };
        Ok(Some(Args {
            every,
            runs,
            fail_first,
            out,
        }))
    }
}

fn count(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
}

/// What the finished runs have done so far.
#[derive(Clone, Copy, Default)]
struct Tally {
    runs: usize,
    saved: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            eprintln!("images: {e} (see --help)");
            return Ok(ExitCode::from(2));
        }
    };
    flowcore::init_logging();

    let out = PathBuf::from(&args.out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let service = service::start(args.fail_first).await?;
    match service.fail_first() {
        0 => println!("Photo API: {} (started by this program)", service.url()),
        n => println!(
            "Photo API: {} (started by this program; its first {n} photo {} fail with 503)",
            service.url(),
            plural(n, "request", "requests")
        ),
    }
    println!("Images go to: {}", out.display());
    println!("Run store: {}", flowcore::Store::current().describe());
    println!();

    // Print each finished run, and count them for `--runs`.
    let (tally_tx, tally) = watch::channel(Tally::default());
    let mut finished = pipeline::finished_runs();
    tokio::spawn(async move {
        loop {
            match finished.recv().await {
                Ok(run) => {
                    print_run(&run);
                    tally_tx.send_modify(|t| {
                        t.runs += 1;
                        t.saved += usize::from(run.saved.is_some());
                    });
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    let deployment = pipeline::deployment(Params {
        api: service.url().to_owned(),
        out_dir: args.out.clone(),
    })
    .schedule(Ok(args.every));
    let serving = flowcore::serve([deployment]);
    let serving = match args.runs {
        Some(runs) => {
            let mut tally = tally.clone();
            serving.with_shutdown(async move {
                let _ = tally.wait_for(|t| t.runs >= runs).await;
            })
        }
        None => serving,
    };
    serving.await?;

    let Tally { runs, saved } = *tally.borrow();
    let (photos, images) = (service.photo_requests(), service.image_requests());
    println!(
        "Done: {runs} {} finished, {saved} {} saved in {}; the photo API got {photos} photo {} \
         and {images} image {}",
        plural(runs, "run", "runs"),
        plural(saved, "image", "images"),
        out.display(),
        plural(photos, "request", "requests"),
        plural(images, "download", "downloads"),
    );
    Ok(ExitCode::SUCCESS)
}

fn print_run(run: &Finished) {
    match &run.saved {
        Some(saved) => println!(
            "Saved {} ({} bytes) in run '{}'",
            saved.path.display(),
            saved.bytes,
            run.name
        ),
        None => println!("Run '{}' ended in state {}", run.name, run.state),
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
