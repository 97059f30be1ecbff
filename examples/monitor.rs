//! SCENARIOS 4: a service monitor, served as a deployment.
//!
//! The `monitor` flow checks a status page once. `check_status` returns
//! `Err("status code 503")` on any answer other than 200, so that task run ends Failed; the
//! flow logs the failure and goes on, and the flow run still finishes Completed ("Completed —
//! 1 task run failed and was handled").
//!
//! The program serves the flow as the deployment `monitor`, every 30 seconds, until Ctrl-C
//! (or SIGTERM): runs in flight then get a grace period to finish. From another terminal,
//! `flowcore deployment ls` shows the deployment and its next run, and
//! `flowcore deployment run monitor --watch` runs it now and follows the run to its end
//! (`--param url=…` checks another page), and `flowcore runs cancel RUN` cancels a run going
//! on: this process drops it within a second, and it ends Cancelled with who asked. The
//! monitor flow is tagged `monitoring` (`flowcore runs ls --tag monitoring`). The status page
//! is a small server this program starts on 127.0.0.1: it answers 200, then 503 every third
//! request (the service flaps).
//!
//! It also serves `restart-service`, run by hand only: it checks the page, then pauses for a
//! person to approve the restart (`flowcore::pause`), and restarts the service (here: its
//! request count starts again) only if they say so. The run waits `Paused` with its question
//! until `flowcore runs resume RUN --input '{"ok": true}'` (or `{"ok": false, "reason": "…"}`,
//! or the form on the run's dashboard page), or `flowcore runs cancel RUN` drops it. Stop this
//! program while a run waits, and the run stays paused: started again, the program takes it
//! up where it was.
//!
//! ```sh
//! cargo run --example monitor                          # every 30 s until Ctrl-C
//! cargo run --example monitor -- --every 2s --runs 3   # three runs 2 s apart, then stops
//! flowcore deployment run restart-service              # then: flowcore runs resume RUN --input '{"ok": true}'
//! ```

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use flowcore::pause::{self, PauseError};
use flowcore::{Deployment, flow, task};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The service runs on this machine: never send its requests through an `HTTP_PROXY`.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
});

#[task]
async fn check_status(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let response = HTTP
        .get(url)
        .timeout(Duration::from_secs(timeout_secs))
        .send()
        .await?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        anyhow::bail!("status code {}", status.as_u16());
    }
    Ok(())
}

/// Checks `url` once; returns whether it is up. A failed check is logged, not propagated:
/// the monitor's job is to notice failures, not to fail with them.
#[flow(name = "monitor", tags = ["monitoring"])]
async fn monitor(url: String, timeout_secs: u64) -> bool {
    let up = match check_status(&url, timeout_secs).await {
        Ok(()) => {
            tracing::info!("{url} is up");
            true
        }
        Err(e) => {
            tracing::warn!("{url} is down: {e:#}");
            false
        }
    };
    FINISHED.send_modify(|n| *n += 1);
    up
}

/// A person's answer to "restart it?".
#[derive(Deserialize, schemars::JsonSchema)]
struct Approval {
    ok: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Restarts the service: here, its request count starts again.
#[task]
async fn restart(url: &str) -> String {
    REQUESTS.store(0, Ordering::SeqCst);
    format!("restarted the service behind {url}")
}

/// Checks `url`, then asks a person before restarting the service behind it.
#[flow(name = "restart-service", tags = ["monitoring"])]
async fn restart_service(url: String, timeout_secs: u64) -> Result<String, PauseError> {
    let question = match check_status(&url, timeout_secs).await {
        Ok(()) => format!("{url} is up: restart it anyway?"),
        Err(e) => format!("{url} is down ({e:#}): restart it?"),
    };
    let approval: Approval = pause::pause(question).await?;
    if !approval.ok {
        let reason = approval
            .reason
            .unwrap_or_else(|| "no reason given".to_owned());
        tracing::info!("Not restarting: {reason}");
        return Ok(format!("not restarted: {reason}"));
    }
    Ok(restart(&url).await)
}

/// The status page's requests so far: every third one fails.
static REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// The runs of `monitor` this process finished, for `--runs`.
static FINISHED: LazyLock<watch::Sender<usize>> = LazyLock::new(|| watch::Sender::new(0));

/// The deployment's parameters: what `flowcore deployment run monitor --param …` may change.
#[derive(Debug, Serialize, Deserialize)]
struct Check {
    url: String,
    timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    flowcore::init_logging();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("monitor: {e:#}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(options).await {
        eprintln!("monitor: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let url = start_status_server().await?;
    let deployment = Deployment::new("monitor", |c: Check| monitor(c.url, c.timeout_secs))
        .parameters(Check {
            url: url.clone(),
            timeout_secs: 10,
        })
        .every(&options.every);
    let restart = Deployment::new("restart-service", |c: Check| {
        restart_service(c.url, c.timeout_secs)
    })
    .parameters(Check {
        url,
        timeout_secs: 10,
    });
    let serving = flowcore::serve([deployment, restart]);
    match options.runs {
        Some(runs) => {
            let mut finished = FINISHED.subscribe();
            let enough = async move {
                let _ = finished.wait_for(|n| *n >= runs).await;
            };
            serving.with_shutdown(enough).await?;
        }
        None => serving.await?,
    }
    println!("Stopped serving; {} runs finished", *FINISHED.borrow());
    Ok(())
}

struct Options {
    every: String,
    runs: Option<usize>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut options = Options {
            every: "30s".to_owned(),
            runs: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                // Checked by `serve`, which names the deployment in its error.
                "--every" => options.every = value()?,
                "--runs" => {
                    let v = value()?;
                    options.runs =
                        Some(v.parse().with_context(|| {
                            format!("--runs takes a number of runs, not {v:?}")
                        })?);
                }
                _ => anyhow::bail!(
                    "unknown argument {arg:?}; usage: monitor [--every 30s] [--runs N]"
                ),
            }
        }
        Ok(options)
    }
}

/// Starts a status page on a free port of 127.0.0.1, in the background: 503 for every
/// third request (the 2nd, 5th, 8th, …), 200 for the others. Returns its URL.
async fn start_status_server() -> anyhow::Result<String> {
    async fn status() -> (StatusCode, &'static str) {
        if REQUESTS.fetch_add(1, Ordering::SeqCst) % 3 == 1 {
            (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance")
        } else {
            (StatusCode::OK, "all systems operational")
        }
    }

    let app = Router::new().route("/status", get(status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/status", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
