//! Durable execution: a flow run that crashed part-way is continued where it stopped.
//!
//! The flow has five steps, each a task that prints "step N running" and takes a moment. With
//! `--crash-after 2` the process aborts right after step 2 (`std::process::abort()`: a real
//! crash, nothing is cleaned up). Every run is recorded in the run store
//! (`$FLOWCORE_HOME/flowcore.db`), so the next flowcore process sees that the crashed
//! process is gone and marks its flow run Crashed. `--resume NAME` then continues that run,
//! as the same run: steps 1 and 2 do not run again (the outputs they recorded are reused, and
//! their task runs end in state Cached), steps 3 to 5 run, and the result is printed.
//!
//! ```sh
//! cargo run --example resume -- --crash-after 2   # prints the flow run's name, then crashes
//! cargo run --example resume -- --resume NAME     # continues that run: steps 3, 4 and 5
//! ```
//!
//! Without flags it just runs the flow; `--resume NAME --crash-after 4` continues a run and
//! crashes it again, later on.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use flowcore::{RunInfo, State, StateKind, Store, flow, task};

/// The step after which the process crashes, from `--crash-after`.
static CRASH_AFTER: OnceLock<u32> = OnceLock::new();

/// The flow run's name, for the message before the crash.
static RUN_NAME: OnceLock<String> = OnceLock::new();

/// One step of the work: appends its number to the digits so far, so the result (12345)
/// shows that every step contributed, whether it ran now or before the crash.
#[task]
async fn step(n: u32, digits: u64) -> u64 {
    println!("step {n} running");
    tokio::time::sleep(Duration::from_millis(200)).await;
    digits * 10 + u64::from(n)
}

/// Prints the flow run's name when it starts running: the name to give `--resume`.
fn announce(run: &RunInfo, _old: &State, new: &State) {
    if new.kind == StateKind::Running {
        let name = run.name().to_string();
        println!("Flow run: {name}");
        let _ = RUN_NAME.set(name);
    }
}

#[flow(name = "five steps", on_state = announce)]
async fn five_steps() -> u64 {
    let mut digits = 0;
    for n in 1..=5 {
        digits = step(n, digits).await;
        if CRASH_AFTER.get() == Some(&n) {
            crash(n).await;
        }
    }
    digits
}

/// Aborts the process, as a crash would.
async fn crash(after: u32) -> ! {
    // Task runs inside a flow do not wait for the disk: their states and outputs reach the
    // store a moment later, in the writer's next commit. A real crash can lose the last of
    // them, and a resumed run then does those steps again (at least once, never lost). The
    // example waits for the commit so that it shows the same thing every time.
    if let Err(e) = Store::current().flush().await {
        eprintln!("flowcore: {e}");
    }
    // The same goes for the log lines of the last moments, which a thread writes out behind
    // the tasks: the example has them written before it says it crashes.
    flowcore::logging::flush();
    println!("Crashing after step {after} (std::process::abort)");
    if let Some(name) = RUN_NAME.get() {
        println!("Continue the run with: cargo run --example resume -- --resume {name}");
    }
    std::process::abort()
}

const USAGE: &str = "usage: resume [--crash-after N] [--resume NAME]

  --crash-after N  abort the process right after step N (1 to 5) completes
  --resume NAME    continue the flow run NAME (or id) that crashed or failed

Both together continue a run and crash it again, later on.";

/// The command line: what to crash after, and which run to resume.
struct Args {
    crash_after: Option<u32>,
    resume: Option<String>,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut parsed = Args {
            crash_after: None,
            resume: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--crash-after" => {
                    let n = args.next().unwrap_or_default();
                    let step = n.parse().ok().filter(|n| (1..=5).contains(n));
                    let step = step.with_context(|| {
                        format!("--crash-after takes a step, 1 to 5, not {n:?}\n\n{USAGE}")
                    })?;
                    parsed.crash_after = Some(step);
                }
                "--resume" => {
                    let name = args.next().filter(|n| !n.starts_with('-'));
                    let name = name
                        .with_context(|| format!("--resume needs a flow run's name\n\n{USAGE}"))?;
                    parsed.resume = Some(name);
                }
                other => anyhow::bail!("unexpected argument {other:?}\n\n{USAGE}"),
            }
        }
        Ok(parsed)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    flowcore::init_logging();
    println!("Run store: {}", Store::current().describe());

    if let Some(step) = args.crash_after {
        CRASH_AFTER.set(step).expect("set once");
    }
    let result = match &args.resume {
        None => five_steps().await,
        Some(name) => flowcore::resume(name, five_steps)?.await,
    };
    println!("Result: {result}");
    Ok(())
}
