//! The dashboard's accept loop: its own rather than `axum::serve`'s, which has no way to close a
//! connection that stays idle or sends half a request, no cap on connections, and a graceful
//! shutdown that waits for ever. Here:
//!
//! - a connection must send a request's headers within [`Limits::header_timeout`] of being
//!   opened, or of its last answer (hyper's header-read timer also runs while a kept-alive
//!   connection waits for its next request, so it is the idle timeout too); otherwise it is
//!   closed;
//! - a request, its body included, must be answered within [`Limits::request_timeout`] (408);
//! - at most [`Limits::max_connections`] connections are open at once: the next ones wait in
//!   the system's queue of connections not yet accepted until one closes, so the process never
//!   runs out of file descriptors, and a waiting request is served once the idle connections
//!   ahead of it time out;
//! - on SIGINT or SIGTERM it stops accepting, lets the requests under way finish (idle
//!   connections are closed at once), and after [`Limits::shutdown_grace`] exits anyway.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::Failure;

/// How long a connection may take to send a request's headers, or stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request, its body included, may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the requests under way may go on after SIGINT or SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How many connections may be open at once.
pub const MAX_CONNECTIONS: usize = 256;

/// The limits a dashboard serves with: the constants above, which the environment variables
/// `FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS`, `…_REQUEST_TIMEOUT_MS`, `…_SHUTDOWN_GRACE_MS` and
/// `FLOWCORE_DASHBOARD_MAX_CONNECTIONS` replace (the tests shorten them).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_env() -> Result<Limits, Failure> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, Failure> {
            match std::env::var(name) {
                Ok(text) => match text.trim().parse::<T>() {
                    Ok(v) => Ok(Some(v)),
                    Err(_) => Err(Failure::new(format!(
                        "{name}={text:?} is not a whole number"
                    ))),
                },
                Err(_) => Ok(None),
            }
        }
        let ms = |name: &str, default: Duration| -> Result<Duration, Failure> {
            Ok(var::<u64>(name)?.map_or(default, Duration::from_millis))
        };
        let limits = Limits {
            header_timeout: ms("FLOWCORE_DASHBOARD_HEADER_TIMEOUT_MS", HEADER_TIMEOUT)?,
            request_timeout: ms("FLOWCORE_DASHBOARD_REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT)?,
            shutdown_grace: ms("FLOWCORE_DASHBOARD_SHUTDOWN_GRACE_MS", SHUTDOWN_GRACE)?,
            max_connections: var("FLOWCORE_DASHBOARD_MAX_CONNECTIONS")?.unwrap_or(MAX_CONNECTIONS),
        };
        if limits.max_connections == 0 || limits.max_connections > 1 << 20 {
            return Err(Failure::new(
                "FLOWCORE_DASHBOARD_MAX_CONNECTIONS must be from 1 to 1048576",
            ));
        }
        Ok(limits)
    }
}

/// Serves `router` on `listener` within `limits` until `stop` completes, then for at most
/// the shutdown grace. Returns the number of connections still open when the grace ran out.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> usize {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = std::sync::Arc::new(Semaphore::new(limits.max_connections));
    // `true` once the server is stopping: each connection then finishes what it is doing.
    let (stopping, stopping_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        // A free slot first: past the cap, connections wait unaccepted in the system's queue.
        let slot = tokio::select! {
            biased;
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A connection reset before it was accepted, or no file descriptor left
                    // (other files of the process): try again in a moment, without spinning.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                // Errors of a connection (the client went away, a timeout) are the client's.
                _ = connection.as_mut() => {}
                () = async { drop(stopping.wait_for(|s| *s).await) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = u32::try_from(limits.max_connections).expect("fewer than 2^32 connections");
    match tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => limits.max_connections - slots.available_permits(),
    }
}
