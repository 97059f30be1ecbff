//! Retries: a task that calls a flaky service, which fails twice and then answers.
//!
//! `fetch_quote` has `retries = 3, retry_delay = "500ms"`: up to 4 attempts, half a second
//! apart. The log shows "Attempt 1/4 failed: … Retrying in 500ms" for each failure, and the
//! flow's summary shows the task run Completed after 3 attempts. (SCENARIOS 3's image
//! downloader uses the same settings with `retries = 10, retry_delay = "15s"`.)
//!
//! The flaky service is a small server this program starts on 127.0.0.1.
//!
//! ```sh
//! cargo run --example retries
//! ```

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::get;
use flowcore::{flow, task};

/// The service runs on this machine: never send its requests through an `HTTP_PROXY`.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
});

#[task(retries = 3, retry_delay = "500ms")]
async fn fetch_quote(url: &str) -> anyhow::Result<String> {
    let response = HTTP.get(url).send().await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("the quote service answered {status}");
    }
    Ok(response.text().await?)
}

#[flow(name = "quote of the day")]
async fn quote_of_the_day(url: &str) -> anyhow::Result<String> {
    let quote = fetch_quote(url).await?;
    tracing::info!("Quote: {quote}");
    Ok(quote)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flowcore::init_logging();

    let url = start_flaky_server(2).await?;
    let (quote, run) = quote_of_the_day(&url).with_run().await;
    quote?;

    let fetch = &run.task_runs[0];
    println!(
        "{} finished in state {} after {} attempts",
        fetch.name(),
        fetch.state(),
        fetch.attempts
    );
    Ok(())
}

/// Starts a service on a free port of 127.0.0.1 that answers 503 to its first `failures`
/// requests and a quote afterwards. Returns its URL.
async fn start_flaky_server(failures: usize) -> anyhow::Result<String> {
    struct Flaky {
        failures: usize,
        requests: AtomicUsize,
    }

    async fn quote(Shared(flaky): Shared<Arc<Flaky>>) -> (StatusCode, &'static str) {
        let n = flaky.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= flaky.failures {
            (StatusCode::SERVICE_UNAVAILABLE, "try again later")
        } else {
            (
                StatusCode::OK,
                "Simple things should be simple, complex things should be possible.",
            )
        }
    }

    let flaky = Arc::new(Flaky {
        failures,
        requests: AtomicUsize::new(0),
    });
    let app = Router::new().route("/quote", get(quote)).with_state(flaky);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/quote", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
