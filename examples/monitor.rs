//! SCENARIOS 4: a service monitor.
//!
//! The `monitor` flow checks a status page a few times, `--interval` apart. `check_status`
//! returns `Err("status code 503")` on any answer other than 200, so that task run ends
//! Failed; the flow logs the failure and goes on, and the flow run still finishes Completed.
//! Its summary lists the failed checks with their messages under the headline "Completed — 2
//! task runs failed and were handled".
//!
//! The status page is a small server this program starts on 127.0.0.1: it answers 200 to the
//! first check and 503 (the service went down) to every later one.
//!
//! ```sh
//! cargo run --example monitor                                  # 3 checks, 1s apart
//! cargo run --example monitor -- --checks 5 --interval 500ms
//! ```

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::get;
use flowcore::{flow, task};

/// The service runs on this machine: never send its requests through an `HTTP_PROXY`.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds")
});

#[task]
async fn check_status(url: &str) -> anyhow::Result<()> {
    let status = HTTP.get(url).send().await?.status();
    if status != reqwest::StatusCode::OK {
        anyhow::bail!("status code {}", status.as_u16());
    }
    Ok(())
}

/// Checks `url` `checks` times; returns how many checks found it up. A failed check is
/// logged, not propagated: the monitor's job is to notice failures, not to stop at one.
#[flow(name = "monitor")]
async fn monitor(url: &str, checks: u32, interval: Duration) -> u32 {
    let mut up = 0;
    for check in 1..=checks {
        match check_status(url).await {
            Ok(()) => {
                up += 1;
                tracing::info!("Check {check}/{checks}: {url} is up");
            }
            Err(e) => tracing::warn!("Check {check}/{checks}: {url} is down: {e:#}"),
        }
        if check < checks {
            tokio::time::sleep(interval).await;
        }
    }
    up
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flowcore::init_logging();
    let options = Options::parse(std::env::args().skip(1))?;

    let url = start_status_server().await?;
    let (up, run) = monitor(&url, options.checks, options.interval)
        .with_run()
        .await;
    println!(
        "{url} was up for {up} of {} checks; the flow run ended in state {}",
        options.checks,
        run.state()
    );
    Ok(())
}

struct Options {
    checks: u32,
    interval: Duration,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut options = Options {
            checks: 3,
            interval: Duration::from_secs(1),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--checks" => {
                    let v = value()?;
                    options.checks = v.parse().with_context(|| format!("--checks {v}"))?;
                }
                "--interval" => options.interval = parse_duration(&value()?)?,
                _ => anyhow::bail!(
                    "unknown argument {arg:?}; usage: monitor [--checks N] [--interval 1s]"
                ),
            }
        }
        Ok(options)
    }
}

/// `"500ms"`, `"2s"`, `"1m"`, or a plain number of seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => anyhow::bail!("bad duration {text:?}: use ms, s or m, as in 500ms, 30s or 1m"),
    }
}

/// Starts a status page on a free port of 127.0.0.1, in the background: 200 for the first
/// request, 503 for every later one. Returns its URL.
async fn start_status_server() -> anyhow::Result<String> {
    async fn status(Shared(requests): Shared<Arc<AtomicUsize>>) -> (StatusCode, &'static str) {
        if requests.fetch_add(1, Ordering::SeqCst) == 0 {
            (StatusCode::OK, "all systems operational")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance")
        }
    }

    let app = Router::new()
        .route("/status", get(status))
        .with_state(Arc::new(AtomicUsize::new(0)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/status", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
